//! The NATS link as a router attachment: `EdriBuilder::nats(..)` and `Running::nats()`.

use super::{Link, Nats, NatsStatus};
use crate::error::{Error, StartError};
use crate::manager::{ErasedManager, ManagerDescriptor};
use crate::router::Uplink;
use crate::router::attach::{AttachFuture, Attachment, Stage};
use crate::{Ctx, EdriBuilder, Running};
use std::any::Any;
use std::sync::{Arc, OnceLock};

impl EdriBuilder {
    /// Joins the other routers connected to the same NATS under the same namespace
    /// ([`crate::nats`]): notifications reach their subscribers through a JetStream stream,
    /// requests without a responder here go to one of theirs, `request_all` asks every router.
    ///
    /// ```no_run
    /// # async fn f() -> edri_runtime::Result<()> {
    /// use edri_runtime::{Edri, nats::Nats};
    /// let running = Edri::builder()
    ///     .nats(Nats::new("nats://10.0.0.5:4222").server("nats://10.0.0.6:4222").id("billing"))
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn nats(self, nats: impl Into<Nats>) -> Self {
        self.attach(Joined { config: Some(nats.into()), link: OnceLock::new() })
    }
}

impl Running {
    /// What the router knows about NATS and the other routers (`None` without
    /// [`EdriBuilder::nats`]).
    pub fn nats(&self) -> Option<NatsStatus> {
        self.attachment::<Joined>().and_then(|j| j.link.get()).map(|l| l.status())
    }
}

/// A router joined to others through NATS.
struct Joined {
    config: Option<Nats>,
    link: OnceLock<Arc<Link>>,
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
        let link = Arc::new(Link::new(config, managers)?);
        let _ = self.link.set(link.clone());
        Ok(Some(link))
    }

    fn start<'a>(&'a self, ctx: &'a Ctx) -> AttachFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.link.get() {
                Some(link) => Ok(link.start(ctx.shared()).await?),
                None => Ok(()),
            }
        })
    }

    fn stage(&self) -> Stage {
        Stage::Link
    }

    fn drain(&self, deadline: tokio::time::Instant) -> AttachFuture<'_, ()> {
        Box::pin(async move {
            if let Some(link) = self.link.get() {
                link.close(deadline).await;
            }
        })
    }

    fn abort(&self) {
        if let Some(link) = self.link.get() {
            link.abort();
        }
    }

    fn render_metrics(&self, out: &mut String) {
        if let Some(link) = self.link.get() {
            link.render_metrics(out);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
