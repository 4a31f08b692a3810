//! The broker as a router attachment: `EdriBuilder::api(..)` and `Running::api_addr()`.

use super::Api;
use super::server::{ApiServer, Prepared};
use crate::error::{Error, StartError};
use crate::manager::{ErasedManager, ManagerDescriptor};
use crate::router::Uplink;
use crate::router::attach::{AttachFuture, Attachment, Stage};
use crate::{Ctx, EdriBuilder, Running};
use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
impl EdriBuilder {
    /// Starts the API broker ([`crate::api`]): REST routes from `#[event(http = ..)]`, the
    /// WebSocket endpoint `/edri/ws`, `/edri/health`, `/edri/events` and `/metrics`.
    ///
    /// ```no_run
    /// # async fn f() -> edri::Result<()> {
    /// use edri::{Edri, api::Api};
    /// let running = Edri::builder().api("127.0.0.1:8080").start().await?;
    /// let running = Edri::builder().api(Api::new("127.0.0.1:0").token("s3cret")).start().await?;
    /// println!("listening on {:?}", running.api_addr());
    /// # Ok(()) }
    /// ```
    pub fn api(self, api: impl Into<Api>) -> Self {
        self.attach(Broker { config: Some(api.into()), ..Broker::default() })
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
impl Running {
    /// Where the API broker listens (`None` without [`EdriBuilder::api`], and for
    /// [`Api::embedded`](crate::api::Api::embedded)); with port 0 in the configured address,
    /// the port the system picked.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.attachment::<Broker>().and_then(|b| b.addr.get().copied())
    }
}

/// The broker's routes, to serve elsewhere ([`Running::api_router`]).
pub(super) fn router(running: &Running) -> Option<axum::Router> {
    running.attachment::<Broker>().and_then(|b| b.server.get()).map(ApiServer::router)
}

/// The API broker attached to a router: configured, then bound, then serving.
#[derive(Default)]
struct Broker {
    config: Option<Api>,
    prepared: Mutex<Option<Prepared>>,
    addr: OnceLock<SocketAddr>,
    server: OnceLock<ApiServer>,
}

impl Broker {
    fn prepared(&self) -> std::sync::MutexGuard<'_, Option<Prepared>> {
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Attachment for Broker {
    fn prepare(&mut self) -> AttachFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            if let Some(config) = self.config.take() {
                let prepared = Prepared::new(config).await?;
                if let Some(addr) = prepared.addr() {
                    let _ = self.addr.set(addr);
                }
                *self.prepared() = Some(prepared);
            }
            Ok(())
        })
    }

    fn managers(&mut self) -> Vec<Box<dyn ErasedManager>> {
        self.prepared().as_ref().and_then(Prepared::bridge).into_iter().collect()
    }

    fn counts_calls(&self) -> bool {
        true
    }

    fn uplink(
        &mut self,
        _managers: &[&'static ManagerDescriptor],
    ) -> Result<Option<Arc<dyn Uplink>>, StartError> {
        Ok(None)
    }

    fn start<'a>(&'a self, ctx: &'a Ctx) -> AttachFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if let Some(prepared) = self.prepared().take() {
                let _ = self.server.set(prepared.serve(ctx.clone()));
            }
            Ok(())
        })
    }

    fn stage(&self) -> Stage {
        Stage::Intake
    }

    fn drain(&self, _deadline: tokio::time::Instant) -> AttachFuture<'_, ()> {
        Box::pin(async move {
            if let Some(server) = self.server.get() {
                server.shutdown().await;
            }
        })
    }

    fn abort(&self) {
        if let Some(server) = self.server.get() {
            server.abort();
        }
    }

    fn render_metrics(&self, out: &mut String) {
        if let Some(server) = self.server.get() {
            server.render_metrics(out);
        }
    }

    fn routers(&self) -> Vec<crate::RouterNode> {
        Vec::new()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
