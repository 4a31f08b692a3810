//! `GET /edri/topology`, read leniently: unknown keys are ignored and missing ones take their
//! defaults, so `edri` reads routers older and newer than itself (per-event `senders` among
//! them). And the rates between two polls.

use serde::Deserialize;
use std::time::Instant;

/// A router's topology.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Topology {
    pub(crate) uptime_ms: u64,
    pub(crate) pid: u32,
    pub(crate) managers: Vec<Manager>,
    pub(crate) events: Vec<Event>,
    pub(crate) routers: Vec<Router>,
}

/// A manager with its live counters.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Manager {
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) capacity: u64,
    pub(crate) depth: u64,
    pub(crate) busy: bool,
    pub(crate) processed: u64,
    pub(crate) failed: u64,
    pub(crate) crashed: u64,
    pub(crate) workers: u64,
    pub(crate) workers_idle: u64,
}

/// An event handled (or sent) in the router.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Event {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) handlers: Vec<String>,
    /// Who sends it, when the router tracks that.
    pub(crate) senders: Option<Vec<Sender>>,
}

/// One sender of an event: a manager's name, `outside`, `remote` or `router`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Sender {
    pub(crate) from: String,
    pub(crate) total: u64,
    pub(crate) last_minute: u64,
}

/// Another router joined to this one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Router {
    pub(crate) via: String,
    pub(crate) id: String,
    pub(crate) connected: bool,
    pub(crate) subscribes: Vec<String>,
    pub(crate) responds: Vec<String>,
}

/// A topology and when it was read.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) topology: Topology,
    pub(crate) at: Instant,
}

impl Snapshot {
    /// Events per second handled by manager `m` since `before` (none without an earlier
    /// poll, or when the router restarted in between).
    pub(crate) fn manager_rate(&self, m: &Manager, before: Option<&Self>) -> Option<f64> {
        let before = before?;
        let old = before.topology.managers.iter().find(|o| o.name == m.name)?;
        self.per_second(old.processed, m.processed, before)
    }

    /// Events per second sent of `e`: the change of its senders' totals since `before`, or,
    /// on the first poll, their last minute's count over 60 s. None when the router does
    /// not track senders.
    pub(crate) fn event_rate(&self, e: &Event, before: Option<&Self>) -> Option<f64> {
        let senders = e.senders.as_ref()?;
        let total: u64 = senders.iter().map(|s| s.total).sum();
        let earlier = before.and_then(|b| {
            let old = b.topology.events.iter().find(|o| o.name == e.name)?;
            let old: u64 = old.senders.as_ref()?.iter().map(|s| s.total).sum();
            self.per_second(old, total, b)
        });
        earlier.or_else(|| Some(senders.iter().map(|s| s.last_minute).sum::<u64>() as f64 / 60.0))
    }

    /// `(now - then) / seconds since before`, unless a counter went back (a restart).
    fn per_second(&self, then: u64, now: u64, before: &Self) -> Option<f64> {
        let seconds = self.at.saturating_duration_since(before.at).as_secs_f64();
        let restarted = before.topology.pid != self.topology.pid
            || before.topology.uptime_ms > self.topology.uptime_ms;
        (seconds > 0.0 && now >= then && !restarted).then(|| (now - then) as f64 / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn snapshot(value: serde_json::Value, at: Instant) -> Snapshot {
        Snapshot { topology: serde_json::from_value(value).unwrap(), at }
    }

    #[test]
    fn rates_from_processed_without_senders() {
        let t0 = Instant::now();
        let before = snapshot(
            json!({"pid": 1, "uptime_ms": 10, "managers": [{"name": "A", "processed": 10}],
                   "events": [{"name": "E", "kind": "request", "handlers": ["A::e"]}]}),
            t0,
        );
        let now = snapshot(
            json!({"pid": 1, "uptime_ms": 2010, "managers": [{"name": "A", "processed": 30, "new": 1}],
                   "events": [{"name": "E"}], "extra": {}}),
            t0 + Duration::from_secs(2),
        );
        let a = &now.topology.managers[0];
        assert_eq!(now.manager_rate(a, Some(&before)), Some(10.0));
        assert_eq!(now.manager_rate(a, None), None);
        assert_eq!(now.event_rate(&now.topology.events[0], Some(&before)), None);
    }

    #[test]
    fn rates_from_senders_when_present() {
        let t0 = Instant::now();
        let senders = |total: u64| {
            json!([{"from": "outside", "total": total, "last_minute": 120},
                                           {"from": "A", "total": 0, "last_minute": 0}])
        };
        let before =
            snapshot(json!({"pid": 1, "events": [{"name": "E", "senders": senders(4)}]}), t0);
        let now = snapshot(
            json!({"pid": 1, "events": [{"name": "E", "senders": senders(8)}]}),
            t0 + Duration::from_secs(1),
        );
        let e = &now.topology.events[0];
        assert_eq!(now.event_rate(e, Some(&before)), Some(4.0));
        assert_eq!(now.event_rate(e, None), Some(2.0));
        let restarted = snapshot(
            json!({"pid": 2, "events": [{"name": "E", "senders": senders(1)}]}),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(restarted.event_rate(&restarted.topology.events[0], Some(&now)), Some(2.0));
    }
}
