//! Who sends which event: one counter per event and sender, bumped on the send path, and
//! samples of them every few seconds for the counts over the last minute that
//! [`Topology`](super::Topology) shows.
//!
//! A send costs one relaxed atomic increment on the event's route, which the lookup of the
//! route has just brought into the cache.

use super::{Route, Shared, TypeIdHasher};
use crate::ctx::Origin;
use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the counters are sampled.
const EVERY: Duration = Duration::from_secs(5);
/// The window of [`SenderNode::last_minute`](super::SenderNode::last_minute).
const WINDOW: Duration = Duration::from_secs(60);

/// Sends of one event, by sender: one slot per manager (by index), then code outside the
/// managers, other routers and workers' parents, and the router itself.
pub(crate) struct Sent(Box<[AtomicU64]>);

/// The slots of a router with `managers` managers.
pub(crate) fn slots(managers: usize) -> usize {
    managers + 3
}

impl Sent {
    pub(crate) fn new(slots: usize) -> Self {
        Self((0..slots).map(|_| AtomicU64::new(0)).collect())
    }

    /// Counts one send by `origin`.
    #[inline]
    pub(crate) fn count(&self, origin: Origin) {
        let slot = match origin {
            Origin::Manager(i) => i as usize,
            Origin::Outside => self.0.len() - 3,
            Origin::Remote => self.0.len() - 2,
            Origin::Router => self.0.len() - 1,
        };
        if let Some(counter) = self.0.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The totals, by slot.
    fn totals(&self) -> Box<[u64]> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Whether anybody sent this event yet.
    fn any(&self) -> bool {
        self.0.iter().any(|c| c.load(Ordering::Relaxed) > 0)
    }
}

type Totals = HashMap<TypeId, Box<[u64]>, BuildHasherDefault<TypeIdHasher>>;

/// Samples of every route's counters (only of events sent at least once), oldest first, and
/// the thread that takes them (woken when the router is gone, so that it ends at once).
#[derive(Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<(Instant, Totals)>>,
    sampler: std::sync::OnceLock<std::thread::Thread>,
}

impl Drop for History {
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.get() {
            sampler.unpark();
        }
    }
}

impl History {
    /// Keeps the sample `totals` taken at `now`, and forgets those no longer needed for the
    /// window.
    fn record(&self, now: Instant, totals: Totals) {
        let mut samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        samples.push_back((now, totals));
        while samples.get(1).is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW) {
            samples.pop_front();
        }
    }

    /// Event `event`'s counts by slot at the start of the window (the newest sample at least
    /// a minute old, else the router's start: zeros).
    fn baseline(&self, event: TypeId, now: Instant) -> Option<Box<[u64]>> {
        let samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        samples
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= WINDOW)
            .and_then(|(_, totals)| totals.get(&event).cloned())
    }
}

/// Samples `shared`'s counters every few seconds on a thread of its own until the router
/// stops or is gone (then the thread is woken and ends). (Not a tokio timer: a pending timer makes every park of the router's runtime read the
/// clock and turn the timer wheel, which costs each request on a current-thread runtime about
/// 350 instructions.)
pub(crate) fn sample(router: &Arc<Shared>) {
    let shared = Arc::downgrade(router);
    let sampling = move || {
        loop {
            std::thread::park_timeout(EVERY);
            let Some(shared) = shared.upgrade() else { return };
            if shared.stopping.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            let totals = shared.routes.iter().filter(|(_, r)| r.sent.any());
            let totals = totals.map(|(id, r)| (*id, r.sent.totals())).collect();
            shared.senders.record(Instant::now(), totals);
        }
    };
    match std::thread::Builder::new().name("edri-senders".into()).spawn(sampling) {
        Ok(thread) => {
            let _ = router.senders.sampler.set(thread.thread().clone());
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the thread that samples the senders' counts: \
            the topology's `last_minute` counts everything since the start")
        }
    }
}

/// One sender of an event: `(who, total, last minute)`, senders that never sent it left out.
pub(crate) fn of(shared: &Shared, event: TypeId, route: &Route) -> Vec<(String, u64, u64)> {
    let totals = route.sent.totals();
    let baseline = shared.senders.baseline(event, Instant::now());
    let managers = totals.len().saturating_sub(3);
    totals
        .iter()
        .enumerate()
        .filter(|(_, total)| **total > 0)
        .map(|(slot, total)| {
            let who = match slot.checked_sub(managers) {
                None => shared.managers[slot].descriptor.name.to_owned(),
                Some(0) => "outside".to_owned(),
                Some(1) => "remote".to_owned(),
                Some(_) => "router".to_owned(),
            };
            let before = baseline.as_ref().and_then(|b| b.get(slot)).copied().unwrap_or(0);
            (who, *total, total - before)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_counted_by_sender_slot() {
        let sent = Sent::new(slots(2));
        sent.count(Origin::Manager(1));
        sent.count(Origin::Manager(1));
        sent.count(Origin::Outside);
        sent.count(Origin::Remote);
        sent.count(Origin::Router);
        sent.count(Origin::Manager(7));
        assert_eq!(&*sent.totals(), &[0, 2, 1, 1, 1]);
        assert!(sent.any());
        assert!(!Sent::new(slots(0)).any());
    }

    #[test]
    fn the_baseline_is_the_newest_sample_a_minute_old() {
        struct A;
        struct B;
        let (a, b) = (TypeId::of::<A>(), TypeId::of::<B>());
        let start = Instant::now();
        let history = History::default();
        let at = |s: u64| start + Duration::from_secs(s);
        let sample = |n: u64| -> Totals { [(a, Box::from([n, 0]))].into_iter().collect() };
        // Younger than a minute: no baseline (the counts since the start are the minute's).
        history.record(at(5), sample(10));
        assert_eq!(history.baseline(a, at(30)), None);
        for s in (10..=70).step_by(5) {
            history.record(at(s), sample(s * 2));
        }
        // At 72 s the newest sample at least 60 s old is the one of 10 s.
        assert_eq!(history.baseline(a, at(72)).as_deref(), Some(&[20, 0][..]));
        assert_eq!(history.baseline(b, at(72)), None);
        // Samples older than needed are gone: at most one older than the window is kept.
        let kept = history.samples.lock().unwrap();
        assert!(kept.len() <= 14, "{}", kept.len());
        assert_eq!(kept.front().map(|(t, _)| *t), Some(at(10)));
    }
}
