//! What the switch server counts (frames and bytes each way, joins, refusals by reason, per
//! connected router) and how it shows it: [`ServerStatus`] as JSON and in the Prometheus text
//! format. `edri-switch --metrics ADDR` serves both.

use crate::metrics::{header, label};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the switch refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client does not know the secret (or the switch's proof did not convince it).
    Secret,
    /// It speaks another protocol version, or gave an unusable router id.
    Protocol,
    /// It defines an event differently from a router already joined.
    Catalog,
    /// Anything else during the handshake: garbage, a timeout, a frame out of place.
    Handshake,
}

impl Refusal {
    const ALL: [Self; 4] = [Self::Secret, Self::Protocol, Self::Catalog, Self::Handshake];

    /// Its label in metrics and in [`ServerStatus::refusals_by_reason`].
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Protocol => "protocol",
            Self::Catalog => "catalog",
            Self::Handshake => "handshake",
        }
    }
}

/// Frames and bytes one way and the other.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
}

impl Traffic {
    /// One frame of `bytes` (length prefix included) received from a router.
    pub(crate) fn received(&self, bytes: usize) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One frame of `bytes` written to a router.
    pub(crate) fn sent(&self, bytes: usize) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TrafficCounts {
        TrafficCounts {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// The switch's own counters, over its whole run.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) traffic: Traffic,
    joins: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
}

impl Counters {
    /// A router joined.
    pub(crate) fn joined(&self) {
        self.joins.fetch_add(1, Ordering::Relaxed);
    }

    /// A client was refused for `why`.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refusals[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Frames and bytes received from and sent to routers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrafficCounts {
    /// Frames received from routers (after their handshake; pings included).
    pub frames_in: u64,
    /// Their bytes, length prefixes included.
    pub bytes_in: u64,
    /// Frames written to routers (pings and peer news included).
    pub frames_out: u64,
    /// Their bytes, length prefixes included.
    pub bytes_out: u64,
}

/// One router connected to the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectedRouter {
    /// Its id.
    pub id: String,
    /// The address it connects from.
    pub addr: String,
    /// Its run (microseconds since the Unix epoch at its start).
    pub epoch: u64,
    /// Milliseconds since it joined.
    pub joined_ms: u64,
    /// The notifications it has subscribers for.
    pub subscribes: Vec<String>,
    /// The requests it answers and the tunnels it accepts.
    pub responds: Vec<String>,
    /// Its traffic on this connection.
    #[serde(flatten)]
    pub traffic: TrafficCounts,
}

/// What a switch server shows of itself: [`StatusHandle::status`](super::StatusHandle::status).
///
/// As JSON (`edri-switch --metrics ADDR`, `GET /status`):
///
/// ```json
/// { "addr": "127.0.0.1:7800", "uptime_ms": 5120, "joins": 3,
///   "routers": [ { "id": "billing", "addr": "127.0.0.1:51234", "epoch": 1764,
///                  "joined_ms": 4000, "subscribes": ["Charged"], "responds": ["Charge"],
///                  "frames_in": 12, "bytes_in": 900, "frames_out": 10, "bytes_out": 700 } ],
///   "frames_in": 20, "bytes_in": 1500, "frames_out": 18, "bytes_out": 1300,
///   "refusals": 1, "refusals_by_reason": { "secret": 1 } }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerStatus {
    /// Where the switch listens.
    pub addr: String,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Routers that joined since it started (a reconnection counts again).
    pub joins: u64,
    /// The routers connected now, by id.
    pub routers: Vec<ConnectedRouter>,
    /// Its traffic since it started, every connection together.
    #[serde(flatten)]
    pub traffic: TrafficCounts,
    /// Clients refused since it started.
    pub refusals: u64,
    /// The same by reason (`secret`, `protocol`, `catalog`, `handshake`); reasons that never
    /// happened are left out.
    pub refusals_by_reason: BTreeMap<String, u64>,
}

/// What [`ServerStatus`] is made of, besides the connected routers.
pub(crate) struct Parts<'a> {
    pub(crate) addr: String,
    pub(crate) uptime_ms: u64,
    pub(crate) counters: &'a Counters,
    pub(crate) routers: Vec<(RouterParts, &'a Traffic)>,
}

/// A connected router, as the hub knows it.
pub(crate) struct RouterParts {
    pub(crate) id: String,
    pub(crate) addr: String,
    pub(crate) epoch: u64,
    pub(crate) joined_ms: u64,
    pub(crate) subscribes: Vec<String>,
    pub(crate) responds: Vec<String>,
}

impl ServerStatus {
    pub(crate) fn new(parts: Parts<'_>) -> Self {
        let mut routers: Vec<ConnectedRouter> = parts
            .routers
            .into_iter()
            .map(|(r, traffic)| ConnectedRouter {
                id: r.id,
                addr: r.addr,
                epoch: r.epoch,
                joined_ms: r.joined_ms,
                subscribes: r.subscribes,
                responds: r.responds,
                traffic: traffic.snapshot(),
            })
            .collect();
        routers.sort_by(|a, b| a.id.cmp(&b.id));
        let refusals_by_reason: BTreeMap<String, u64> = Refusal::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str().to_owned(),
                    parts.counters.refusals[*r as usize].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Self {
            addr: parts.addr,
            uptime_ms: parts.uptime_ms,
            joins: parts.counters.joins.load(Ordering::Relaxed),
            routers,
            traffic: parts.counters.traffic.snapshot(),
            refusals: refusals_by_reason.values().sum(),
            refusals_by_reason,
        }
    }

    /// The status in the Prometheus text format (version 0.0.4), every metric named
    /// `edri_switch_server_*`.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        };
        let uptime = self.uptime_ms as f64 / 1000.0;
        let uptime_name = "edri_switch_server_uptime_seconds";
        line(uptime_name, "gauge", "Seconds since the switch started.", &uptime);
        let routers = self.routers.len();
        line("edri_switch_server_routers", "gauge", "Routers connected now.", &routers);
        line("edri_switch_server_joins_total", "counter", "Routers that joined.", &self.joins);

        let name = "edri_switch_server_refusals_total";
        header(&mut out, name, "counter", "Clients refused, by reason.");
        for reason in Refusal::ALL.map(Refusal::as_str) {
            let n = self.refusals_by_reason.get(reason).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
        }

        for (unit, what) in [("frames", "Frames"), ("bytes", "Bytes of frames")] {
            let count = |t: &TrafficCounts| match unit {
                "frames" => (t.frames_in, t.frames_out),
                _ => (t.bytes_in, t.bytes_out),
            };
            let name = format!("edri_switch_server_{unit}_total");
            let help = format!("{what} received from (in) and sent to (out) routers.");
            header(&mut out, &name, "counter", &help);
            let (n_in, n_out) = count(&self.traffic);
            let _ = writeln!(out, "{name}{{direction=\"in\"}} {n_in}");
            let _ = writeln!(out, "{name}{{direction=\"out\"}} {n_out}");

            let name = format!("edri_switch_server_router_{unit}_total");
            let help =
                format!("{what} received from (in) and sent to (out) each connected router.");
            header(&mut out, &name, "counter", &help);
            for router in &self.routers {
                let (n_in, n_out) = count(&router.traffic);
                let id = label(&router.id);
                let _ = writeln!(out, "{name}{{router=\"{id}\",direction=\"in\"}} {n_in}");
                let _ = writeln!(out, "{name}{{router=\"{id}\",direction=\"out\"}} {n_out}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_traffic_show_in_both_forms() {
        let counters = Counters::default();
        counters.refused(Refusal::Secret);
        counters.refused(Refusal::Secret);
        counters.joined();
        counters.traffic.received(10);
        let link = Traffic::default();
        link.received(10);
        link.sent(7);
        let router = RouterParts {
            id: "a\"b".into(),
            addr: "127.0.0.1:1".into(),
            epoch: 1,
            joined_ms: 5,
            subscribes: vec![],
            responds: vec![],
        };
        let status = ServerStatus::new(Parts {
            addr: "127.0.0.1:7800".into(),
            uptime_ms: 1500,
            counters: &counters,
            routers: vec![(router, &link)],
        });
        assert_eq!(status.refusals, 2);
        assert_eq!(status.refusals_by_reason.get("secret"), Some(&2));
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["routers"][0]["bytes_out"], 7);
        assert_eq!(json["frames_in"], 1);
        let text = status.prometheus();
        assert!(text.contains("edri_switch_server_refusals_total{reason=\"secret\"} 2"), "{text}");
        assert!(text.contains("edri_switch_server_refusals_total{reason=\"catalog\"} 0"), "{text}");
        assert!(text.contains("edri_switch_server_routers 1"), "{text}");
        assert!(
            text.contains(
                "edri_switch_server_router_bytes_total{router=\"a\\\"b\",direction=\"out\"} 7"
            ),
            "{text}"
        );
        assert!(text.contains("edri_switch_server_frames_total{direction=\"in\"} 1"), "{text}");
    }
}
