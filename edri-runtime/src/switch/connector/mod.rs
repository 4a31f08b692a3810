//! A router's end of the switch: one connection, kept up; numbered streams to every other
//! router, kept until acknowledged; deduplicated, ordered delivery of theirs.
//!
//! The pieces, each owning its state:
//! - [`session`]: the connection (connect, authenticate, join, read, write, reconnect);
//!   the only part that does I/O;
//! - [`outbox`]: events kept for other routers until acknowledged, and what to send next;
//! - [`inbound`]: each other router's stream to this one: deliver, gap or duplicate;
//! - [`delivery`]: accepted events into this router's mailboxes, acknowledged once handled
//!   ([`progress`]);
//! - [`peers`], [`calls`], [`tunnels`]: the other routers, requests waiting for a response,
//!   tunnels with other routers;
//! - [`metrics`]: the counters and their lines of `GET /metrics`.

mod calls;
mod delivery;
mod inbound;
mod metrics;
mod outbox;
mod peers;
mod progress;
mod session;
mod tunnels;

use super::frame::Item;
use super::{SECRET_ENV, Switch, SwitchStatus};
use crate::error::StartError;
use crate::manager::ManagerDescriptor;
use crate::peering::{CatalogEntry, default_id, interests, wire_catalog};
use crate::router::{BoxFuture, Outbound, Shared, Uplink};
use crate::tunnel::remote::RemoteEnd;
use crate::{Ctx, Failure};
use calls::Calls;
use metrics::{Stats, add, get};
use outbox::Outbox;
use peers::PeerTable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tunnels::Tunnels;

/// The connector of one router.
pub(crate) struct Connector {
    addr: String,
    secret: Vec<u8>,
    id: String,
    epoch: u64,
    outage_ms: u64,
    /// Events of one stream in flight at most.
    window: u64,
    /// The router, once it exists (weak: the router owns the connector).
    shared: OnceLock<Weak<Shared>>,
    /// This binary's events, in the order of its wire ids.
    catalog: Vec<CatalogEntry>,
    subscribes: Vec<String>,
    responds: Vec<String>,
    peers: PeerTable,
    out: Mutex<Outbox>,
    /// Wakes the writer.
    wake: Notify,
    /// Signals room in the outbox.
    space: Notify,
    calls: Calls,
    tunnels: Tunnels,
    stats: Stats,
    connected: AtomicBool,
    stopping: AtomicBool,
    leaving: AtomicBool,
    clock: Instant,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Connector {
    /// A connector for a router running `managers`.
    pub(crate) fn new(
        config: Switch,
        managers: &[&'static ManagerDescriptor],
    ) -> Result<Self, StartError> {
        let secret = match config.secret {
            Some(secret) => secret,
            None => std::env::var(SECRET_ENV)
                .map(String::into_bytes)
                .map_err(|_| StartError::SwitchSecret { env: SECRET_ENV })?,
        };
        let id = config.id.unwrap_or_else(default_id);
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let catalog = wire_catalog().to_vec();
        let (subscribes, responds) = interests(managers);
        let outage_ms = u64::try_from(config.outage_window.as_millis()).unwrap_or(u64::MAX);
        let window = u64::from(config.window);
        Ok(Self {
            addr: config.addr,
            secret,
            id,
            epoch,
            outage_ms,
            window,
            shared: OnceLock::new(),
            catalog,
            subscribes,
            responds,
            peers: PeerTable::default(),
            out: Mutex::new(Outbox::new(config.buffer, window, outage_ms)),
            wake: Notify::new(),
            space: Notify::new(),
            calls: Calls::default(),
            tunnels: Tunnels::default(),
            stats: Stats::default(),
            connected: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            clock: Instant::now(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Connects for the first time and keeps the connection up from then on. Returns once the
    /// first attempt is decided: joined, or unreachable (it keeps trying in the background).
    ///
    /// # Errors
    /// When the switch refuses this router (secret, protocol, catalog): a configuration error.
    pub(crate) async fn start(self: &Arc<Self>, shared: &Arc<Shared>) -> Result<(), StartError> {
        let _ = self.shared.set(Arc::downgrade(shared));
        let (first_tx, first_rx) = oneshot::channel();
        let runtime = &shared.runtime;
        let run = runtime.spawn(self.clone().run(first_tx));
        let ticker = runtime.spawn(self.clone().tick());
        self.tasks().extend([run, ticker]);
        match first_rx.await {
            Ok(Err(reason)) => {
                self.abort();
                Err(StartError::SwitchRefused { addr: self.addr.clone(), reason })
            }
            _ => Ok(()),
        }
    }

    /// Stops: waits (until `deadline`) for every event sent to a connected router to be
    /// acknowledged, tells the switch that this router leaves, and closes.
    pub(crate) async fn close(&self, deadline: tokio::time::Instant) {
        let flushed = async {
            while self.outbox().unacknowledged() > 0 && self.connected.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, flushed).await;
        let pending = self.outbox().unacknowledged();
        if pending > 0 {
            tracing::warn!(pending, "stopping with events other routers have not acknowledged");
        }
        if self.connected.load(Ordering::Acquire) {
            self.leaving.store(true, Ordering::Release);
            self.wake.notify_one();
            let left = async {
                while self.leaving.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_millis(500), left).await;
        }
        self.abort();
    }

    /// Ends every task of the connector; waiting senders and callers fail.
    pub(crate) fn abort(&self) {
        self.stopping.store(true, Ordering::Release);
        self.connected.store(false, Ordering::Release);
        for task in self.tasks().drain(..) {
            task.abort();
        }
        self.space.notify_waiters();
        self.calls.clear();
        self.tunnels.clear();
    }

    /// A snapshot for [`Running::switch`](crate::Running::switch).
    /// Adds the connector's lines to the metrics text.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        metrics::render(&self.status(), &self.stats, out);
    }

    pub(crate) fn status(&self) -> SwitchStatus {
        let peers = self.peers.read().list();
        let buffered = self.outbox().buffered();
        let stats = &self.stats;
        SwitchStatus {
            id: self.id.clone(),
            epoch: self.epoch,
            connected: self.connected.load(Ordering::Acquire),
            peers,
            sent: get(&stats.sent),
            delivered: get(&stats.delivered),
            resent: get(&stats.resent),
            duplicates: get(&stats.duplicates),
            lost: get(&stats.lost),
            redelivered: get(&stats.redelivered),
            buffered,
            reconnects: get(&stats.reconnects),
            tunnels: self.tunnels.len() as u64,
        }
    }

    fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds on the connector's clock.
    fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn ctx(&self) -> Option<Ctx> {
        let shared = self.shared.get()?.upgrade()?;
        Some(Ctx::new(shared, crate::ctx::Origin::Remote))
    }

    /// Acknowledges what `progress` says was handled of router `from`'s stream: soon,
    /// together with the next data for the switch, or on its own.
    fn ack(&self, from: &Arc<str>, progress: &Arc<progress::Progress>) {
        let now = self.now();
        self.outbox().progressed(from.clone(), progress.clone(), now);
        self.wake.notify_one();
    }

    /// Router `from` delivered everything below `next` of this router's stream to it.
    fn acked(&self, from: &str, next: u64) {
        let now = self.now();
        if self.outbox().acked(from, next, now) {
            self.space.notify_waiters();
            self.wake.notify_one();
        }
    }

    /// Router `to` asks for this router's stream again from `from`.
    fn resend(&self, to: &str, from: u64) {
        let now = self.now();
        let again = self.outbox().resend(to, from, now);
        add(&self.stats.resent, again);
        self.wake.notify_one();
    }

    /// Keeps `item` for each router in `to` and wakes the writer; waits while the buffer is
    /// full (unless `force`: responses must not wait behind the events they answer).
    async fn enqueue(&self, to: &[Arc<str>], item: &Item<'_>, force: bool) -> Result<(), Failure> {
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return Err(Failure::unavailable(
                    "the router is stopping; not sent to other routers",
                ));
            }
            if self.try_enqueue(to, item, force)? {
                // A sender that never has to wait still lets the writer (and everything else
                // on its thread) run now and then.
                tokio::task::coop::consume_budget().await;
                return Ok(());
            }
            // Full: wait for room, registered before looking again so no wake-up is missed.
            let room = self.space.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_enqueue(to, item, force)? {
                return Ok(());
            }
            room.await;
        }
    }

    /// Keeps `item` for each router in `to` unless the buffer is full (and not `force`):
    /// whether it was kept.
    ///
    /// # Errors
    /// When `item` cannot be encoded (too large).
    fn try_enqueue(&self, to: &[Arc<str>], item: &Item<'_>, force: bool) -> Result<bool, Failure> {
        let now = self.now();
        let Some(sendable) = self.outbox().push(to, item, force, now)? else { return Ok(false) };
        add(&self.stats.sent, to.len() as u64);
        // Kept for a router that is away: nothing for the writer to do until it is back.
        if sendable {
            self.wake.notify_one();
        }
        Ok(true)
    }

    /// The wire id of `event` (looked up by name when the route had none).
    fn wire(event: Outbound) -> Result<u32, Failure> {
        if event.wire != Outbound::NO_WIRE {
            return Ok(event.wire);
        }
        crate::peering::wire_id(event.name).ok_or_else(|| {
            Failure::invalid(format!("event `{}` cannot go to other routers", event.name))
        })
    }

    /// Every 100 ms: sends again what a connected router did not acknowledge for a while, and
    /// gives up events (and routers) beyond the outage window.
    async fn tick(self: Arc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = self.now();
            let expired = self.outbox().expire(now);
            if expired.resent > 0 {
                add(&self.stats.resent, expired.resent);
                self.wake.notify_one();
            }
            if !expired.lost.is_empty() {
                self.space.notify_waiters();
            }
            for (id, lost) in expired.lost {
                self.tunnels.lost(&id);
                add(&self.stats.lost, lost);
                tracing::warn!(
                    router = %id,
                    lost,
                    window = ?Duration::from_millis(self.outage_ms),
                    "events unacknowledged beyond the outage window were given up"
                );
            }
            self.forget_away(now);
        }
    }
}

impl Uplink for Connector {
    fn open(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        window: usize,
        timeout: Duration,
    ) -> BoxFuture<Result<RemoteEnd, Failure>> {
        Box::pin(self.open_tunnel(event, payload, window, timeout))
    }

    fn wants(&self, event: Outbound, _local: bool) -> bool {
        self.peers.read().subscribers(event).is_some()
    }

    fn offer(&self, event: Outbound, payload: &[u8]) -> Option<Result<(), Failure>> {
        let peers = self.peers.read();
        let Some(to) = peers.subscribers(event) else { return Some(Ok(())) };
        let id = match Self::wire(event) {
            Ok(id) => id,
            Err(failure) => return Some(Err(failure)),
        };
        let item = Item::Notify { event: id, payload, trace: crate::trace::context() };
        match self.try_enqueue(to, &item, false) {
            Ok(true) => {
                drop(peers);
                Some(Ok(()))
            }
            Ok(false) => None,
            Err(failure) => Some(Err(failure)),
        }
    }

    fn notify(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
    ) -> BoxFuture<Result<(), Failure>> {
        let trace = crate::trace::context();
        Box::pin(async move {
            let Some(to) = self.peers.read().subscribers(event).cloned() else { return Ok(()) };
            let item = Item::Notify { event: Self::wire(event)?, payload: &payload, trace };
            self.enqueue(&to, &item, false).await
        })
    }

    fn try_notify(&self, event: Outbound, payload: &[u8]) -> Result<(), Failure> {
        let Some(to) = self.peers.read().subscribers(event).cloned() else { return Ok(()) };
        let trace = crate::trace::context();
        let item = Item::Notify { event: Self::wire(event)?, payload, trace };
        if self.try_enqueue(&to, &item, false)? {
            Ok(())
        } else {
            Err(Failure::unavailable("the buffer for other routers is full"))
        }
    }

    fn request(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<u8>, Failure>> {
        Box::pin(async move {
            let Some(to) = self.peers.responder(event) else {
                return Err(Failure::unavailable(format!(
                    "no responder for request `{}` on this router or any router of the switch",
                    event.name
                )));
            };
            self.call(to, event, &payload, timeout).await
        })
    }

    fn request_all(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Vec<Result<Vec<u8>, Failure>>> {
        Box::pin(self.call_all(event, payload, timeout))
    }
}
