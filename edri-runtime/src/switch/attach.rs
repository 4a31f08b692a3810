//! The connector as a router attachment: `EdriBuilder::switch(..)` and `Running::switch()`.

use super::{Connector, Switch, SwitchStatus};
use crate::error::{Error, StartError};
use crate::manager::{ErasedManager, ManagerDescriptor};
use crate::router::Uplink;
use crate::router::attach::{AttachFuture, Attachment, Stage};
use crate::{Ctx, EdriBuilder, Running};
use std::any::Any;
use std::sync::{Arc, OnceLock};

impl EdriBuilder {
    /// Joins the other routers of a switch ([`crate::switch`]): notifications reach their
    /// subscribers too, requests without a responder here go to one of theirs, `request_all`
    /// asks every router; nothing is lost or duplicated through outages of the outage window.
    ///
    /// ```no_run
    /// # async fn f() -> edri_runtime::Result<()> {
    /// use edri_runtime::{Edri, switch::Switch};
    /// // The secret from EDRI_SWITCH_SECRET:
    /// let running = Edri::builder().switch("127.0.0.1:7800").start().await?;
    /// let running = Edri::builder()
    ///     .switch(Switch::new("127.0.0.1:7800").secret("s3cret").id("billing"))
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn switch(self, switch: impl Into<Switch>) -> Self {
        self.attach(Joined { config: Some(switch.into()), connector: OnceLock::new() })
    }
}

impl Running {
    /// What the connector knows about the switch and the other routers (`None` without
    /// [`EdriBuilder::switch`]).
    pub fn switch(&self) -> Option<SwitchStatus> {
        self.attachment::<Joined>().and_then(|j| j.connector.get()).map(|c| c.status())
    }
}

/// A router joined to a switch through its connector.
struct Joined {
    config: Option<Switch>,
    connector: OnceLock<Arc<Connector>>,
}

impl Attachment for Joined {
    fn prepare(&mut self) -> AttachFuture<'_, Result<(), StartError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn managers(&mut self) -> Vec<Box<dyn ErasedManager>> {
        Vec::new()
    }

    fn counts_calls(&self) -> bool {
        false
    }

    fn uplink(
        &mut self,
        managers: &[&'static ManagerDescriptor],
    ) -> Result<Option<Arc<dyn Uplink>>, StartError> {
        let Some(config) = self.config.take() else { return Ok(None) };
        let connector = Arc::new(Connector::new(config, managers)?);
        let _ = self.connector.set(connector.clone());
        Ok(Some(connector))
    }

    fn start<'a>(&'a self, ctx: &'a Ctx) -> AttachFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.connector.get() {
                Some(connector) => Ok(connector.start(ctx.shared()).await?),
                None => Ok(()),
            }
        })
    }

    fn stage(&self) -> Stage {
        Stage::Link
    }

    fn drain(&self, deadline: tokio::time::Instant) -> AttachFuture<'_, ()> {
        Box::pin(async move {
            if let Some(connector) = self.connector.get() {
                connector.close(deadline).await;
            }
        })
    }

    fn abort(&self) {
        if let Some(connector) = self.connector.get() {
            connector.abort();
        }
    }

    fn render_metrics(&self, out: &mut String) {
        if let Some(connector) = self.connector.get() {
            connector.render_metrics(out);
        }
    }

    fn routers(&self) -> Vec<crate::RouterNode> {
        let Some(connector) = self.connector.get() else { return Vec::new() };
        connector
            .status()
            .peers
            .into_iter()
            .map(|p| crate::RouterNode::new("switch", p.id, p.connected, p.subscribes, p.responds))
            .collect()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
