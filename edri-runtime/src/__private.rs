//! What the macros' expansions call. Not a public API: names and shapes change freely.
//!
//! Every expansion reaches the event through [`typed`], the only function with an
//! `E: Event` bound, always spanned at the user's event type: a non-event type then gives one
//! error on that type (rustc merges the identical diagnostics), and every helper below is
//! free of bounds on `E`, so nothing else repeats it.

pub use crate::envelope::{Envelope, EventBox, ReplyTo};
pub use crate::event::{
    Event, EventKind, EventMeta, FieldMeta, HttpRoute, IntoReply, Location, Notification, Request,
    Tunnel, fingerprint,
};
pub use crate::manager::{
    ErasedManager, HandlerDescriptor, Manager, ManagerDescriptor, ManagerOptions,
    ManagerRegistration, Mode, QueueKind,
};
pub use crate::router::EventRegistration;
pub use crate::{Ctx, Failure};
pub use core::any::TypeId;
pub use inventory;
pub use serde;
pub use tokio;

use core::marker::PhantomData;

/// The event type `E` with output `O`, proven to be an event once, by [`typed`].
pub struct Typed<E, O> {
    meta: &'static EventMeta,
    type_id: fn() -> TypeId,
    own: fn(EventBox<E>) -> Result<E, Failure>,
    _types: PhantomData<fn() -> (E, O)>,
}

impl<E, O> Clone for Typed<E, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E, O> Copy for Typed<E, O> {}

/// The one place an expansion states `E: Event`.
pub const fn typed<E: Event>() -> Typed<E, E::Output> {
    Typed {
        meta: E::META,
        type_id: TypeId::of::<E>,
        own: own::<E>,
        _types: PhantomData,
    }
}

/// Ownership of a possibly shared event: the last holder moves it out; otherwise it is copied
/// through its serde form (events need not be `Clone`).
fn own<E: Event>(event: EventBox<E>) -> Result<E, Failure> {
    match event {
        EventBox::Owned(e) => Ok(e),
        EventBox::Shared(arc) => std::sync::Arc::try_unwrap(arc).or_else(|arc| {
            postcard::to_stdvec(&*arc)
                .and_then(|bytes| postcard::from_bytes(&bytes))
                .map_err(|e| Failure::failed(format!("copying `{}`: {e}", E::META.name)))
        }),
    }
}

impl<E: Send + Sync + 'static, O: Send + 'static> Typed<E, O> {
    /// The handler descriptor of a `#[solve]` method for this event.
    pub const fn handler(
        self,
        method: &'static str,
        mode: Mode,
        limit: usize,
        location: Location,
    ) -> HandlerDescriptor {
        HandlerDescriptor {
            event: self.meta,
            event_type: self.type_id,
            method,
            mode,
            limit,
            location,
        }
    }

    /// The registration of an `#[event]` declaration.
    pub const fn registration(self) -> EventRegistration {
        EventRegistration {
            meta: self.meta,
            type_id: self.type_id,
        }
    }

    /// Opens an envelope addressed to a handler of this event.
    #[inline]
    pub fn open(self, envelope: Envelope) -> (EventBox<E>, ReplyTo<O>) {
        envelope.open::<E, O>().unwrap_or_else(|| {
            unreachable!(
                "envelope for `{}` routed to a handler of another event",
                self.meta.name
            )
        })
    }

    /// The event, owned (for handlers that take `E` by value).
    #[inline]
    pub fn own(self, event: EventBox<E>) -> Result<E, Failure> {
        (self.own)(event)
    }

    /// Sends the handler's result to the requester, or logs a notification handler's error.
    #[inline]
    pub fn finish<R: IntoReply<O>>(self, ctx: &Ctx, reply: ReplyTo<O>, result: R) {
        let result = result.into_reply();
        match reply {
            Some(tx) => {
                if let Err(failure) = &result {
                    ctx.shared().stats(ctx.origin()).failed();
                    tracing::debug!(event = self.meta.name, %failure, "request failed");
                }
                // The requester may have given up (timeout): nothing to do then.
                let _ = tx.send(result);
            }
            None => {
                if let Err(failure) = result {
                    crate::manager::log_notification_error(ctx, self.meta, &failure);
                }
            }
        }
    }

    /// Answers with the failure of obtaining the event.
    pub fn fail(self, ctx: &Ctx, reply: ReplyTo<O>, failure: Failure) {
        self.finish::<Result<O, Failure>>(ctx, reply, Err(failure));
    }

    /// Runs a thread-mode handler on the blocking pool, at most `limit` at once for this
    /// handler; later calls wait in arrival order (the manager waits for a free slot, so its
    /// mailbox applies backpressure meanwhile).
    pub async fn thread<R, F>(self, ctx: &Ctx, handler: u16, envelope: Envelope, f: F)
    where
        R: IntoReply<O> + 'static,
        F: FnOnce(E, Ctx) -> R + Send + 'static,
    {
        let (event, reply) = self.open(envelope);
        let permit = match ctx.shared().managers[ctx.origin() as usize].limits[usize::from(handler)]
            .clone()
        {
            Some(limit) => limit.acquire_owned().await.ok(),
            None => None,
        };
        let ctx = ctx.clone();
        let meta = self.meta;
        let span = tracing::Span::current();
        ctx.clone().spawn(async move {
            let worker_ctx = ctx.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let _enter = span.enter();
                let _permit = permit;
                (self.own)(event).map(|event| f(event, worker_ctx).into_reply())
            })
            .await;
            let result = match joined {
                Ok(Ok(result)) => result,
                Ok(Err(failure)) => Err(failure),
                Err(join) => {
                    let message = join.try_into_panic().map_or_else(
                        |_| "cancelled".to_owned(),
                        |p| crate::manager::panic_message(&*p).to_owned(),
                    );
                    tracing::error!(event = meta.name, panic = %message, "thread handler panicked");
                    ctx.shared().stats(ctx.origin()).crashed();
                    Err(Failure::crashed(format!(
                        "handler of `{}` panicked: {message}",
                        meta.name
                    )))
                }
            };
            self.finish::<Result<O, Failure>>(&ctx, reply, result);
        });
    }
}

/// An envelope whose handler index is unknown to the manager: a runtime bug, logged.
#[cold]
pub fn unknown_handler(descriptor: &ManagerDescriptor, envelope: &Envelope) {
    tracing::error!(
        manager = descriptor.name,
        handler = envelope.handler(),
        "no such handler"
    );
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
    builder
        .enable_all()
        .build()
        .expect("edri: cannot build the tokio runtime")
}
