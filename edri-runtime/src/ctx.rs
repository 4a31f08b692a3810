//! [`Ctx`]: what handlers (and code outside managers) use to send events.

use crate::Failure;
use crate::envelope::{Envelope, EventBox, Handled};
use crate::error::TryNotifyError;
use crate::event::{Event, Notification, Request};
use crate::router::{BoxFuture, Shared, Target, Uplink};
use std::any::{Any, TypeId};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;
use tokio::time::Sleep;

/// The handle to the router: send notifications, make requests, spawn tasks, stop.
///
/// Cheap to clone (one `Arc`); usable from every handler mode and from outside managers
/// ([`Running::ctx`](crate::Running::ctx)).
#[derive(Clone)]
pub struct Ctx {
    shared: Arc<Shared>,
    /// Index of the manager this context belongs to; `u32::MAX` outside managers.
    origin: u32,
}

/// The origin of a context outside managers ([`Running::ctx`](crate::Running::ctx)).
const OUTSIDE: u32 = u32::MAX;
/// The origin of the router's own sends (`Stopping`), which the shutdown does not refuse.
pub(crate) const ROUTER: u32 = u32::MAX - 2;

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let manager = self.shared.managers.get(self.origin as usize).map(|m| m.descriptor.name);
        f.debug_struct("Ctx").field("manager", &manager).finish_non_exhaustive()
    }
}

impl Ctx {
    pub(crate) fn new(shared: Arc<Shared>, origin: u32) -> Self {
        Self { shared, origin }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn origin(&self) -> u32 {
        self.origin
    }

    /// The name of the manager this context belongs to (`None` outside managers).
    pub fn manager_name(&self) -> Option<&'static str> {
        self.shared.managers.get(self.origin as usize).map(|m| m.descriptor.name)
    }

    /// Delivers a notification to every subscriber, waiting while a mailbox is full.
    ///
    /// Nobody subscribed is not an error. Order from one sender to one subscriber is kept.
    ///
    /// # Errors
    /// `Unavailable` once the router stopped taking events ([`Running::shutdown`] drained, or
    /// its grace period ran out): an event sent then is refused, never silently dropped.
    ///
    /// [`Running::shutdown`]: crate::Running::shutdown
    pub fn notify<E: Notification>(&self, event: E) -> Notify<'_> {
        self.notify_event(event, E::META.priority)
    }

    /// [`notify`](Self::notify) in priority lane `priority` (0 is most urgent) instead of the
    /// event's default `#[event(priority = N)]`. Matters to `#[manager(queue = priority)]`
    /// subscribers; FIFO mailboxes ignore it.
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    pub fn notify_priority<E: Notification>(&self, event: E, priority: u8) -> Notify<'_> {
        self.notify_event(event, priority)
    }

    /// [`notify`](Self::notify) for any event type (the kind was checked by the caller).
    pub(crate) fn notify_event<E: Event>(&self, event: E, priority: u8) -> Notify<'_> {
        if self.refuses() {
            return Notify { state: NotifyState::Stopped(E::META.name) };
        }
        let targets = self.shared.route(TypeId::of::<E>()).map_or(&[][..], |r| &r.subscribers);
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

    /// Delivers a notification to one manager, by name (the store's `Changed` for a watcher).
    /// Nothing happens when that manager does not handle `E`.
    pub(crate) async fn notify_manager<E: Event>(
        &self,
        manager: &str,
        event: E,
    ) -> Result<(), Failure> {
        let Some(route) = self.shared.route(TypeId::of::<E>()) else { return Ok(()) };
        let target = route.subscribers.iter().find(|t| {
            self.shared
                .managers
                .get(t.manager as usize)
                .is_some_and(|m| m.descriptor.name == manager)
        });
        match target {
            Some(t) => t
                .mailbox
                .send(Envelope::single(t.handler, E::META.priority, event))
                .await
                .map_err(|_| stopped::<E>()),
            None => Ok(()),
        }
    }

    /// Delivers a notification that somebody outside the router waits on (another router):
    /// each subscriber's envelope carries a clone of `handled`, dropped once its handler
    /// returned. Never goes up the uplink.
    pub(crate) async fn notify_handled<E: Event>(
        &self,
        event: E,
        priority: u8,
        handled: Handled,
    ) -> Result<(), Failure> {
        let targets = self.shared.route(TypeId::of::<E>()).map_or(&[][..], |r| &r.subscribers);
        let mut delivered = true;
        match targets {
            [] => {}
            [one] => {
                let envelope =
                    Envelope::tracked(one.handler, priority, EventBox::Owned(event), handled);
                delivered = one.mailbox.send(envelope).await.is_ok();
            }
            _ => {
                let event = Arc::new(event);
                for target in targets {
                    let envelope = Envelope::tracked(
                        target.handler,
                        priority,
                        EventBox::Shared(event.clone()),
                        handled.clone(),
                    );
                    delivered &= target.mailbox.send(envelope).await.is_ok();
                }
            }
        }
        if delivered { Ok(()) } else { Err(stopped::<E>()) }
    }

    /// The uplink for events of type `E`: none for `local` events, when there is none, or
    /// for a context that delivers events from other routers (they must not go back).
    #[inline]
    pub(crate) fn uplink<E: Event>(&self) -> Option<&Arc<dyn Uplink>> {
        self.shared
            .uplink
            .as_ref()
            .filter(|_| !E::META.local && self.origin != crate::switch::REMOTE)
    }

    /// Delivers a notification to every subscriber now, or to none of them.
    ///
    /// # Errors
    /// [`TryNotifyError::Full`] when a subscriber's mailbox is full (or, with a switch, the
    /// buffer for other routers), [`TryNotifyError::Closed`] when the router is stopping; the
    /// event comes back in both.
    pub fn try_notify<E: Notification>(&self, event: E) -> Result<(), TryNotifyError<E>> {
        if self.refuses() {
            return Err(TryNotifyError::Closed(event));
        }
        let route = self.shared.route(TypeId::of::<E>());
        let targets = route.map_or(&[][..], |r| &r.subscribers);
        if let Some(uplink) = self.uplink::<E>()
            && uplink.wants(E::META.name, !targets.is_empty())
        {
            return try_notify_up(event, targets, uplink);
        }
        let Some(route) = route else {
            return Ok(());
        };
        if let [one] = &*route.subscribers {
            return match one.mailbox.try_send(Envelope::single(
                one.handler,
                E::META.priority,
                event,
            )) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(env)) => Err(TryNotifyError::Full(unshare::<E>(env))),
                Err(TrySendError::Closed(env)) => Err(TryNotifyError::Closed(unshare::<E>(env))),
            };
        }
        // Reserve a slot in every mailbox first so that either all or none receive it.
        let mut permits = Vec::with_capacity(route.subscribers.len());
        for target in &route.subscribers {
            match target.mailbox.try_reserve() {
                Ok(permit) => permits.push((permit, target.handler)),
                Err(TrySendError::Full(())) => return Err(TryNotifyError::Full(event)),
                Err(TrySendError::Closed(())) => return Err(TryNotifyError::Closed(event)),
            }
        }
        let shared: Arc<dyn Any + Send + Sync> = Arc::new(event);
        for (permit, handler) in permits {
            permit.send(Envelope::shared(handler, E::META.priority, shared.clone()));
        }
        Ok(())
    }

    /// Sends a request to its one responder and waits for the response (default timeout
    /// 30 s, see [`Call::timeout`]).
    ///
    /// ```ignore
    /// let r = ctx.request(Divide { a: 1.0, b: 2.0 }).await?;
    /// let r = ctx.request(Divide { a: 1.0, b: 2.0 }).timeout(Duration::from_millis(50)).await?;
    /// ```
    pub fn request<E: Request>(&self, event: E) -> Call<'_, E> {
        Call { ctx: self, event, timeout: self.shared.default_timeout, priority: E::META.priority }
    }

    /// Sends a request to every responder and gathers one result per responder (an empty
    /// `Vec` when there is none). In one router a request has at most one responder; across
    /// routers each router's responder answers.
    pub fn request_all<E: Request>(&self, event: E) -> CallAll<'_, E> {
        CallAll { ctx: self, event, timeout: self.shared.default_timeout }
    }

    /// Opens a tunnel: the event goes to the one manager that accepts it (this router's first,
    /// else another router's through the switch) and the tunnel is there once the acceptor
    /// confirmed it. Set [`Open::timeout`](crate::Open::timeout) (default: the request
    /// timeout) or [`Open::window`](crate::Open::window) before awaiting.
    ///
    /// ```ignore
    /// let mut tunnel = ctx.open(Convert { to: Format::Upper }).await?;
    /// tunnel.send(chunk).await?;
    /// ```
    ///
    /// # Errors
    /// The acceptor's rejection; `Unavailable` when no manager accepts `E`; `Timeout` when
    /// the acceptor did not answer in time.
    pub fn open<E: crate::TunnelEvent>(&self, event: E) -> crate::Open<'_, E> {
        crate::Open::new(self, event)
    }

    /// Blocking twin of [`open`](Self::open).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    ///
    /// # Panics
    /// When called on a runtime worker thread (use `open(..).await` there).
    pub fn blocking_open<E: crate::TunnelEvent>(
        &self,
        event: E,
    ) -> Result<crate::Tunnel<E>, Failure> {
        self.shared.runtime.block_on(self.open(event).into_future())
    }

    /// Blocking twin of [`notify`](Self::notify) for thread-mode handlers and other
    /// non-async code.
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    ///
    /// # Panics
    /// When called on a runtime worker thread (use `notify(..).await` there).
    pub fn blocking_notify<E: Notification>(&self, event: E) -> Result<(), Failure> {
        self.shared.runtime.block_on(self.notify(event))
    }

    /// Blocking twin of [`request`](Self::request).
    ///
    /// # Errors
    /// As [`request`](Self::request).
    ///
    /// # Panics
    /// When called on a runtime worker thread (use `request(..).await` there).
    pub fn blocking_request<E: Request>(&self, event: E) -> Result<E::Output, Failure> {
        self.shared.runtime.block_on(self.request(event).into_future())
    }

    /// Spawns a task on the router's runtime.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.runtime.spawn(future)
    }

    /// Asks the router to stop: [`EdriBuilder::run`](crate::EdriBuilder::run) (and
    /// [`Running::wait_for_stop_signal`](crate::Running::wait_for_stop_signal)) return and
    /// the graceful shutdown begins.
    pub fn shutdown(&self) {
        self.shared.shutdown_requested.notify_one();
    }

    /// Whether the router's shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire) || self.shared.stopping.load(Ordering::Acquire)
    }

    /// Whether a send from this context is refused: once the router stopped taking events,
    /// and, for code outside managers, as soon as the shutdown began (handlers' sends while
    /// the router drains are still delivered, and so are events from other routers).
    #[inline]
    fn refuses(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
            || (self.origin == OUTSIDE && self.shared.draining.load(Ordering::Acquire))
    }

    fn responder<E: Event>(&self) -> Result<&Target, Failure> {
        let target =
            self.shared.route(TypeId::of::<E>()).and_then(|r| r.responder.as_ref()).ok_or_else(
                || Failure::unavailable(format!("no responder for request `{}`", E::META.name)),
            )?;
        if target.manager == self.origin {
            return Err(Failure::failed(format!(
                "`{}` would answer its own request `{}` and wait for itself forever",
                self.manager_name().unwrap_or("?"),
                E::META.name
            )));
        }
        Ok(target)
    }
}

impl Ctx {
    /// A request for any event type (the kind was checked by the caller).
    pub(crate) fn request_event<E: Event>(
        &self,
        event: E,
        timeout: Duration,
        priority: u8,
    ) -> Pending<'_, E> {
        Pending {
            state: State::Start { ctx: self, event: Some(event) },
            timeout,
            priority,
            yielded: false,
            sleep: None,
        }
    }

    /// A context of a router whose unrouted events go up `uplink`.
    pub(crate) fn with_uplink(
        runtime: tokio::runtime::Handle,
        uplink: Arc<dyn Uplink>,
        timeout: Duration,
    ) -> Self {
        let shared = Shared {
            routes: std::collections::HashMap::default(),
            managers: Box::new([]),
            default_timeout: timeout,
            worker_timeout: timeout,
            runtime,
            stopping: std::sync::atomic::AtomicBool::new(false),
            draining: std::sync::atomic::AtomicBool::new(false),
            shutdown_requested: tokio::sync::Notify::new(),
            started: std::time::Instant::now(),
            uplink: Some(uplink),
            metrics: false,
            tunnel_window: crate::tunnel::DEFAULT_WINDOW,
        };
        Self::new(Arc::new(shared), u32::MAX)
    }
}

/// [`Ctx::try_notify`] with other routers: every local mailbox is reserved first, then the
/// uplink takes the event, then the reservations are used; any refusal sends nothing.
#[cold]
fn try_notify_up<E: Event>(
    event: E,
    targets: &[Target],
    uplink: &Arc<dyn Uplink>,
) -> Result<(), TryNotifyError<E>> {
    let mut permits = Vec::with_capacity(targets.len());
    for target in targets {
        match target.mailbox.try_reserve() {
            Ok(permit) => permits.push((permit, target.handler)),
            Err(TrySendError::Full(())) => return Err(TryNotifyError::Full(event)),
            Err(TrySendError::Closed(())) => return Err(TryNotifyError::Closed(event)),
        }
    }
    let Ok(bytes) = encode(&event) else { return Err(TryNotifyError::Full(event)) };
    if uplink.try_notify(E::META.name, &bytes).is_err() {
        return Err(TryNotifyError::Full(event));
    }
    let shared: Arc<dyn Any + Send + Sync> = Arc::new(event);
    for (permit, handler) in permits {
        permit.send(Envelope::shared(handler, E::META.priority, shared.clone()));
    }
    Ok(())
}

/// Postcard bytes of an event, for another process.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Failure> {
    // Most events fit: one allocation instead of a run of doublings.
    postcard::to_extend(value, Vec::with_capacity(128))
        .map_err(|e| Failure::invalid(format!("cannot serialize: {e}")))
}

/// An answer from another process, decoded.
fn decode_output<E: Event>(bytes: &[u8]) -> Result<E::Output, Failure> {
    postcard::from_bytes(bytes)
        .map_err(|e| Failure::invalid(format!("malformed response to `{}`: {e}", E::META.name)))
}

pub(crate) fn stopped<E: Event>() -> Failure {
    stopped_name(E::META.name)
}

fn stopped_name(event: &str) -> Failure {
    Failure::unavailable(format!("the router is stopping; `{event}` was not delivered"))
}

/// A notification on its way: `.await` it. Nothing is sent before the first poll.
///
/// It pushes into each subscriber's mailbox in turn, waiting while one is full; the event is
/// allocated once and shared by all subscribers.
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

/// The event of an envelope that was not delivered (its only owner).
fn unshare<E: Event>(envelope: Envelope) -> E {
    match envelope.open::<E, ()>() {
        Some((EventBox::Owned(event), _reply)) => event,
        Some((EventBox::Shared(arc), _reply)) => match Arc::try_unwrap(arc) {
            Ok(event) => event,
            Err(_) => unreachable!("a notification that was not delivered has one owner"),
        },
        None => unreachable!("the envelope was built from this event"),
    }
}

/// A request on its way: `.await` it, or set [`timeout`](Self::timeout) first.
#[must_use = "a request does nothing until awaited"]
pub struct Call<'a, E> {
    ctx: &'a Ctx,
    event: E,
    timeout: Duration,
    priority: u8,
}

impl<E: Event> Call<'_, E> {
    /// Fails with `Timeout` when no response arrived within `timeout` (including the time
    /// spent waiting for room in a full mailbox).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Queues the request in lane `priority` (0 is most urgent) of a
    /// `#[manager(queue = priority)]` responder, instead of the event's default lane.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }
}

impl<'a, E: Event> IntoFuture for Call<'a, E> {
    type Output = Result<E::Output, Failure>;
    type IntoFuture = Pending<'a, E>;

    fn into_future(self) -> Pending<'a, E> {
        self.ctx.request_event(self.event, self.timeout, self.priority)
    }
}

type Reply<E> = oneshot::Receiver<Result<<E as Event>::Output, Failure>>;
type SendFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

enum State<'a, E: Event> {
    Start {
        ctx: &'a Ctx,
        event: Option<E>,
    },
    /// Only when the mailbox was full: waiting for room (the one boxed path).
    Sending {
        send: SendFuture<'a>,
        reply: Reply<E>,
    },
    Waiting {
        reply: Reply<E>,
    },
    /// No responder here: sent up the uplink (from a worker process to its parent).
    Remote {
        call: BoxFuture<Result<Vec<u8>, Failure>>,
    },
    Done,
}

pin_project_lite::pin_project! {
    /// The future of a [`Call`]. It allocates the request once, and a timer only when the
    /// response is not immediately there.
    #[must_use = "futures do nothing unless polled"]
    pub struct Pending<'a, E: Event> {
        state: State<'a, E>,
        timeout: Duration,
        priority: u8,
        yielded: bool,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<E: Event> Future for Pending<'_, E> {
    type Output = Result<E::Output, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Start { ctx, event } => {
                    let ctx: &Ctx = ctx;
                    if ctx.refuses() {
                        *this.state = State::Done;
                        return Poll::Ready(Err(stopped::<E>()));
                    }
                    let target = match ctx.responder::<E>() {
                        Ok(t) => t,
                        Err(f) => {
                            let event = event.take().expect("polled after start");
                            *this.state = match ctx.uplink::<E>() {
                                Some(uplink) if f.status() == crate::Status::Unavailable => {
                                    match encode(&event) {
                                        Ok(bytes) => State::Remote {
                                            call: uplink.clone().request(
                                                E::META.name,
                                                bytes,
                                                *this.timeout,
                                            ),
                                        },
                                        Err(f) => return Poll::Ready(Err(f)),
                                    }
                                }
                                _ => {
                                    *this.state = State::Done;
                                    return Poll::Ready(Err(f));
                                }
                            };
                            continue;
                        }
                    };
                    let event = event.take().expect("polled after start");
                    let (tx, rx) = oneshot::channel();
                    let envelope = Envelope::request(
                        target.handler,
                        *this.priority,
                        EventBox::Owned(event),
                        tx,
                    );
                    *this.state = match target.mailbox.try_send(envelope) {
                        Ok(()) => State::Waiting { reply: rx },
                        Err(TrySendError::Full(envelope)) => {
                            let mailbox = target.mailbox.clone();
                            State::Sending {
                                send: Box::pin(async move { mailbox.send(envelope).await.is_ok() }),
                                reply: rx,
                            }
                        }
                        Err(TrySendError::Closed(_)) => {
                            *this.state = State::Done;
                            return Poll::Ready(Err(stopped::<E>()));
                        }
                    };
                }
                State::Sending { send, .. } => match send.as_mut().poll(cx) {
                    Poll::Ready(true) => {
                        let State::Sending { reply, .. } =
                            std::mem::replace(this.state, State::Done)
                        else {
                            unreachable!()
                        };
                        *this.state = State::Waiting { reply };
                    }
                    Poll::Ready(false) => {
                        *this.state = State::Done;
                        return Poll::Ready(Err(stopped::<E>()));
                    }
                    Poll::Pending => break,
                },
                State::Waiting { reply } => match Pin::new(reply).poll(cx) {
                    Poll::Ready(result) => {
                        *this.state = State::Done;
                        return Poll::Ready(result.unwrap_or_else(|_| {
                            Err(Failure::crashed(format!(
                                "the responder of `{}` stopped without answering",
                                E::META.name
                            )))
                        }));
                    }
                    Poll::Pending => break,
                },
                State::Remote { call } => match call.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        *this.state = State::Done;
                        return Poll::Ready(result.and_then(|bytes| decode_output::<E>(&bytes)));
                    }
                    Poll::Pending => break,
                },
                State::Done => panic!("`Pending` polled after completion"),
            }
        }
        // Not answered yet. A request that was queued straight away first yields once instead
        // of arming its timer: when the responder shares this runtime thread it answers during
        // that yield, and a timer would have cost more than the whole round trip. Otherwise the
        // deadline is armed now (one yield after the call began).
        if this.sleep.is_none() {
            if !*this.yielded && matches!(this.state, State::Waiting { .. }) {
                *this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.sleep.set(Some(tokio::time::sleep(*this.timeout)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            *this.state = State::Done;
            return Poll::Ready(Err(Failure::timeout(format!(
                "no response to `{}` within {:?}",
                E::META.name,
                this.timeout
            ))));
        }
        Poll::Pending
    }
}

/// A request to every responder: `.await` it, or set [`timeout`](Self::timeout) first.
#[must_use = "a request does nothing until awaited"]
pub struct CallAll<'a, E> {
    ctx: &'a Ctx,
    event: E,
    timeout: Duration,
}

impl<E: Event> CallAll<'_, E> {
    /// The deadline for each responder's answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<'a, E: Event> IntoFuture for CallAll<'a, E> {
    type Output = Vec<Result<E::Output, Failure>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            if self.ctx.refuses() {
                return vec![Err(stopped::<E>())];
            }
            // Other routers' responders work meanwhile.
            let remote = self.ctx.uplink::<E>().map(|uplink| {
                let call = encode(&self.event)
                    .map(|bytes| uplink.clone().request_all(E::META.name, bytes, self.timeout));
                call.map(|call| self.ctx.spawn(call))
            });
            let event = Arc::new(self.event);
            let mut replies = Vec::new();
            let route = self.ctx.shared.route(TypeId::of::<E>());
            for target in route.iter().flat_map(|r| r.responder.iter()) {
                if target.manager == self.ctx.origin {
                    replies
                        .push(Err(Failure::failed("a manager cannot answer its own request_all")));
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                let envelope = Envelope::request(
                    target.handler,
                    E::META.priority,
                    EventBox::Shared(event.clone()),
                    tx,
                );
                match tokio::time::timeout(self.timeout, target.mailbox.send(envelope)).await {
                    Ok(Ok(())) => replies.push(Ok(rx)),
                    Ok(Err(_)) => replies.push(Err(stopped::<E>())),
                    Err(_) => {
                        replies.push(Err(Failure::timeout("mailbox full until the deadline")))
                    }
                }
            }
            let mut out = Vec::with_capacity(replies.len());
            for reply in replies {
                out.push(match reply {
                    Ok(rx) => match tokio::time::timeout(self.timeout, rx).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(_)) => {
                            Err(Failure::crashed("the responder stopped without answering"))
                        }
                        Err(_) => Err(Failure::timeout(format!(
                            "no response to `{}` within {:?}",
                            E::META.name,
                            self.timeout
                        ))),
                    },
                    Err(f) => Err(f),
                });
            }
            match remote {
                None => {}
                Some(Err(failure)) => out.push(Err(failure)),
                Some(Ok(call)) => {
                    let answers = call.await.unwrap_or_default();
                    out.extend(
                        answers
                            .into_iter()
                            .map(|answer| answer.and_then(|bytes| decode_output::<E>(&bytes))),
                    );
                }
            }
            out
        })
    }
}
