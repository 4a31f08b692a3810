//! [`Ctx`]: what handlers (and code outside managers) use to send events.

use crate::Failure;
use crate::envelope::{Envelope, EventBox, Handled};
use crate::error::TryNotifyError;
use crate::event::{Event, Notification, Request};
use crate::router::{ManagerSlot, Outbound, Shared, Target, Uplink};
use std::any::{Any, TypeId};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;

mod notify;
mod origin;
mod param;
mod request;
mod request_all;

pub use notify::Notify;
pub(crate) use origin::Origin;
pub use param::FromCtx;
pub use request::{Call, Pending};
pub use request_all::CallAll;

/// The handle to the router: send notifications, make requests, spawn tasks, stop.
///
/// Cheap to clone (one `Arc`); usable from every handler mode and from outside managers
/// ([`Running::ctx`](crate::Running::ctx)).
///
/// # Examples
///
/// A handler gets its manager's `Ctx`; code outside managers takes the router's.
///
/// ```
/// use edri::prelude::*;
/// use std::time::Duration;
///
/// #[event(notification)]
/// pub struct Uploaded { pub path: String }
///
/// #[event(request)]
/// pub struct Thumbnail { pub path: String, #[response] pub bytes: Vec<u8> }
///
/// #[derive(Default)]
/// pub struct Gallery;
///
/// #[manager]
/// impl Gallery {
///     #[solve]
///     async fn uploaded(&mut self, ev: &Uploaded, ctx: &Ctx) -> Result<(), Failure> {
///         // A request: one responder, its response or a `Failure`.
///         let thumb = ctx
///             .request(Thumbnail { path: ev.path.clone() })
///             .timeout(Duration::from_secs(2))
///             .await?;
///         // Work that outlives the handler, in the handler's trace.
///         let ctx2 = ctx.clone();
///         ctx.spawn(async move {
///             let _ = ctx2.store().set("thumbs/last", &thumb.bytes).await;
///         });
///         Ok(())
///     }
/// }
///
/// async fn from_outside(running: &edri::Running) -> Result<(), Failure> {
///     running.ctx().notify(Uploaded { path: "cat.png".into() }).await
/// }
/// ```
#[derive(Clone)]
pub struct Ctx {
    shared: Arc<Shared>,
    /// Who sends through this context.
    origin: Origin,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let manager = self.slot().map(|m| m.descriptor.name);
        f.debug_struct("Ctx").field("manager", &manager).finish_non_exhaustive()
    }
}

impl Ctx {
    pub(crate) fn new(shared: Arc<Shared>, origin: Origin) -> Self {
        Self { shared, origin }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    /// The manager this context belongs to, if any.
    pub(crate) fn slot(&self) -> Option<&ManagerSlot> {
        self.origin.index().and_then(|i| self.shared.managers.get(i))
    }

    /// The manager a handler's context belongs to.
    ///
    /// # Panics
    /// For a context outside managers: only handlers call this.
    pub(crate) fn own_slot(&self) -> &ManagerSlot {
        self.slot().expect("a handler's context belongs to its manager")
    }

    /// The name of the manager this context belongs to (`None` outside managers).
    pub fn manager_name(&self) -> Option<&'static str> {
        self.slot().map(|m| m.descriptor.name)
    }

    /// Delivers a notification to every subscriber, waiting while a mailbox is full.
    ///
    /// Nobody subscribed is not an error. Order from one sender to one subscriber is kept.
    ///
    /// # Errors
    /// `Unavailable` once the router stopped taking events ([`Running::shutdown`] drained, or
    /// its grace period ran out): an event sent then is refused, never silently dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use edri::prelude::*;
    /// # #[event(notification)] pub struct Uploaded { pub path: String }
    /// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
    /// ctx.notify(Uploaded { path: "a.txt".into() }).await?;
    /// # Ok(()) }
    /// ```
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

    /// Delivers a notification to one manager, by name (the store's `Changed` for a watcher).
    /// Nothing happens when that manager does not handle `E`.
    pub(crate) async fn notify_manager<E: Event>(
        &self,
        manager: &str,
        event: E,
    ) -> Result<(), Failure> {
        let Some(route) = self.shared.route_of_send(TypeId::of::<E>(), self.origin) else {
            return Ok(());
        };
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
    /// [`notify_handled`](Self::notify_handled) without waiting, when it needs no waiting:
    /// no subscriber, or one with room in its mailbox (the common case of an event from
    /// another router). Otherwise the event and the token come back untouched.
    pub(crate) fn try_notify_handled<E: Event>(
        &self,
        event: E,
        priority: u8,
        handled: Handled,
    ) -> Result<Result<(), Failure>, (E, Handled)> {
        let route = self.shared.route(TypeId::of::<E>());
        // Counted as a send once it went, as `notify_handled` counts it.
        let sent = || {
            if let Some(route) = route {
                route.sent.count(self.origin);
            }
            Ok(())
        };
        match route.map_or(&[][..], |r| &r.subscribers) {
            [] => Ok(sent()),
            [one] => match one.mailbox.try_reserve() {
                Ok(permit) => {
                    let event = EventBox::Owned(event);
                    permit.send(Envelope::tracked(one.handler, priority, event, handled));
                    Ok(sent())
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => Ok(Err(stopped::<E>())),
                Err(tokio::sync::mpsc::error::TrySendError::Full(())) => Err((event, handled)),
            },
            _ => Err((event, handled)),
        }
    }

    pub(crate) async fn notify_handled<E: Event>(
        &self,
        event: E,
        priority: u8,
        handled: Handled,
    ) -> Result<(), Failure> {
        let targets = self
            .shared
            .route_of_send(TypeId::of::<E>(), self.origin)
            .map_or(&[][..], |r| &r.subscribers);
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
        self.shared.uplink.as_ref().filter(|_| !E::META.local && self.origin != Origin::Remote)
    }

    /// The uplink, if notification `E` (whose route is `route`) goes up it too, and the event
    /// as the uplink takes it.
    #[inline]
    pub(crate) fn uplink_wanting<E: Event>(
        &self,
        route: Option<&crate::router::Route>,
    ) -> Option<(&Arc<dyn Uplink>, Outbound)> {
        let uplink = self.uplink::<E>()?;
        let out = route
            .map_or(Outbound { name: E::META.name, wire: Outbound::NO_WIRE }, |r| r.outbound());
        let local = route.is_some_and(|r| !r.subscribers.is_empty());
        uplink.wants(out, local).then_some((uplink, out))
    }

    /// Event `E` as an uplink takes it (name and wire id, from its route).
    pub(crate) fn outbound<E: Event>(&self) -> Outbound {
        self.shared
            .route(TypeId::of::<E>())
            .map_or(Outbound { name: E::META.name, wire: Outbound::NO_WIRE }, |r| r.outbound())
    }

    /// Delivers a notification to every subscriber now, or to none of them.
    ///
    /// # Errors
    /// [`TryNotifyError::Full`] when a subscriber's mailbox is full (or, with a switch, the
    /// buffer for other routers), [`TryNotifyError::Closed`] when the router is stopping; the
    /// event comes back in both.
    ///
    /// # Examples
    ///
    /// ```
    /// # use edri::prelude::*;
    /// use edri::TryNotifyError;
    /// # #[event(notification)] pub struct Tick { pub n: u64 }
    /// # fn f(ctx: &Ctx) {
    /// match ctx.try_notify(Tick { n: 1 }) {
    ///     Ok(()) => {}
    ///     Err(TryNotifyError::Full(tick)) => eprintln!("busy, tick {} skipped", tick.n),
    ///     Err(TryNotifyError::Closed(_)) => eprintln!("the router is stopping"),
    /// }
    /// # }
    /// ```
    pub fn try_notify<E: Notification>(&self, event: E) -> Result<(), TryNotifyError<E>> {
        if self.refuses() {
            return Err(TryNotifyError::Closed(event));
        }
        let route = self.shared.route_of_send(TypeId::of::<E>(), self.origin);
        let targets = route.map_or(&[][..], |r| &r.subscribers);
        if let Some((uplink, out)) = self.uplink_wanting::<E>(route) {
            return try_notify_up(event, targets, uplink, out);
        }
        let Some(route) = route.filter(|r| !r.subscribers.is_empty()) else {
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
    /// # Examples
    ///
    /// ```
    /// # use edri::prelude::*;
    /// # use std::time::Duration;
    /// # #[event(request)] pub struct Divide { pub a: f64, pub b: f64, #[response] pub quotient: f64 }
    /// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
    /// let r = ctx.request(Divide { a: 1.0, b: 2.0 }).await?;
    /// let r = ctx.request(Divide { a: 1.0, b: 2.0 }).timeout(Duration::from_millis(50)).await?;
    /// # let _ = r.quotient;
    /// # Ok(()) }
    /// ```
    pub fn request<E: Request>(&self, event: E) -> Call<'_, E> {
        Call::new(self, event, self.shared.default_timeout, E::META.priority)
    }

    /// Sends a request to every responder and gathers one result per responder (an empty
    /// `Vec` when there is none). In one router a request has at most one responder; across
    /// routers each router's responder answers.
    ///
    /// # Examples
    ///
    /// ```
    /// # use edri::prelude::*;
    /// # #[event(request)] pub struct Stats { #[response] pub events: u64 }
    /// # async fn f(ctx: &Ctx) {
    /// let mut total = 0;
    /// for answer in ctx.request_all(Stats {}).await {
    ///     match answer {
    ///         Ok(stats) => total += stats.events,
    ///         Err(failure) => eprintln!("a router failed: {failure}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn request_all<E: Request>(&self, event: E) -> CallAll<'_, E> {
        CallAll::new(self, event, self.shared.default_timeout)
    }

    /// Opens a tunnel: the event goes to the one manager that accepts it (this router's first,
    /// else another router's through the switch) and the tunnel is there once the acceptor
    /// confirmed it. Set [`Open::timeout`](crate::Open::timeout) (default: the request
    /// timeout) or [`Open::window`](crate::Open::window) before awaiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # use edri::prelude::*;
    /// use edri::Chunk;
    /// # #[event(tunnel, send = Chunk, receive = Chunk)] pub struct Convert { pub to: String }
    /// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
    /// let mut tunnel = ctx.open(Convert { to: "upper".into() }).window(32).await?;
    /// tunnel.send(Chunk(b"abc".to_vec())).await?;
    /// tunnel.close();
    /// while let Some(chunk) = tunnel.recv().await? {
    ///     println!("{} bytes back", chunk.len());
    /// }
    /// # Ok(()) }
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

    /// Who the event being handled came from, when it came through the API broker from a
    /// caller authenticated by a bearer token ([`Api::token_named`]): `Some(caller)` whose
    /// [`name`](crate::Caller::name) is the token's name. `None` outside a handler, for
    /// events sent by code that acts for nobody, and without a token configured.
    ///
    /// The caller goes along the chain in this process: events the handler sends, and tasks
    /// it starts with [`Ctx::spawn`], act for the same caller. It is not carried to a
    /// process-mode handler nor to another router (see [`Caller`](crate::Caller)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use edri::prelude::*;
    /// # #[event(request, http = "POST /orders")]
    /// # pub struct PlaceOrder { pub item: String, #[response] pub by: String }
    /// # #[derive(Default)] pub struct Shop { orders: Vec<(String, String)> }
    /// # #[manager] impl Shop {
    /// #[solve]
    /// async fn place(&mut self, ev: &PlaceOrder, ctx: &Ctx) -> Result<PlaceOrderResponse, Failure> {
    ///     let who = ctx.caller().ok_or_else(|| Failure::unauthorized("who are you?"))?;
    ///     self.orders.push((who.name().to_owned(), ev.item.clone()));
    ///     Ok(PlaceOrderResponse { by: who.to_string() })
    /// }
    /// # }
    /// ```
    ///
    /// [`Api::token_named`]: crate::api::Api::token_named
    pub fn caller(&self) -> Option<crate::Caller> {
        crate::trace::current_caller()
    }

    /// Spawns a task on the router's runtime. Spawned by a handler, what the task sends
    /// belongs to the handler's trace.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // A task spawned by a handler sends within the handler's trace.
        match crate::trace::current() {
            None => self.shared.runtime.spawn(future),
            Some(link) => self.shared.runtime.spawn(crate::trace::scope(Some(link), future)),
        }
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
            || (self.origin == Origin::Outside && self.shared.draining.load(Ordering::Acquire))
    }

    fn responder<E: Event>(&self) -> Result<&Target, Failure> {
        let target = self
            .shared
            .route_of_send(TypeId::of::<E>(), self.origin)
            .and_then(|r| r.responder.as_ref())
            .ok_or_else(|| {
                Failure::unavailable(format!("no responder for request `{}`", E::META.name))
            })?;
        if self.origin.is_manager(target.manager) {
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
            attachments: Box::new([]),
            metrics: false,
            user_metrics: None,
            tunnel_window: crate::tunnel::DEFAULT_WINDOW,
            senders: Default::default(),
        };
        Self::new(Arc::new(shared), Origin::Outside)
    }
}

/// [`Ctx::try_notify`] with other routers: every local mailbox is reserved first, then the
/// uplink takes the event, then the reservations are used; any refusal sends nothing.
#[cold]
fn try_notify_up<E: Event>(
    event: E,
    targets: &[Target],
    uplink: &Arc<dyn Uplink>,
    out: Outbound,
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
    if uplink.try_notify(out, &bytes).is_err() {
        return Err(TryNotifyError::Full(event));
    }
    let shared: Arc<dyn Any + Send + Sync> = Arc::new(event);
    for (permit, handler) in permits {
        permit.send(Envelope::shared(handler, E::META.priority, shared.clone()));
    }
    Ok(())
}

/// A mailbox send waiting for room: whether it was delivered.
type SendFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

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
