//! What travels through a mailbox: an [`Envelope`] holding a type-erased event.
//!
//! In-process delivery never serializes: a notification is one `Arc<E>` shared by every
//! subscriber, a request one `Box` holding the event and the reply sender.

use crate::Failure;
use crate::inline::Inline;
use std::any::Any;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Where a handler's answer goes: the requester of a request, nobody for a notification.
///
/// Type-erased (it keeps the request's own allocation, whose event was taken out) so that
/// generated code never holds a value whose type names the event's output.
pub struct Reply(Option<Box<dyn Any + Send>>);

impl Reply {
    /// Sends the answer of event `E` (output `O`); `None` back when nobody asked.
    pub(crate) fn send<E: Send + Sync + 'static, O: Send + 'static>(
        self,
        result: Result<O, Failure>,
    ) -> Option<Result<O, Failure>> {
        let Some(cell) = self.0 else {
            return Some(result);
        };
        match cell.downcast::<RequestCell<E, O>>() {
            // The requester may have given up (timeout): nothing to do then.
            Ok(cell) => {
                if let Some(tx) = cell.reply {
                    let _ = tx.send(result);
                }
                None
            }
            Err(_) => unreachable!("a reply is sent for the event it was opened as"),
        }
    }

    /// Whether somebody waits for the answer.
    pub fn is_request(&self) -> bool {
        self.0.is_some()
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
    /// A request: `Box<RequestCell<E, O>>`.
    Request(Box<dyn Any + Send>),
    /// Stop after everything queued before this.
    Stop,
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
            Payload::Request(_) => "request",
            Payload::Stop => "stop",
        };
        f.debug_struct("Envelope").field("handler", &self.handler).field("payload", &kind).finish()
    }
}

impl Envelope {
    pub(crate) fn shared(handler: u16, priority: u8, event: Arc<dyn Any + Send + Sync>) -> Self {
        Self { handler, priority, payload: Payload::Shared(event) }
    }

    pub(crate) fn request<E: Send + Sync + 'static, O: Send + 'static>(
        handler: u16,
        priority: u8,
        event: EventBox<E>,
        reply: oneshot::Sender<Result<O, Failure>>,
    ) -> Self {
        Self {
            handler,
            priority,
            payload: Payload::Request(Box::new(RequestCell {
                event: Some(event),
                reply: Some(reply),
            })),
        }
    }

    /// A notification for a single subscriber: inline when small, boxed otherwise.
    pub(crate) fn single<E: Send + 'static>(handler: u16, priority: u8, event: E) -> Self {
        let payload = match Inline::new(event) {
            Ok(inline) => Payload::Inline(inline),
            Err(event) => Payload::Owned(Box::new(event)),
        };
        Self { handler, priority, payload }
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
            Payload::Inline(inline) => {
                inline.take::<E>().ok().map(|e| (EventBox::Owned(e), Reply(None)))
            }
            Payload::Owned(any) => {
                any.downcast::<E>().ok().map(|e| (EventBox::Owned(*e), Reply(None)))
            }
            Payload::Shared(any) => {
                any.downcast::<E>().ok().map(|e| (EventBox::Shared(e), Reply(None)))
            }
            Payload::Request(any) => {
                let mut cell = any.downcast::<RequestCell<E, O>>().ok()?;
                let event = cell.event.take()?;
                Some((event, Reply(Some(cell))))
            }
            Payload::Stop => None,
        }
    }
}
