//! The NATS link as a router attachment: `EdriBuilder::nats(..)` and `Running::nats()`.

use super::{Link, Nats, NatsStatus};
use crate::error::StartError;
use crate::manager::ManagerDescriptor;
use crate::router::Shared;
use crate::router::attach::{AttachFuture, Joined, Transport};
use crate::{EdriBuilder, Running};
use std::sync::Arc;

#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
impl EdriBuilder {
    /// Joins the other routers connected to the same NATS under the same namespace
    /// ([`crate::nats`]): notifications reach their subscribers through a JetStream stream,
    /// requests without a responder here go to one of theirs, `request_all` asks every router.
    ///
    /// ```no_run
    /// # // `edri::nats` is there with `edri`'s `nats` feature, which this crate's tests leave off.
    /// # use edri_runtime::nats;
    /// # async fn f() -> edri::Result<()> {
    /// use edri::Edri;
    /// use nats::Nats; // edri::nats::Nats
    /// let running = Edri::builder()
    ///     .nats(Nats::new("nats://10.0.0.5:4222").server("nats://10.0.0.6:4222").id("billing"))
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn nats(self, nats: impl Into<Nats>) -> Self {
        self.attach(Joined::<Link>::new(nats.into()))
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
impl Running {
    /// What the router knows about NATS and the other routers (`None` without
    /// [`EdriBuilder::nats`]).
    pub fn nats(&self) -> Option<NatsStatus> {
        self.attachment::<Joined<Link>>().and_then(Joined::link).map(|l| l.status())
    }
}

impl Transport for Link {
    type Config = Nats;

    fn build(config: Nats, managers: &[&'static ManagerDescriptor]) -> Result<Self, StartError> {
        Link::new(config, managers)
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
            .map(|p| crate::RouterNode::new("nats", p.id, p.connected, p.subscribes, p.responds))
            .collect()
    }
}
