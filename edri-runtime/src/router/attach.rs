//! The seam between the router and what joins it to the outside world: the API broker, the
//! switch connector, any other transport. The router knows only these two traits:
//! [`Attachment`] (started with the router, drained before a deadline when it stops, aborted,
//! asked for metrics) and [`Uplink`] (how events without a local route reach other routers).
//! Each attachment extends [`EdriBuilder`](super::EdriBuilder) with its own method (`.api(..)`,
//! `.switch(..)`) and [`Running`](super::Running) with its own status; a new transport is one
//! more attachment that provides an `Uplink`, and runs the conformance suite of
//! `edri-switch/tests` by adding one line.

use super::BoxFuture;
use crate::Ctx;
use crate::error::{Error, StartError};
use crate::manager::{ErasedManager, ManagerDescriptor};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A future borrowing its attachment.
pub(crate) type AttachFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// When an attachment is drained during [`Running::shutdown`](super::Running::shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// First, before `Stopping` is sent: it brings work in from outside (the API broker), so
    /// it stops taking new work and finishes what is in flight.
    Intake,
    /// Once the router is quiescent: it links this router to others (a transport), so what
    /// was sent through it is acknowledged, and what arrives meanwhile is still handled.
    Link,
}

/// Something attached to a router. Called in this order: `prepare`, `managers`,
/// `counts_calls`, `uplink` (before any manager runs), `start` (once every manager runs), then
/// `drain` at its [`Stage`] of the shutdown, and `abort` when the grace period ran out or the
/// `Running` was dropped.
pub(crate) trait Attachment: Send + Sync + 'static {
    /// Acquires what can fail before anything runs (binds a listener).
    fn prepare(&mut self) -> AttachFuture<'_, Result<(), StartError>>;
    /// Managers it runs inside the router.
    fn managers(&mut self) -> Vec<Box<dyn ErasedManager>>;
    /// Whether it needs handler calls counted (it serves metrics).
    fn counts_calls(&self) -> bool;
    /// The way to other routers it provides, knowing the router's managers. At most one
    /// attachment of a router provides one.
    fn uplink(
        &mut self,
        managers: &[&'static ManagerDescriptor],
    ) -> Result<Option<Arc<dyn Uplink>>, StartError>;
    /// Starts; `ctx` is the router's context for outside code.
    fn start<'a>(&'a self, ctx: &'a Ctx) -> AttachFuture<'a, Result<(), Error>>;
    /// When the shutdown drains it.
    fn stage(&self) -> Stage;
    /// Finishes what it has in flight, within `deadline` (the caller aborts it after that).
    fn drain(&self, deadline: tokio::time::Instant) -> AttachFuture<'_, ()>;
    /// Ends at once: tasks aborted, waiting callers fail.
    fn abort(&self);
    /// Adds its lines to the router's metrics text.
    fn render_metrics(&self, out: &mut String);
    /// The other routers it joins this one to, for the [`Topology`](super::Topology).
    fn routers(&self) -> Vec<super::RouterNode>;
    /// For [`Running`](super::Running)'s typed accessors.
    fn as_any(&self) -> &dyn Any;
}

/// An event on its way up: its name, and its number between routers ([`crate::peering`];
/// `u32::MAX` when it has none), so that a transport finds its tables without a string lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outbound {
    pub(crate) name: &'static str,
    pub(crate) wire: u32,
}

impl Outbound {
    /// The wire id of an event that has none (a `local` event).
    pub(crate) const NO_WIRE: u32 = u32::MAX;

    /// `name`, its wire id looked up (cold paths: the route's [`Route::outbound`] has it).
    ///
    /// [`Route::outbound`]: super::Route::outbound
    #[cfg(any(feature = "switch", feature = "nats"))]
    pub(crate) fn named(name: &'static str) -> Self {
        Self { name, wire: crate::peering::wire_id(name).unwrap_or(Self::NO_WIRE) }
    }
}

/// Carries events to other routers, serialized: from a worker process to its parent router,
/// or from a router through the switch. No method has a default body: every implementor
/// states what each one does (a silent default once dropped a worker's `try_notify`).
pub(crate) trait Uplink: Send + Sync + 'static {
    /// Whether notification `event` goes up too; `local` tells whether this router has
    /// subscribers for it.
    fn wants(&self, event: Outbound, local: bool) -> bool;
    /// Takes a notification now, or refuses it (full).
    fn try_notify(&self, event: Outbound, payload: &[u8]) -> Result<(), crate::Failure>;
    /// Takes a notification now without waiting and without a future (the hot path of
    /// `Ctx::notify`): `None` when it would have to wait (full), or never takes one this way;
    /// then [`notify`](Self::notify) sends it.
    fn offer(&self, event: Outbound, payload: &[u8]) -> Option<Result<(), crate::Failure>>;
    /// Delivers a notification elsewhere.
    fn notify(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
    ) -> BoxFuture<Result<(), crate::Failure>>;
    /// Sends a request elsewhere and waits for its serialized response.
    fn request(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<u8>, crate::Failure>>;
    /// Sends a request to every responder elsewhere and gathers their serialized responses.
    fn request_all(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Vec<Result<Vec<u8>, crate::Failure>>>;
    /// Opens tunnel `event` elsewhere; the link once the acceptor confirmed it.
    fn open(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        window: usize,
        timeout: Duration,
    ) -> BoxFuture<Result<crate::tunnel::remote::RemoteEnd, crate::Failure>>;
}

/// A transport to other routers (the switch's connector, the NATS link): built from its
/// configuration once the router's managers are known, started with the router, closed at
/// the [`Stage::Link`] of the shutdown. [`Joined`] makes one an [`Attachment`].
#[cfg(any(feature = "switch", feature = "nats"))]
pub(crate) trait Transport: Uplink + Sized {
    /// What the builder method was given.
    type Config: Send + Sync + 'static;
    /// The transport of a router running `managers`.
    fn build(
        config: Self::Config,
        managers: &[&'static ManagerDescriptor],
    ) -> Result<Self, StartError>;
    /// Joins the other routers.
    fn join<'a>(
        self: &'a Arc<Self>,
        shared: &'a Arc<super::Shared>,
    ) -> AttachFuture<'a, Result<(), StartError>>;
    /// Finishes what is in flight within `deadline`, then leaves.
    fn leave(&self, deadline: tokio::time::Instant) -> AttachFuture<'_, ()>;
    /// Ends at once.
    fn end(&self);
    /// Adds its lines to the router's metrics text.
    fn metrics(&self, out: &mut String);
    /// The other routers it joins this one to, for the topology.
    fn routers(&self) -> Vec<super::RouterNode>;
}

/// A router joined to others through transport `T`.
#[cfg(any(feature = "switch", feature = "nats"))]
pub(crate) struct Joined<T: Transport> {
    config: Option<T::Config>,
    link: std::sync::OnceLock<Arc<T>>,
}

#[cfg(any(feature = "switch", feature = "nats"))]
impl<T: Transport> Joined<T> {
    pub(crate) fn new(config: T::Config) -> Self {
        Self { config: Some(config), link: std::sync::OnceLock::new() }
    }

    /// The transport, once the router started.
    pub(crate) fn link(&self) -> Option<&Arc<T>> {
        self.link.get()
    }
}

#[cfg(any(feature = "switch", feature = "nats"))]
impl<T: Transport> Attachment for Joined<T> {
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
        let link = Arc::new(T::build(config, managers)?);
        let _ = self.link.set(link.clone());
        Ok(Some(link))
    }

    fn start<'a>(&'a self, ctx: &'a Ctx) -> AttachFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.link.get() {
                Some(link) => Ok(link.join(ctx.shared()).await?),
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
                link.leave(deadline).await;
            }
        })
    }

    fn abort(&self) {
        if let Some(link) = self.link.get() {
            link.end();
        }
    }

    fn render_metrics(&self, out: &mut String) {
        if let Some(link) = self.link.get() {
            link.metrics(out);
        }
    }

    fn routers(&self) -> Vec<super::RouterNode> {
        self.link.get().map(|link| link.routers()).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
