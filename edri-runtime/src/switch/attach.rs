//! The connector as a router attachment: `EdriBuilder::switch(..)` and `Running::switch()`.

use super::{Connector, Switch, SwitchStatus};
use crate::error::StartError;
use crate::manager::ManagerDescriptor;
use crate::router::Shared;
use crate::router::attach::{AttachFuture, Joined, Transport};
use crate::{EdriBuilder, Running};
use std::sync::Arc;

#[cfg_attr(docsrs, doc(cfg(feature = "switch")))]
impl EdriBuilder {
    /// Joins the other routers of a switch ([`crate::switch`]): notifications reach their
    /// subscribers too, requests without a responder here go to one of theirs, `request_all`
    /// asks every router; nothing is lost or duplicated through outages of the outage window.
    ///
    /// ```no_run
    /// # async fn f() -> edri::Result<()> {
    /// use edri::{Edri, switch::Switch};
    /// // The secret from EDRI_SWITCH_SECRET:
    /// let running = Edri::builder().switch("127.0.0.1:7800").start().await?;
    /// let running = Edri::builder()
    ///     .switch(Switch::new("127.0.0.1:7800").secret("s3cret").id("billing"))
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn switch(self, switch: impl Into<Switch>) -> Self {
        self.attach(Joined::<Connector>::new(switch.into()))
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "switch")))]
impl Running {
    /// What the connector knows about the switch and the other routers (`None` without
    /// [`EdriBuilder::switch`]).
    pub fn switch(&self) -> Option<SwitchStatus> {
        self.attachment::<Joined<Connector>>().and_then(Joined::link).map(|c| c.status())
    }
}

impl Transport for Connector {
    type Config = Switch;

    fn build(config: Switch, managers: &[&'static ManagerDescriptor]) -> Result<Self, StartError> {
        Connector::new(config, managers)
    }

    fn join<'a>(
        self: &'a Arc<Self>,
        shared: &'a Arc<Shared>,
    ) -> AttachFuture<'a, Result<(), StartError>> {
        Box::pin(self.start(shared))
    }

    fn leave(&self, deadline: tokio::time::Instant) -> AttachFuture<'_, ()> {
        Box::pin(self.close(deadline))
    }

    fn end(&self) {
        self.abort();
    }

    fn metrics(&self, out: &mut String) {
        self.render_metrics(out);
    }

    fn routers(&self) -> Vec<crate::RouterNode> {
        self.status()
            .peers
            .into_iter()
            .map(|p| crate::RouterNode::new("switch", p.id, p.connected, p.subscribes, p.responds))
            .collect()
    }
}
