//! [`Notify`]: a notification on its way.

use super::{Ctx, SendFuture, encode, stopped_name};
use crate::Failure;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::router::{BoxFuture, Outbound, Target, Uplink};
use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc::error::TrySendError;

impl Ctx {
    /// [`notify`](Self::notify) for any event type (the kind was checked by the caller).
    pub(crate) fn notify_event<E: Event>(&self, event: E, priority: u8) -> Notify<'_> {
        if self.refuses() {
            return Notify { state: NotifyState::Stopped(E::META.name) };
        }
        let route = self.shared.route_of_send(TypeId::of::<E>(), self.origin);
        let targets = route.map_or(&[][..], |r| &r.subscribers);
        if let Some((uplink, out)) = self.uplink_wanting::<E>(route) {
            return self.notify_up(event, priority, targets, uplink, out);
        }
        self.notify_local(event, priority, targets)
    }

    /// A notification to this router's subscribers `targets` and up the uplink.
    #[cold]
    #[inline(never)]
    fn notify_up<'a, E: Event>(
        &'a self,
        event: E,
        priority: u8,
        targets: &'a [Target],
        uplink: &'a Arc<dyn Uplink>,
        out: Outbound,
    ) -> Notify<'a> {
        let remote = match encode(&event) {
            Ok(payload) => Up::Offer { uplink, event: out, payload },
            Err(failure) => Up::Failed(failure),
        };
        if targets.is_empty() {
            return Notify { state: NotifyState::Remote(remote) };
        }
        let local = Box::new(self.notify_local(event, priority, targets));
        Notify { state: NotifyState::Both { local, remote, local_result: None } }
    }

    /// A notification to this router's subscribers `targets`.
    fn notify_local<'a, E: Event>(
        &'a self,
        event: E,
        priority: u8,
        targets: &'a [Target],
    ) -> Notify<'a> {
        match targets {
            [] => return Notify { state: NotifyState::Done },
            [target] => {
                let envelope = Envelope::single(target.handler, priority, event);
                return Notify {
                    state: NotifyState::One {
                        target,
                        envelope: Some(envelope),
                        name: E::META.name,
                        waiting: None,
                    },
                };
            }
            _ => {}
        }
        Notify {
            state: NotifyState::Sending {
                targets,
                next: 0,
                payload: Some(Arc::new(event)),
                priority,
                name: E::META.name,
                waiting: None,
                failed: false,
            },
        }
    }
}

/// A notification on its way: `.await` it. Nothing is sent before the first poll.
///
/// It pushes into each subscriber's mailbox in turn, waiting while one is full; the event is
/// allocated once and shared by all subscribers.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// # #[event(notification)] pub struct Uploaded { pub path: String }
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// let sending = ctx.notify(Uploaded { path: "a.txt".into() }); // nothing sent yet
/// sending.await?; // delivered to every subscriber's mailbox
/// ctx.notify_priority(Uploaded { path: "urgent.txt".into() }, 0).await?;
/// # Ok(()) }
/// ```
#[must_use = "a notification is not sent until awaited"]
pub struct Notify<'a> {
    state: NotifyState<'a>,
}

enum NotifyState<'a> {
    /// The only subscriber: the event travels in its envelope (inline when small).
    One {
        target: &'a Target,
        envelope: Option<Envelope>,
        name: &'static str,
        waiting: Option<SendFuture<'a>>,
    },
    Sending {
        targets: &'a [Target],
        next: usize,
        /// Cloned for each subscriber but the last, which takes it.
        payload: Option<Arc<dyn Any + Send + Sync>>,
        priority: u8,
        name: &'static str,
        /// Only while a mailbox is full: waiting for room.
        waiting: Option<SendFuture<'a>>,
        failed: bool,
    },
    Remote(Up<'a>),
    /// Sent after the router began to stop: refused.
    Stopped(&'static str),
    /// This router's subscribers, then other routers'.
    Both {
        local: Box<Notify<'a>>,
        remote: Up<'a>,
        local_result: Option<Result<(), Failure>>,
    },
    Done,
}

/// The part of a notification that goes to other routers.
enum Up<'a> {
    /// Offered to the uplink at the first poll: taken at once in the common case, without a
    /// future of its own.
    Offer {
        uplink: &'a Arc<dyn Uplink>,
        event: Outbound,
        payload: Vec<u8>,
    },
    /// The uplink could not take it at once (full): waiting for room.
    Waiting(BoxFuture<Result<(), Failure>>),
    /// It could not be serialized.
    Failed(Failure),
    Done,
}

impl Up<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        loop {
            match self {
                Up::Offer { uplink, event, payload } => match uplink.offer(*event, payload) {
                    Some(result) => {
                        *self = Up::Done;
                        return Poll::Ready(result);
                    }
                    None => {
                        let send = uplink.clone().notify(*event, std::mem::take(payload));
                        *self = Up::Waiting(send);
                    }
                },
                Up::Waiting(send) => {
                    let result = std::task::ready!(send.as_mut().poll(cx));
                    *self = Up::Done;
                    return Poll::Ready(result);
                }
                Up::Failed(_) => {
                    let Up::Failed(failure) = std::mem::replace(self, Up::Done) else {
                        unreachable!()
                    };
                    return Poll::Ready(Err(failure));
                }
                Up::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl std::fmt::Debug for Notify<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify").finish_non_exhaustive()
    }
}

impl Future for Notify<'_> {
    type Output = Result<(), Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let NotifyState::Sending { targets, next, payload, priority, name, waiting, failed } =
            &mut this.state
        else {
            return match &mut this.state {
                NotifyState::One { target, envelope, name, waiting } => {
                    let name = *name;
                    if let Some(envelope) = envelope.take() {
                        match target.mailbox.try_send(envelope) {
                            Ok(()) => {
                                this.state = NotifyState::Done;
                                return Poll::Ready(Ok(()));
                            }
                            Err(TrySendError::Full(envelope)) => {
                                let mailbox = target.mailbox.clone();
                                *waiting =
                                    Some(Box::pin(
                                        async move { mailbox.send(envelope).await.is_ok() },
                                    ));
                            }
                            Err(TrySendError::Closed(_)) => {
                                this.state = NotifyState::Done;
                                return Poll::Ready(Err(stopped_name(name)));
                            }
                        }
                    }
                    let sent = match waiting {
                        Some(wait) => std::task::ready!(wait.as_mut().poll(cx)),
                        None => true,
                    };
                    this.state = NotifyState::Done;
                    Poll::Ready(if sent { Ok(()) } else { Err(stopped_name(name)) })
                }
                NotifyState::Remote(remote) => remote.poll(cx),
                NotifyState::Stopped(name) => {
                    let name = *name;
                    this.state = NotifyState::Done;
                    Poll::Ready(Err(stopped_name(name)))
                }
                NotifyState::Both { local, remote, local_result } => {
                    if local_result.is_none() {
                        *local_result = Some(std::task::ready!(Pin::new(&mut **local).poll(cx)));
                    }
                    let remote = std::task::ready!(remote.poll(cx));
                    let local = local_result.take().unwrap_or(Ok(()));
                    this.state = NotifyState::Done;
                    Poll::Ready(local.and(remote))
                }
                _ => Poll::Ready(Ok(())),
            };
        };
        loop {
            if let Some(wait) = waiting {
                let sent = std::task::ready!(wait.as_mut().poll(cx));
                *failed |= !sent;
                *waiting = None;
                *next += 1;
            }
            let Some(target) = targets.get(*next) else {
                let result = if *failed { Err(stopped_name(name)) } else { Ok(()) };
                this.state = NotifyState::Done;
                return Poll::Ready(result);
            };
            let event = if *next + 1 == targets.len() { payload.take() } else { payload.clone() };
            let Some(event) = event else {
                this.state = NotifyState::Done;
                return Poll::Ready(Ok(()));
            };
            match target.mailbox.try_send(Envelope::shared(target.handler, *priority, event)) {
                Ok(()) => *next += 1,
                Err(TrySendError::Full(envelope)) => {
                    let mailbox = target.mailbox.clone();
                    *waiting = Some(Box::pin(async move { mailbox.send(envelope).await.is_ok() }));
                }
                Err(TrySendError::Closed(_)) => {
                    *failed = true;
                    *next += 1;
                }
            }
        }
    }
}
