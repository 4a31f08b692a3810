//! [`Notify`]: a notification on its way.

use super::{Ctx, SendFuture, encode, stopped_name};
use crate::Failure;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::router::{BoxFuture, Target, Uplink};
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
        let targets = self
            .shared
            .route_of_send(TypeId::of::<E>(), self.origin)
            .map_or(&[][..], |r| &r.subscribers);
        if let Some(uplink) = self.uplink::<E>()
            && uplink.wants(E::META.name, !targets.is_empty())
        {
            return self.notify_up(event, priority, targets, uplink);
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
        uplink: &Arc<dyn Uplink>,
    ) -> Notify<'a> {
        let remote = match encode(&event) {
            Ok(bytes) => uplink.clone().notify(E::META.name, bytes),
            Err(failure) => Box::pin(std::future::ready(Err(failure))),
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
    Remote(BoxFuture<Result<(), Failure>>),
    /// Sent after the router began to stop: refused.
    Stopped(&'static str),
    /// This router's subscribers, then other routers'.
    Both {
        local: Box<Notify<'a>>,
        remote: BoxFuture<Result<(), Failure>>,
        local_result: Option<Result<(), Failure>>,
    },
    Done,
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
                NotifyState::Remote(remote) => remote.as_mut().poll(cx),
                NotifyState::Stopped(name) => {
                    let name = *name;
                    this.state = NotifyState::Done;
                    Poll::Ready(Err(stopped_name(name)))
                }
                NotifyState::Both { local, remote, local_result } => {
                    if local_result.is_none() {
                        *local_result = Some(std::task::ready!(Pin::new(&mut **local).poll(cx)));
                    }
                    let remote = std::task::ready!(remote.as_mut().poll(cx));
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
