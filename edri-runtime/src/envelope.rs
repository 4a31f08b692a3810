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
    Sender(Inline<1>),
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

/// One delivery in a manager's mailbox: 80 bytes, so that an event of up to 64 bytes travels
/// in it without a box (the mailbox's slot is the only memory a queued event takes).
///
/// `kind` says what `body` holds; `body` checks the type it is opened as, and drops what it
/// holds when the envelope is dropped unopened.
pub struct Envelope {
    /// Index of the handler in the receiving manager's descriptor.
    pub(crate) handler: u16,
    /// Lane in a priority mailbox; 0 is most urgent.
    pub(crate) priority: u8,
    kind: Kind,
    body: Inline,
}

/// What an envelope's body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// A notification for its only subscriber, stored in the envelope itself: `E`.
    Inline,
    /// A notification for its only subscriber, too large to store inline: `Box<E>`.
    Owned,
    /// A notification, shared by all subscribers: `Arc<dyn Any + Send + Sync>`.
    Shared,
    /// A small request and its reply sender: `(E, oneshot::Sender<..>)`.
    InlineRequest,
    /// A request: `Box<RequestCell<E, O>>`.
    Request,
    /// A tunnel being opened: `Box<(E, Opening<E>)>`.
    Tunnel,
    /// A notification somebody outside the router waits on: `Box<Tracked>`.
    Tracked,
    /// Another envelope, sent by a handler while traces are on, with the sender's link
    /// ([`crate::trace`]): `Box<(Link, Envelope)>`. The serve loop takes it off before the
    /// handler opens the envelope.
    Traced,
    /// Stop after everything queued before this: `()`.
    Stop,
}

/// `value` (a pointer or two) as an envelope's body.
#[inline(always)]
fn body<T: Send + 'static>(value: T) -> Inline {
    match Inline::new(value) {
        Ok(inline) => inline,
        Err(_) => unreachable!("pointers fit inline"),
    }
}

/// A notification payload with its [`Handled`] token; dropped unopened, the token is
/// abandoned.
pub(crate) struct Tracked {
    payload: Option<Envelope>,
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
        f.debug_struct("Envelope")
            .field("handler", &self.handler)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Envelope {
    #[inline(always)]
    fn new(handler: u16, priority: u8, kind: Kind, body: Inline) -> Self {
        Self { handler, priority, kind, body }.traced()
    }

    /// `self`, with the current handler's trace link when there is one.
    #[inline(always)]
    fn traced(self) -> Self {
        if !crate::trace::any() {
            return self;
        }
        self.traced_slow()
    }

    #[cold]
    #[inline(never)]
    fn traced_slow(self) -> Self {
        match crate::trace::current() {
            None => self,
            Some(link) => Self {
                handler: self.handler,
                priority: self.priority,
                kind: Kind::Traced,
                body: body(Box::new((link, self))),
            },
        }
    }

    #[inline]
    pub(crate) fn shared(handler: u16, priority: u8, event: Arc<dyn Any + Send + Sync>) -> Self {
        Self::new(handler, priority, Kind::Shared, body(event))
    }

    #[inline]
    pub(crate) fn request<E: Send + Sync + 'static, O: Send + 'static>(
        handler: u16,
        priority: u8,
        event: EventBox<E>,
        reply: oneshot::Sender<Result<O, Failure>>,
    ) -> Self {
        let boxed =
            |event, reply| body(Box::new(RequestCell { event: Some(event), reply: Some(reply) }));
        let (kind, body) = match event {
            EventBox::Owned(event) => match Inline::new((event, reply)) {
                Ok(inline) => (Kind::InlineRequest, inline),
                Err((event, reply)) => (Kind::Request, boxed(EventBox::Owned(event), reply)),
            },
            shared => (Kind::Request, boxed(shared, reply)),
        };
        Self::new(handler, priority, kind, body)
    }

    /// A notification for a single subscriber: inline when small, boxed otherwise.
    #[inline]
    pub(crate) fn single<E: Send + 'static>(handler: u16, priority: u8, event: E) -> Self {
        let (kind, body) = match Inline::new(event) {
            Ok(inline) => (Kind::Inline, inline),
            Err(event) => (Kind::Owned, body(Box::new(event))),
        };
        Self::new(handler, priority, kind, body)
    }

    /// A tunnel being opened, for its acceptor.
    pub(crate) fn tunnel<E: crate::TunnelEvent>(
        handler: u16,
        priority: u8,
        event: E,
        opening: crate::Opening<E>,
    ) -> Self {
        Self::new(handler, priority, Kind::Tunnel, body(Box::new((event, opening))))
    }

    /// Opens the envelope of a tunnel being opened: the event, the opening, and where the
    /// acceptor's result goes.
    pub(crate) fn open_tunnel<E: crate::TunnelEvent>(
        self,
    ) -> Option<(EventBox<E>, crate::Opening<E>, Reply)> {
        if self.kind != Kind::Tunnel {
            return None;
        }
        let (event, opening) = *self.body.take::<Box<(E, crate::Opening<E>)>>().ok()?;
        let reply = Reply::new::<E, ()>(ReplyTo::Verdict(opening.verdict().clone()));
        Some((EventBox::Owned(event), opening, reply))
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
            EventBox::Owned(event) => {
                Self { handler, priority, kind: Kind::Owned, body: body(Box::new(event)) }
            }
            EventBox::Shared(event) => Self {
                handler,
                priority,
                kind: Kind::Shared,
                body: body(event as Arc<dyn Any + Send + Sync>),
            },
        };
        let tracked = Tracked { payload: Some(payload), handled: Some(handled) };
        Self::new(handler, priority, Kind::Tracked, body(Box::new(tracked)))
    }

    /// Takes the sender's trace link off the envelope, if it carries one.
    #[inline]
    pub(crate) fn take_link(&mut self) -> Option<crate::trace::Link> {
        if self.kind != Kind::Traced {
            return None;
        }
        let this = std::mem::replace(self, Self::stop());
        let (link, inner) = *this.body.take::<Box<(crate::trace::Link, Self)>>().ok()?;
        *self = inner;
        Some(link)
    }

    pub(crate) fn stop() -> Self {
        Self { handler: u16::MAX, priority: u8::MAX, kind: Kind::Stop, body: body(()) }
    }

    /// Whether this is the envelope that stops the manager.
    #[inline]
    pub(crate) fn is_stop(&self) -> bool {
        self.kind == Kind::Stop
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
        let nobody = || Reply::new::<E, O>(ReplyTo::Nobody);
        match self.kind {
            Kind::Inline => self.body.take::<E>().ok().map(|e| (EventBox::Owned(e), nobody())),
            Kind::Owned => self.body.take::<Box<E>>().ok().map(|e| (EventBox::Owned(*e), nobody())),
            Kind::Shared => {
                let any = self.body.take::<Arc<dyn Any + Send + Sync>>().ok()?;
                any.downcast::<E>().ok().map(|e| (EventBox::Shared(e), nobody()))
            }
            Kind::Request => {
                let mut cell = self.body.take::<Box<RequestCell<E, O>>>().ok()?;
                let event = cell.event.take()?;
                Some((event, Reply::new::<E, O>(ReplyTo::Cell(cell))))
            }
            Kind::InlineRequest => {
                let (event, tx) =
                    self.body.take::<(E, oneshot::Sender<Result<O, Failure>>)>().ok()?;
                let sender = Inline::new(tx).ok()?;
                Some((EventBox::Owned(event), Reply::new::<E, O>(ReplyTo::Sender(sender))))
            }
            Kind::Tracked => {
                let mut tracked = self.body.take::<Box<Tracked>>().ok()?;
                let inner = tracked.payload.take()?;
                let handled = tracked.handled.take()?;
                let (event, mut reply) = inner.open::<E, O>()?;
                if matches!(reply.to, ReplyTo::Nobody) {
                    reply.to = ReplyTo::Handled(handled);
                }
                Some((event, reply))
            }
            Kind::Traced => {
                let (_, inner) = *self.body.take::<Box<(crate::trace::Link, Self)>>().ok()?;
                inner.open::<E, O>()
            }
            Kind::Tunnel | Kind::Stop => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    #[test]
    fn an_envelope_is_80_bytes_and_a_64_byte_event_travels_inline() {
        assert_eq!(size_of::<Envelope>(), 80);
        let envelope = Envelope::single(3, 1, [7u64; 8]);
        assert_eq!(envelope.kind, Kind::Inline);
        let (event, reply) = envelope.open::<[u64; 8], ()>().unwrap();
        assert_eq!(event[7], 7);
        assert!(!reply.is_request());
        assert_eq!(Envelope::single(0, 0, [1u64; 9]).kind, Kind::Owned);
    }

    #[test]
    fn small_requests_travel_inline_and_large_ones_boxed() {
        let (tx, mut rx) = oneshot::channel::<Result<u64, Failure>>();
        let envelope = Envelope::request(0, 0, EventBox::Owned(7u32), tx);
        assert_eq!(envelope.kind, Kind::InlineRequest);
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
        assert_eq!(envelope.kind, Kind::Request);
        let (event, reply) = envelope.open::<[u8; 64], u64>().unwrap();
        assert_eq!(event[63], 1);
        assert!(reply.send::<[u8; 64], u64>(Err(Failure::invalid("no"))).is_none());
        assert_eq!(rx.try_recv().unwrap().unwrap_err().status(), crate::Status::Invalid);
    }
}
