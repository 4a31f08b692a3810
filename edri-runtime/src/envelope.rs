//! What travels through a mailbox: an [`Envelope`] holding a type-erased event.
//!
//! In-process delivery never serializes. A notification for one subscriber travels inside the
//! envelope when small (boxed otherwise), one for several subscribers is one `Arc<E>` they
//! share; a request travels with its reply sender, inside the envelope when both are small,
//! in one `Box` otherwise.

use crate::Failure;
use crate::inline::Inline;
use std::any::Any;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Where a handler's answer goes: the requester of a request, nobody for a notification.
///
/// Type-erased (it keeps the request's own allocation, whose event was taken out) so that
/// generated code never holds a value whose type names the event's output.
///
/// A reply dropped while its handler panics is not lost: it is kept (on that thread) until
/// the code that caught the panic answers it with `Crashed` and the panic's text, so the
/// requester learns why instead of "stopped without answering".
pub struct Reply {
    to: ReplyTo,
    /// Answers `to` with a failure (the typed half of `Reply::send`, for `answer_panicked`).
    fail: fn(ReplyTo, Failure),
}

enum ReplyTo {
    /// A notification: nobody waits.
    Nobody,
    /// The request's box (`RequestCell<E, O>`, its event taken out).
    Cell(Box<dyn Any + Send>),
    /// The reply sender itself (`oneshot::Sender<Result<O, Failure>>`), for inline requests.
    Sender(Inline),
    /// A tunnel's acceptor: an error rejects the opening if it is still unanswered.
    Verdict(Arc<crate::tunnel::Verdict>),
    /// A notification another router waits on: nobody gets an answer, and the token is
    /// dropped once the handler returned.
    Handled(#[allow(dead_code, reason = "held for its drop, which reports the delivery")] Handled),
}

/// A delivery that somebody outside this router waits on (another router through the
/// switch): the remote sender is told the event was handled once every handler it went to
/// returned, i.e. once the last clone of this token is dropped after its handler.
///
/// A token whose envelope is dropped before any handler opened it (the router stopped) is
/// *abandoned* instead: the sender keeps the event and delivers it again.
#[doc(hidden)]
#[derive(Clone)]
pub struct Handled(Arc<dyn Completion>);

/// What a transport does when a delivery it waits on ends ([`Handled`]).
pub(crate) trait Completion: Send + Sync + 'static {
    /// The event was dropped unhandled by one of its receivers: do not report it handled
    /// when the token is dropped.
    fn abandon(&self);
}

impl Handled {
    #[cfg(any(feature = "switch", feature = "nats"))]
    pub(crate) fn new(completion: Arc<dyn Completion>) -> Self {
        Self(completion)
    }
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handled").finish_non_exhaustive()
    }
}

/// A reply unwound by a panic, and how to answer it.
type Orphan = (ReplyTo, fn(ReplyTo, Failure));

thread_local! {
    /// Replies dropped on this thread by a panicking handler, waiting for [`answer_panicked`].
    static PANICKED: std::cell::RefCell<Vec<Orphan>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Answers the replies that a panic unwound on this thread with `failure` (`Crashed`, naming
/// the handler and carrying the panic's text). Called right where the panic was caught.
pub(crate) fn answer_panicked(failure: &Failure) {
    let orphans = PANICKED.try_with(|p| std::mem::take(&mut *p.borrow_mut())).unwrap_or_default();
    for (to, fail) in orphans {
        fail(to, failure.clone());
    }
}

impl Reply {
    fn new<E: Send + Sync + 'static, O: Send + 'static>(to: ReplyTo) -> Self {
        Self { to, fail: |to, failure| drop(Reply::new::<E, O>(to).send::<E, O>(Err(failure))) }
    }

    /// Sends the answer of event `E` (output `O`); `None` back when nobody asked.
    pub(crate) fn send<E: Send + Sync + 'static, O: Send + 'static>(
        mut self,
        result: Result<O, Failure>,
    ) -> Option<Result<O, Failure>> {
        // The requester may have given up (timeout): a failed send is fine then.
        let tx = match std::mem::replace(&mut self.to, ReplyTo::Nobody) {
            ReplyTo::Nobody | ReplyTo::Handled(_) => return Some(result),
            ReplyTo::Verdict(verdict) => {
                if let Err(failure) = result {
                    verdict.answer(Err(failure));
                }
                return None;
            }
            ReplyTo::Cell(cell) => match cell.downcast::<RequestCell<E, O>>() {
                Ok(cell) => cell.reply,
                Err(_) => unreachable!("a reply is sent for the event it was opened as"),
            },
            ReplyTo::Sender(inline) => match inline.take::<oneshot::Sender<Result<O, Failure>>>() {
                Ok(tx) => Some(tx),
                Err(_) => unreachable!("a reply is sent for the event it was opened as"),
            },
        };
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
        None
    }

    /// Whether somebody waits for the answer.
    pub fn is_request(&self) -> bool {
        !matches!(self.to, ReplyTo::Nobody | ReplyTo::Handled(_))
    }

    /// Resolves once the requester of event `E` (output `O`) stopped waiting: it timed out or
    /// dropped its request. Never, for a notification or a tunnel's acceptor.
    pub(crate) async fn requester_gone<E: Send + Sync + 'static, O: Send + 'static>(&mut self) {
        let tx = match &mut self.to {
            ReplyTo::Cell(cell) => {
                cell.downcast_mut::<RequestCell<E, O>>().and_then(|c| c.reply.as_mut())
            }
            ReplyTo::Sender(inline) => inline.get_mut::<oneshot::Sender<Result<O, Failure>>>(),
            ReplyTo::Nobody | ReplyTo::Verdict(_) | ReplyTo::Handled(_) => None,
        };
        match tx {
            Some(tx) => tx.closed().await,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if std::thread::panicking() && self.is_request() {
            let to = std::mem::replace(&mut self.to, ReplyTo::Nobody);
            // A thread being torn down has no list any more: the reply is dropped then, and
            // the requester sees that its responder stopped without answering.
            let _ = PANICKED.try_with(|p| p.borrow_mut().push((to, self.fail)));
        }
    }
}

/// One delivery in a manager's mailbox.
pub struct Envelope {
    /// Index of the handler in the receiving manager's descriptor.
    pub(crate) handler: u16,
    /// Lane in a priority mailbox; 0 is most urgent.
    pub(crate) priority: u8,
    pub(crate) payload: Payload,
}

pub(crate) enum Payload {
    /// A small notification for its only subscriber, stored in the envelope itself.
    Inline(Inline),
    /// A notification for its only subscriber, too large to store inline.
    Owned(Box<dyn Any + Send>),
    /// A notification, shared by all subscribers.
    Shared(Arc<dyn Any + Send + Sync>),
    /// A small request and its reply sender, `(E, oneshot::Sender<..>)`, stored inline.
    InlineRequest(Inline),
    /// A request: `Box<RequestCell<E, O>>`.
    Request(Box<dyn Any + Send>),
    /// A tunnel being opened: `Box<(E, Opening<E>)>`.
    Tunnel(Box<dyn Any + Send>),
    /// A notification somebody outside the router waits on: the inner payload and its token.
    Tracked(Box<Tracked>),
    /// Another payload, sent by a handler while traces are on: the sender's link
    /// ([`crate::trace`]). The serve loop takes it off before the handler opens the envelope.
    Traced(Box<(crate::trace::Link, Payload)>),
    /// Stop after everything queued before this.
    Stop,
}

/// `payload`, with the current handler's trace link when there is one.
#[inline(always)]
fn traced(payload: Payload) -> Payload {
    if !crate::trace::any() {
        return payload;
    }
    traced_slow(payload)
}

#[cold]
#[inline(never)]
fn traced_slow(payload: Payload) -> Payload {
    match crate::trace::current() {
        None => payload,
        Some(link) => Payload::Traced(Box::new((link, payload))),
    }
}

/// A notification payload with its [`Handled`] token; dropped unopened, the token is
/// abandoned.
pub(crate) struct Tracked {
    payload: Option<Payload>,
    handled: Option<Handled>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.payload.is_some()
            && let Some(handled) = &self.handled
        {
            handled.0.abandon();
        }
    }
}

/// The event and reply sender of one request, in one allocation.
pub(crate) struct RequestCell<E, O> {
    pub(crate) event: Option<EventBox<E>>,
    pub(crate) reply: Option<oneshot::Sender<Result<O, Failure>>>,
}

/// An event as a handler receives it: owned (requests) or shared (notifications,
/// `request_all`).
pub enum EventBox<E> {
    /// The only copy.
    Owned(E),
    /// Shared with other receivers.
    Shared(Arc<E>),
}

impl<E> std::ops::Deref for EventBox<E> {
    type Target = E;
    #[inline]
    fn deref(&self) -> &E {
        match self {
            Self::Owned(e) => e,
            Self::Shared(e) => e,
        }
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.payload {
            Payload::Inline(_) => "inline",
            Payload::Owned(_) => "owned",
            Payload::Shared(_) => "shared",
            Payload::InlineRequest(_) => "inline request",
            Payload::Request(_) => "request",
            Payload::Tunnel(_) => "tunnel",
            Payload::Tracked(_) => "tracked",
            Payload::Traced(_) => "traced",
            Payload::Stop => "stop",
        };
        f.debug_struct("Envelope").field("handler", &self.handler).field("payload", &kind).finish()
    }
}

impl Envelope {
    #[inline]
    pub(crate) fn shared(handler: u16, priority: u8, event: Arc<dyn Any + Send + Sync>) -> Self {
        Self { handler, priority, payload: traced(Payload::Shared(event)) }
    }

    #[inline]
    pub(crate) fn request<E: Send + Sync + 'static, O: Send + 'static>(
        handler: u16,
        priority: u8,
        event: EventBox<E>,
        reply: oneshot::Sender<Result<O, Failure>>,
    ) -> Self {
        Self {
            handler,
            priority,
            payload: traced(match event {
                EventBox::Owned(event) => match Inline::new((event, reply)) {
                    Ok(inline) => Payload::InlineRequest(inline),
                    Err((event, reply)) => Payload::Request(Box::new(RequestCell {
                        event: Some(EventBox::Owned(event)),
                        reply: Some(reply),
                    })),
                },
                shared => Payload::Request(Box::new(RequestCell {
                    event: Some(shared),
                    reply: Some(reply),
                })),
            }),
        }
    }

    /// A notification for a single subscriber: inline when small, boxed otherwise.
    #[inline]
    pub(crate) fn single<E: Send + 'static>(handler: u16, priority: u8, event: E) -> Self {
        let payload = match Inline::new(event) {
            Ok(inline) => Payload::Inline(inline),
            Err(event) => Payload::Owned(Box::new(event)),
        };
        Self { handler, priority, payload: traced(payload) }
    }

    /// A tunnel being opened, for its acceptor.
    pub(crate) fn tunnel<E: crate::TunnelEvent>(
        handler: u16,
        priority: u8,
        event: E,
        opening: crate::Opening<E>,
    ) -> Self {
        Self { handler, priority, payload: traced(Payload::Tunnel(Box::new((event, opening)))) }
    }

    /// Opens the envelope of a tunnel being opened: the event, the opening, and where the
    /// acceptor's result goes.
    pub(crate) fn open_tunnel<E: crate::TunnelEvent>(
        self,
    ) -> Option<(EventBox<E>, crate::Opening<E>, Reply)> {
        match self.payload {
            Payload::Tunnel(any) => {
                let (event, opening) = *any.downcast::<(E, crate::Opening<E>)>().ok()?;
                let reply = Reply::new::<E, ()>(ReplyTo::Verdict(opening.verdict().clone()));
                Some((EventBox::Owned(event), opening, reply))
            }
            _ => None,
        }
    }

    /// A notification for one subscriber that somebody outside the router waits on:
    /// `event` is the subscriber's own copy or one shared by all of them.
    pub(crate) fn tracked<E: Send + Sync + 'static>(
        handler: u16,
        priority: u8,
        event: EventBox<E>,
        handled: Handled,
    ) -> Self {
        let payload = match event {
            EventBox::Owned(event) => Payload::Owned(Box::new(event)),
            EventBox::Shared(event) => Payload::Shared(event),
        };
        let tracked = Tracked { payload: Some(payload), handled: Some(handled) };
        Self { handler, priority, payload: traced(Payload::Tracked(Box::new(tracked))) }
    }

    /// Takes the sender's trace link off the envelope, if it carries one.
    #[inline]
    pub(crate) fn take_link(&mut self) -> Option<crate::trace::Link> {
        if !matches!(self.payload, Payload::Traced(_)) {
            return None;
        }
        match std::mem::replace(&mut self.payload, Payload::Stop) {
            Payload::Traced(traced) => {
                let (link, payload) = *traced;
                self.payload = payload;
                Some(link)
            }
            _ => None,
        }
    }

    pub(crate) fn stop() -> Self {
        Self { handler: u16::MAX, priority: u8::MAX, payload: Payload::Stop }
    }

    /// Index of the handler this envelope is for.
    #[inline]
    pub fn handler(&self) -> u16 {
        self.handler
    }

    /// Opens the envelope as event `E` with output `O`.
    ///
    /// The router only puts `E` into an envelope addressed to a handler of `E`, so a
    /// mismatch is a bug in the runtime, reported as `None`.
    pub(crate) fn open<E: Send + Sync + 'static, O: Send + 'static>(
        self,
    ) -> Option<(EventBox<E>, Reply)> {
        match self.payload {
            Payload::Inline(inline) => inline
                .take::<E>()
                .ok()
                .map(|e| (EventBox::Owned(e), Reply::new::<E, O>(ReplyTo::Nobody))),
            Payload::Owned(any) => any
                .downcast::<E>()
                .ok()
                .map(|e| (EventBox::Owned(*e), Reply::new::<E, O>(ReplyTo::Nobody))),
            Payload::Shared(any) => any
                .downcast::<E>()
                .ok()
                .map(|e| (EventBox::Shared(e), Reply::new::<E, O>(ReplyTo::Nobody))),
            Payload::Request(any) => {
                let mut cell = any.downcast::<RequestCell<E, O>>().ok()?;
                let event = cell.event.take()?;
                Some((event, Reply::new::<E, O>(ReplyTo::Cell(cell))))
            }
            Payload::InlineRequest(inline) => {
                let (event, tx) = inline.take::<(E, oneshot::Sender<Result<O, Failure>>)>().ok()?;
                let sender = Inline::new(tx).ok()?;
                Some((EventBox::Owned(event), Reply::new::<E, O>(ReplyTo::Sender(sender))))
            }
            Payload::Tracked(mut tracked) => {
                let payload = tracked.payload.take()?;
                let handled = tracked.handled.take()?;
                let inner = Self { handler: self.handler, priority: self.priority, payload };
                let (event, mut reply) = inner.open::<E, O>()?;
                if matches!(reply.to, ReplyTo::Nobody) {
                    reply.to = ReplyTo::Handled(handled);
                }
                Some((event, reply))
            }
            Payload::Traced(traced) => {
                let (_, payload) = *traced;
                Self { handler: self.handler, priority: self.priority, payload }.open::<E, O>()
            }
            Payload::Tunnel(_) | Payload::Stop => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    #[test]
    fn small_requests_travel_inline_and_large_ones_boxed() {
        let (tx, mut rx) = oneshot::channel::<Result<u64, Failure>>();
        let envelope = Envelope::request(0, 0, EventBox::Owned(7u32), tx);
        assert!(matches!(envelope.payload, Payload::InlineRequest(_)));
        let (event, reply) = envelope.open::<u32, u64>().unwrap();
        assert_eq!(*event, 7);
        assert!(reply.is_request());
        assert!(reply.send::<u32, u64>(Ok(8)).is_none());
        assert_eq!(rx.try_recv().unwrap(), Ok(8));

        // Never answered: the sender is dropped with the envelope, the requester sees it.
        let (tx, mut rx) = oneshot::channel::<Result<u64, Failure>>();
        drop(Envelope::request(0, 0, EventBox::Owned(7u32), tx));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

        let (tx, mut rx) = oneshot::channel::<Result<u64, Failure>>();
        let envelope = Envelope::request(0, 0, EventBox::Owned([1u8; 64]), tx);
        assert!(matches!(envelope.payload, Payload::Request(_)));
        let (event, reply) = envelope.open::<[u8; 64], u64>().unwrap();
        assert_eq!(event[63], 1);
        assert!(reply.send::<[u8; 64], u64>(Err(Failure::invalid("no"))).is_none());
        assert_eq!(rx.try_recv().unwrap().unwrap_err().status(), crate::Status::Invalid);
    }
}
