//! The connector's counters and its lines of `GET /metrics`.

use crate::switch::SwitchStatus;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the connector ([`SwitchStatus`], metrics).
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) sent: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) resent: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) redelivered: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) restarts: AtomicU64,
}

/// Adds `n` to `counter`.
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The value of `counter`.
pub(super) fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The connector's lines of `GET /metrics`: its `status` and the counters only `stats` has.
pub(super) fn render(status: &SwitchStatus, stats: &Stats, out: &mut String) {
    let rejected = get(&stats.rejected);
    let restarts = get(&stats.restarts);
    let lines: [(&str, &str, &str, u64); 12] = [
        (
            "edri_switch_connected",
            "gauge",
            "1 while joined to the switch.",
            u64::from(status.connected),
        ),
        (
            "edri_switch_peers",
            "gauge",
            "Other routers connected to the switch.",
            status.peers.iter().filter(|p| p.connected).count() as u64,
        ),
        (
            "edri_switch_sent_total",
            "counter",
            "Events sent to other routers (one per destination).",
            status.sent,
        ),
        (
            "edri_switch_delivered_total",
            "counter",
            "Events from other routers delivered here.",
            status.delivered,
        ),
        (
            "edri_switch_resent_total",
            "counter",
            "Events sent again after a reconnection or a gap.",
            status.resent,
        ),
        (
            "edri_switch_duplicates_total",
            "counter",
            "Events received twice and dropped.",
            status.duplicates,
        ),
        (
            "edri_switch_redelivered_total",
            "counter",
            "Events sent again to a restarted router that had not acknowledged them (at most \
             handled twice).",
            status.redelivered,
        ),
        (
            "edri_switch_lost_total",
            "counter",
            "Events given up: beyond the outage window, or for a router that left.",
            status.lost,
        ),
        (
            "edri_switch_rejected_total",
            "counter",
            "Events from other routers that could not be delivered (unknown or malformed).",
            rejected,
        ),
        (
            "edri_switch_buffered",
            "gauge",
            "Events waiting for an acknowledgement.",
            status.buffered,
        ),
        (
            "edri_switch_reconnects_total",
            "counter",
            "Connections to the switch lost.",
            status.reconnects,
        ),
        ("edri_switch_tunnels", "gauge", "Tunnels open with other routers.", status.tunnels),
    ];
    for (name, kind, help, value) in lines {
        crate::metrics::header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    crate::metrics::header(
        out,
        "edri_switch_peer_restarts_total",
        "counter",
        "Other routers seen restarting (a new epoch).",
    );
    let _ = writeln!(out, "edri_switch_peer_restarts_total {restarts}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_one_line_with_its_value() {
        let stats = Stats::default();
        add(&stats.rejected, 3);
        add(&stats.restarts, 2);
        add(&stats.restarts, 1);
        let status = SwitchStatus {
            id: "a".into(),
            epoch: 1,
            connected: true,
            peers: Vec::new(),
            sent: 10,
            delivered: 11,
            resent: 12,
            duplicates: 13,
            lost: 14,
            redelivered: 15,
            buffered: 16,
            reconnects: 17,
            tunnels: 18,
        };
        let mut out = String::new();
        render(&status, &stats, &mut out);
        let values: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        let expected = [
            "edri_switch_connected 1",
            "edri_switch_peers 0",
            "edri_switch_sent_total 10",
            "edri_switch_delivered_total 11",
            "edri_switch_resent_total 12",
            "edri_switch_duplicates_total 13",
            "edri_switch_redelivered_total 15",
            "edri_switch_lost_total 14",
            "edri_switch_rejected_total 3",
            "edri_switch_buffered 16",
            "edri_switch_reconnects_total 17",
            "edri_switch_tunnels 18",
            "edri_switch_peer_restarts_total 3",
        ];
        assert_eq!(values, expected);
        assert_eq!(out.lines().filter(|l| l.starts_with("# TYPE")).count(), expected.len());
    }
}
