//! The NATS link's counters and its lines of `GET /metrics`.

use super::NatsStatus;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the link ([`NatsStatus`], metrics).
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) published: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) pending_acks: AtomicU64,
    pub(super) redelivered: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) out_of_order: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) decode_errors: AtomicU64,
    pub(super) buffered: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) republished: AtomicU64,
    pub(super) responses_unsent: AtomicU64,
    /// The stream sequence of the last notification this router published.
    pub(super) last_sequence: AtomicU64,
}

/// Adds `n` to `counter`.
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Takes `n` from `counter`.
pub(super) fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
}

/// The value of `counter`.
pub(super) fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The link's lines of `GET /metrics`.
pub(super) fn render(status: &NatsStatus, stats: &Stats, out: &mut String) {
    let peers = status.peers.iter().filter(|p| p.connected).count() as u64;
    let lines: [(&str, &str, &str, u64); 14] = [
        ("edri_nats_connected", "gauge", "1 while connected to NATS.", u64::from(status.connected)),
        ("edri_nats_peers", "gauge", "Other routers of the namespace seen alive.", peers),
        (
            "edri_nats_published_total",
            "counter",
            "Notifications published and acknowledged by JetStream.",
            status.published,
        ),
        (
            "edri_nats_republished_total",
            "counter",
            "Publishes sent again after a failed or missing acknowledgement.",
            get(&stats.republished),
        ),
        (
            "edri_nats_delivered_total",
            "counter",
            "Notifications from other routers delivered here.",
            status.delivered,
        ),
        (
            "edri_nats_pending_acks",
            "gauge",
            "Notifications handed to handlers here, not acknowledged yet.",
            status.pending_acks,
        ),
        (
            "edri_nats_redelivered_total",
            "counter",
            "Messages JetStream delivered more than once.",
            status.redelivered,
        ),
        (
            "edri_nats_duplicates_total",
            "counter",
            "Messages received twice in this run and dropped.",
            status.duplicates,
        ),
        (
            "edri_nats_out_of_order_total",
            "counter",
            "Notifications delivered here after later ones of their sender (a hole that did not \
             fill in time).",
            status.out_of_order,
        ),
        (
            "edri_nats_lost_total",
            "counter",
            "Notifications given up: not acknowledged by JetStream within the outage window.",
            status.lost,
        ),
        (
            "edri_nats_decode_errors_total",
            "counter",
            "Messages on the namespace's subjects that could not be decoded.",
            status.decode_errors,
        ),
        (
            "edri_nats_buffered",
            "gauge",
            "Publishes waiting for their acknowledgement by JetStream.",
            status.buffered,
        ),
        ("edri_nats_reconnects_total", "counter", "Connections to NATS lost.", status.reconnects),
        (
            "edri_nats_responses_unsent_total",
            "counter",
            "Answers to other routers' requests that could not be sent (their requester times out).",
            status.responses_unsent,
        ),
    ];
    for (name, kind, help, value) in lines {
        crate::metrics::header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}
