//! [`Dispatch`]: the per-event entry points of the `#[manager]` expansion.
//!
//! Kept off [`Event`] so that the event traits import nothing of the runtime. Every path the
//! expansion writes is `<E as Dispatch>::…`, spanned at the user's event type: a non-event
//! raises the one `E: Event` obligation there, reported once.

use super::WorkerStart;
use crate::envelope::{Envelope, EventBox, Reply};
#[cfg(doc)]
use crate::event::IntoReply;
use crate::event::{Event, TunnelEvent, kind};
use crate::router::BoxFuture;
use crate::{Ctx, Failure};

/// What the `#[manager]` expansion calls for one event type: open its envelope, finish a
/// call, run it on a thread or in a worker, deliver it from another process. Implemented for
/// every [`Event`]; not a public API.
#[doc(hidden)]
pub trait Dispatch: Event {
    /// [`Event::Output`], named through this trait so that the expansion's return-type check
    /// (`<R as IntoReply<<E as Dispatch>::Answer>>`) raises no obligation but `E: Dispatch`.
    #[doc(hidden)]
    type Answer;

    #[doc(hidden)]
    /// Opens an envelope addressed to a handler of this event.
    #[inline]
    fn __open(envelope: Envelope) -> (EventBox<Self>, Reply) {
        envelope.open::<Self, Self::Output>().unwrap_or_else(|| {
            unreachable!(
                "envelope routed to a handler of `{}` holds another event",
                Self::META.name
            )
        })
    }

    #[doc(hidden)]
    /// The event, owned (for handlers that take it by value).
    #[inline]
    fn __own(event: EventBox<Self>) -> Result<Self, Failure> {
        own(event)
    }

    #[doc(hidden)]
    /// Delivers the handler's result, converted by the expansion (see [`IntoReply`]).
    #[inline]
    fn __finish(ctx: &Ctx, reply: Reply, result: Result<Self::Output, Failure>) {
        send::<Self>(ctx, reply, result);
    }

    #[doc(hidden)]
    /// The handler's result as the reply: `result` is `<R as IntoReply<Self::Answer>>`'s
    /// split, `into_failure` is `<R::Error as IntoFailure>::into_failure`. Both are named in
    /// the expansion, spanned over the user's return type (the checks live there, not in
    /// bounds here).
    #[inline]
    fn __reply<X>(
        result: Result<Self::Output, X>,
        into_failure: fn(X) -> Failure,
    ) -> Result<Self::Output, Failure> {
        result.map_err(into_failure)
    }

    #[doc(hidden)]
    /// Answers with the failure of obtaining the event.
    fn __fail(ctx: &Ctx, reply: Reply, failure: Failure) {
        send::<Self>(ctx, reply, Err(failure));
    }

    #[doc(hidden)]
    /// Prepares a thread-mode call of handler `handler`.
    fn __thread<F>(ctx: &Ctx, handler: u16, envelope: Envelope, f: F) -> WorkerStart
    where
        F: FnOnce(Self, Ctx) -> Result<Self::Output, Failure> + Send + 'static,
    {
        crate::mode::thread::call::<Self, F>(ctx, handler, envelope, f)
    }

    #[doc(hidden)]
    /// Prepares a process-mode call of handler `handler` (parent side).
    fn __process_call(ctx: &Ctx, handler: u16, envelope: Envelope) -> WorkerStart {
        crate::mode::process::call::<Self>(ctx, handler, envelope)
    }

    #[doc(hidden)]
    /// Runs a process-mode handler on serialized input (worker side).
    fn __process<F>(input: &[u8], ctx: Ctx, f: F) -> Result<Vec<u8>, Failure>
    where
        F: FnOnce(Self, Ctx) -> Result<Self::Output, Failure>,
    {
        let event: Self = postcard::from_bytes(input).map_err(|e| {
            Failure::invalid(format!("malformed `{}` from the parent: {e}", Self::META.name))
        })?;
        let output = f(event, ctx)?;
        crate::ctx::encode(&output)
    }

    #[doc(hidden)]
    /// Decodes a serialized event from another process and delivers it as a notification.
    /// With `handled`, the token is dropped once every local handler returned (see
    /// [`Handled`](crate::envelope::Handled)).
    fn __notify_bytes(
        ctx: Ctx,
        bytes: &[u8],
        handled: Option<crate::envelope::Handled>,
    ) -> crate::registry::Delivering {
        use crate::registry::Delivering;
        let event: Self = match postcard::from_bytes(bytes) {
            Ok(event) => event,
            Err(e) => {
                let failure = Failure::invalid(format!("malformed `{}`: {e}", Self::META.name));
                return Delivering::Done(Some(Err(failure)));
            }
        };
        let priority = Self::META.priority;
        match handled {
            Some(handled) => match ctx.try_notify_handled(event, priority, handled) {
                Ok(result) => Delivering::Done(Some(result)),
                Err((event, handled)) => Delivering::Waiting(Box::pin(async move {
                    ctx.notify_handled(event, priority, handled).await
                })),
            },
            None => {
                Delivering::Waiting(Box::pin(
                    async move { ctx.notify_event(event, priority).await },
                ))
            }
        }
    }

    #[doc(hidden)]
    /// Decodes a serialized request from another process, requests it and encodes the answer.
    fn __request_bytes(
        ctx: Ctx,
        bytes: &[u8],
        timeout: std::time::Duration,
    ) -> BoxFuture<Result<Vec<u8>, Failure>> {
        let event: Result<Self, Failure> = postcard::from_bytes(bytes)
            .map_err(|e| Failure::invalid(format!("malformed `{}`: {e}", Self::META.name)));
        Box::pin(async move {
            let output = ctx.request_event(event?, timeout, Self::META.priority).await?;
            crate::ctx::encode(&output)
        })
    }
}

impl<E: Event> Dispatch for E {
    type Answer = E::Output;
}

/// What the `#[manager]` expansion calls for a tunnel acceptor, on the event's kind:
/// `<<E as Event>::Kind as Accept<E>>::…`. Implemented by [`kind::Tunnel`] alone, so an acceptor
/// of a notification or a request is this trait's error, on the user's event type (a bound
/// `E: TunnelEvent` on a function here would add a note naming that function).
#[diagnostic::on_unimplemented(
    message = "`{E}` is not an edri tunnel",
    label = "not a tunnel event",
    note = "only a tunnel's acceptor takes an `Opening<E>`; tunnels are declared with `#[edri::event(tunnel, send = T, receive = U)]`"
)]
pub trait Accept<E: Event> {
    #[doc(hidden)]
    /// Opens an envelope addressed to the acceptor of this tunnel.
    fn __accept(envelope: Envelope) -> (EventBox<E>, crate::Opening<E>, Reply);

    #[doc(hidden)]
    /// Prepares a process-mode call of tunnel acceptor `handler` (parent side).
    fn __process_accept_call(ctx: &Ctx, handler: u16, envelope: Envelope) -> WorkerStart;

    #[doc(hidden)]
    /// Runs a process-mode tunnel acceptor on serialized input (worker side).
    fn __process_accept<F>(input: &[u8], ctx: Ctx, f: F) -> Result<Vec<u8>, Failure>
    where
        F: FnOnce(E, crate::Opening<E>, Ctx) -> Result<(), Failure>;
}

#[diagnostic::do_not_recommend]
impl<E: TunnelEvent> Accept<E> for kind::Tunnel {
    #[inline]
    fn __accept(envelope: Envelope) -> (EventBox<E>, crate::Opening<E>, Reply) {
        envelope.open_tunnel::<E>().unwrap_or_else(|| {
            unreachable!(
                "envelope routed to the acceptor of `{}` holds another event",
                E::META.name
            )
        })
    }

    fn __process_accept_call(ctx: &Ctx, handler: u16, envelope: Envelope) -> WorkerStart {
        crate::mode::process::accept::<E>(ctx, handler, envelope)
    }

    fn __process_accept<F>(input: &[u8], ctx: Ctx, f: F) -> Result<Vec<u8>, Failure>
    where
        F: FnOnce(E, crate::Opening<E>, Ctx) -> Result<(), Failure>,
    {
        crate::mode::process::tunnel::accept_in_worker::<E, F>(input, ctx, f)
    }
}

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
            tracing::warn!(
                manager = ctx.manager_name().unwrap_or("(outside)"),
                event = E::META.name,
                %failure,
                "notification handler failed"
            );
        }
    }
    let _ = reply.send::<E, E::Output>(result);
}
