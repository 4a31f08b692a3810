//! What the macros' expansions call. Not a public API: names and shapes change freely.
//!
//! Expansions reach an event only through qualified paths `<E as Event>::META` and
//! `<E as Dispatch>::…`, every one spanned at the user's event type: a non-event type
//! then raises the same obligation at the same place everywhere, which rustc reports once.
//! No generated value has a type naming `E::Output` (such a type cannot be formed for a
//! non-event, and each value would repeat the error); the return check is the bound of
//! `Dispatch::__finish::<R>`, spanned at the user's return type.

pub use crate::api::hooks::ApiHooks;
pub use crate::api::schema::{
    EventSchema, FieldSchema, SchemaGenerator, SchemaProbe, ViaJsonSchema, ViaNoSchema,
    object as object_schema,
};
pub use crate::envelope::{Envelope, EventBox, Reply};
pub use crate::event::kind;
pub use crate::event::{
    Event, EventKind, EventMeta, FieldMeta, HttpRoute, IntoReply, Location, Notification, Request,
    TunnelEvent, fingerprint, fingerprint_parts,
};
pub use crate::manager::{
    ErasedManager, HandlerDescriptor, Manager, ManagerDescriptor, ManagerOptions, Mode, ProcessFn,
    QueueKind,
};
pub use crate::mode::process::serve_if_worker;
pub use crate::mode::{Dispatch, WorkerStart};
pub use crate::registry::{EventRegistration, ManagerRegistration};
pub use crate::tunnel::remote::accept_bytes;
pub use crate::{Ctx, Failure};
pub use core::any::TypeId;
pub use inventory;
pub use serde;
pub use tokio;

use core::marker::PhantomData;

/// Ownership of a possibly shared event: the last holder moves it out; otherwise it is copied
/// through its serde form (events need not be `Clone`).
pub(crate) fn own<E: Event>(event: EventBox<E>) -> Result<E, Failure> {
    match event {
        EventBox::Owned(e) => Ok(e),
        EventBox::Shared(arc) => std::sync::Arc::try_unwrap(arc).or_else(|arc| {
            postcard::to_stdvec(&*arc)
                .and_then(|bytes| postcard::from_bytes(&bytes))
                .map_err(|e| Failure::failed(format!("copying `{}`: {e}", E::META.name)))
        }),
    }
}

/// Delivers a handler's result: to the requester, or (notifications) to the log.
pub(crate) fn send<E: Event>(ctx: &Ctx, reply: Reply, result: Result<E::Output, Failure>) {
    if let Err(failure) = &result {
        ctx.shared().stats(ctx.origin()).failed();
        if reply.is_request() {
            tracing::debug!(event = E::META.name, %failure, "request failed");
        } else {
            tracing::warn!(event = E::META.name, %failure, "notification handler failed");
        }
    }
    let _ = reply.send::<E, E::Output>(result);
}

/// An envelope whose handler index is unknown to the manager: a runtime bug, logged.
#[cold]
pub fn unknown_handler(descriptor: &ManagerDescriptor, envelope: &Envelope) {
    tracing::error!(manager = descriptor.name, handler = envelope.handler(), "no such handler");
}

/// Probes whether `M: Default` at the expansion site (autoref specialisation).
pub struct DefaultProbe<M>(PhantomData<fn() -> M>);

impl<M> DefaultProbe<M> {
    /// A probe.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M> Default for DefaultProbe<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// Picked when `M: Default`.
pub trait ViaDefault {
    /// A default instance.
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>>;
}

impl<M: Manager + Default> ViaDefault for &DefaultProbe<M> {
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>> {
        Some(Box::new(M::default()))
    }
}

/// Picked otherwise.
pub trait ViaNoDefault {
    /// No instance.
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>>;
}

impl<M: Manager> ViaNoDefault for DefaultProbe<M> {
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>> {
        None
    }
}

/// `TypeId::of::<M>` as a function pointer.
pub fn type_id_of<M: 'static>() -> TypeId {
    TypeId::of::<M>()
}

/// The runtime a `#[edri::main]` function runs on.
///
/// # Panics
/// When the operating system refuses to create the runtime's threads or I/O driver.
pub fn build_runtime(current_thread: bool, workers: Option<usize>) -> tokio::runtime::Runtime {
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            b.worker_threads(n);
        }
        b
    };
    builder.enable_all().build().expect("edri: cannot build the tokio runtime")
}
