//! The router: owns the routing table that senders use to push straight into the
//! subscribers' mailboxes. It is not a queue that events pass through.

pub(crate) mod attach;
mod builder;
mod running;
pub(crate) mod senders;
mod signals;
mod table;
pub(crate) mod topology;

pub(crate) use attach::{Outbound, Uplink};
pub(crate) use builder::DEFAULT_TIMEOUT;
pub use builder::{Edri, EdriBuilder};
pub use running::{Running, ShutdownReport};
use signals::StopSignals;
pub(crate) use table::{Route, Target};
pub use topology::{EventNode, HandlerNode, ManagerNode, RouterNode, SenderNode, Topology};

use crate::ctx::Origin;
use crate::manager::{ManagerDescriptor, ManagerStats, ManagerVitals, OUTSIDE};
use std::any::TypeId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// State shared by every [`Ctx`](crate::Ctx) of one router; immutable after start except for
/// counters and the stop flag.
pub(crate) struct Shared {
    pub(crate) routes: HashMap<TypeId, Route, BuildHasherDefault<TypeIdHasher>>,
    pub(crate) managers: Box<[ManagerSlot]>,
    pub(crate) default_timeout: Duration,
    pub(crate) worker_timeout: Duration,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Set once the router stopped taking events: every send is refused.
    pub(crate) stopping: AtomicBool,
    /// Set when the shutdown begins: sends from outside managers are refused.
    pub(crate) draining: AtomicBool,
    pub(crate) shutdown_requested: Notify,
    /// When the router started.
    pub(crate) started: std::time::Instant,
    /// Where events without a local route go (a worker process's parent), if anywhere.
    pub(crate) uplink: Option<Arc<dyn Uplink>>,
    /// What is attached to the router (API broker, transport), for their metrics.
    pub(crate) attachments: Box<[std::sync::Weak<dyn attach::Attachment>]>,
    /// Whether handler calls are counted and timed ([`crate::metrics`]).
    pub(crate) metrics: bool,
    /// The application's own metrics, rendered after the router's.
    pub(crate) user_metrics: Option<Arc<prometheus_client::registry::Registry>>,
    /// The window of tunnels that do not set their own.
    pub(crate) tunnel_window: usize,
    /// Samples of who sent which event, for the topology's rates.
    pub(crate) senders: senders::History,
}

/// A future boxed for type erasure across process boundaries.
pub(crate) type BoxFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// One running manager, as seen by the router.
pub(crate) struct ManagerSlot {
    pub(crate) descriptor: &'static ManagerDescriptor,
    pub(crate) mailbox: crate::mailbox::MailboxTx,
    /// One semaphore per thread/process handler (by handler index), `None` for inline ones.
    pub(crate) limits: Box<[Option<Arc<Semaphore>>]>,
    /// The worker pool of each process handler (by handler index).
    pub(crate) pools: crate::mode::process::Pools,
    /// The threads of each thread handler (by handler index).
    pub(crate) threads: Box<[Option<Arc<crate::mode::thread::Threads>>]>,
    pub(crate) stats: ManagerStats,
    /// Metrics of each handler (by handler index).
    pub(crate) handler_stats: Box<[crate::metrics::HandlerStats]>,
}

impl Shared {
    #[inline]
    pub(crate) fn route(&self, event: TypeId) -> Option<&Route> {
        self.routes.get(&event)
    }

    /// The route of an event that `origin` sends, counting the send.
    #[inline]
    pub(crate) fn route_of_send(&self, event: TypeId, origin: Origin) -> Option<&Route> {
        let route = self.routes.get(&event);
        if let Some(route) = route {
            route.sent.count(origin);
        }
        route
    }

    pub(crate) fn stats(&self, origin: Origin) -> &ManagerStats {
        origin.index().and_then(|i| self.managers.get(i)).map_or(&OUTSIDE, |m| &m.stats)
    }

    /// Records a call of handler `handler` of manager `origin` that began at `since`, when
    /// metrics are on.
    #[inline]
    pub(crate) fn record_call(
        &self,
        origin: Origin,
        handler: u16,
        since: Option<std::time::Instant>,
    ) {
        if let Some(since) = since {
            self.record(origin, handler, since);
        }
    }

    #[cold]
    fn record(&self, origin: Origin, handler: u16, since: std::time::Instant) {
        if let Some(m) = origin.index().and_then(|i| self.managers.get(i))
            && let Some(stats) = m.handler_stats.get(usize::from(handler))
        {
            stats.record(since.elapsed());
        }
    }

    /// Now, when metrics are on (the start of a timed call).
    #[inline]
    pub(crate) fn clock(&self) -> Option<std::time::Instant> {
        self.metrics.then(std::time::Instant::now)
    }

    /// A snapshot of every manager's counters.
    pub(crate) fn vitals(&self) -> Vec<ManagerVitals> {
        self.managers
            .iter()
            .map(|m| ManagerVitals {
                name: m.descriptor.name.to_owned(),
                queued: m.mailbox.max_capacity() - m.mailbox.capacity(),
                capacity: m.mailbox.max_capacity(),
                processed: m.stats.processed(),
                failed: m.stats.failed_count(),
                crashed: m.stats.crashed_count(),
                dropped: m.stats.dropped_count() + m.mailbox.lost(),
                busy: m.stats.is_busy(),
                workers: m.pools.iter().flatten().map(|p| p.pids().len()).sum(),
                workers_idle: m.pools.iter().flatten().map(|p| p.idle_count()).sum(),
                threads_refused: m.threads.iter().flatten().map(|t| t.refused()).sum(),
            })
            .collect()
    }

    /// One look at the whole router: `None` when some mailbox holds an event, a handler runs or
    /// a worker job is out; otherwise how many events were processed so far.
    fn idle_snapshot(&self) -> Option<u64> {
        let mut processed = 0;
        for m in self.managers.iter() {
            let queue_empty = m.mailbox.capacity() == m.mailbox.max_capacity();
            let workers_idle =
                m.descriptor.handlers.iter().zip(m.limits.iter()).all(|(h, l)| {
                    l.as_ref().is_none_or(|l| l.available_permits() == h.limit.max(1))
                });
            if !queue_empty || m.stats.is_busy() || !workers_idle {
                return None;
            }
            processed += m.stats.processed();
        }
        Some(processed)
    }

    /// Waits until the router is quiescent: two looks a moment apart both find every mailbox
    /// empty, no handler running, no worker job out, and nothing processed in between. Events
    /// that handlers send while draining are therefore delivered before anyone stops.
    pub(crate) async fn quiescent(&self) {
        loop {
            let before = self.idle_snapshot();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            if before.is_some() && self.idle_snapshot() == before {
                return;
            }
        }
    }
}

/// A map with [`TypeIdHasher`]: type ids pass through, short strings get FNV-1a. For keys
/// that come from this program (event names, router ids), not from strangers.
#[cfg(any(feature = "switch", feature = "nats"))]
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<TypeIdHasher>>;

/// `TypeId` is already a hash: pass its bits through. Other keys are hashed with FNV-1a.
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64);
    }
}
