//! The runtime of EDRI: the router, managers and their mailboxes, and [`Ctx`].
//!
//! Users depend on the `edri` facade, which re-exports this crate together with the macros.

#![warn(unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
mod builtin;
mod caller;
mod ctx;
mod envelope;
mod error;
mod event;
mod failure;
mod framing;
pub mod health;
mod inline;
pub mod logging;
mod mailbox;
mod manager;
mod metrics;
mod mode;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
#[cfg(any(feature = "switch", feature = "nats"))]
mod peering;
mod registry;
mod router;
pub mod scheduler;
pub mod store;
mod support;
#[cfg(feature = "switch")]
#[cfg_attr(docsrs, doc(cfg(feature = "switch")))]
pub mod switch;
mod trace;
pub mod tunnel;
mod wire;

#[doc(hidden)]
pub mod __private;

/// The metrics crate of [`EdriBuilder::metrics_registry`]: the application's own counters,
/// gauges and histograms, served in `GET /metrics` after EDRI's.
pub use prometheus_client;

pub use builtin::{Started, Stopping};
pub use caller::Caller;
pub use ctx::{Call, CallAll, Ctx, FromCtx, Notify, Pending};
pub use error::{Error, Result, StartError, TryNotifyError};
pub use event::{
    Event, EventKind, EventMeta, FieldMeta, HttpRoute, IntoFailure, IntoReply, Location,
    Notification, Request, Response, TunnelEvent,
};
pub use failure::{Failure, Status};
pub use health::{Health, HealthCheck, HealthCheckResponse};
pub use manager::{
    ErasedManager, HandlerDescriptor, Manager, ManagerDescriptor, ManagerOptions, ManagerVitals,
    Mode, ProcessFn, QueueKind,
};
pub use mode::process::{WORKER_ENV, is_worker, serve_if_worker};

/// The kinds of event as types: what [`Event::Kind`] names for each event (`#[event]` sets it).
///
/// Users name these only when the compiler does: a handler of a tunnel that takes no
/// `Opening<E>` fails on [`Plain`](kind::Plain), an acceptor of a notification or a request on
/// [`Accept`](kind::Accept).
pub mod kind {
    pub use crate::event::kind::{Kind, Notification, Plain, Request, Tunnel};
    pub use crate::mode::Accept;
}
pub use router::{
    Edri, EdriBuilder, EventNode, HandlerNode, ManagerNode, RouterNode, Running, SenderNode,
    ShutdownReport, Topology,
};
pub use scheduler::{Job, SchedulerManager};
pub use store::{Changed, Store, StoreHandle, StoreManager};
pub use tunnel::{Acceptor, Chunk, Open, Opener, Opening, Tunnel, TunnelReceiver, TunnelSender};
