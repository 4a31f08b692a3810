//! Prometheus metrics of a router: events delivered per type, events handled and handler
//! latency per handler, mailbox depths, failures, panics and workers.
//!
//! Counting is on when the API broker runs (it serves `GET /metrics`) or when
//! [`EdriBuilder::metrics`](crate::EdriBuilder::metrics) turns it on; otherwise the hot path
//! pays one predictable branch per handled event. Handler counts and latencies are counted
//! where events are handled (by the one task serving each manager); sends are counted by
//! sender on the event's route (`edri_events_sent_total`, always on: see
//! [`Topology`](crate::Topology)). [`Running::metrics`](crate::Running::metrics) renders the
//! text format, followed by the user's own metrics
//! ([`EdriBuilder::metrics_registry`](crate::EdriBuilder::metrics_registry)).

use crate::router::Shared;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds (`+Inf` follows).
pub(crate) const LATENCY_BUCKETS: [f64; 12] =
    [1e-6, 5e-6, 25e-6, 1e-4, 5e-4, 25e-4, 0.01, 0.05, 0.25, 1.0, 5.0, 30.0];

/// Counters of one handler of one manager.
#[derive(Debug, Default)]
pub(crate) struct HandlerStats {
    handled: AtomicU64,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl HandlerStats {
    /// Records one handled event that took `elapsed`.
    pub(crate) fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket =
            LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.handled.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Escapes a label value of the text format.
pub(crate) fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The router's metrics in the Prometheus text format (version 0.0.4).
pub(crate) fn render(shared: &Shared, out: &mut String) {
    header(out, "edri_uptime_seconds", "gauge", "Seconds since the router started.");
    let _ = writeln!(out, "edri_uptime_seconds {}", shared.started.elapsed().as_secs_f64());

    header(
        out,
        "edri_events_delivered_total",
        "counter",
        "Events handled, by event type (a notification counts once per subscribing handler).",
    );
    let mut delivered: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for m in shared.managers.iter() {
        for (h, stats) in m.descriptor.handlers.iter().zip(m.handler_stats.iter()) {
            *delivered.entry((h.event.name, h.event.kind.as_str())).or_default() +=
                stats.handled.load(Ordering::Relaxed);
        }
    }
    for ((event, kind), n) in delivered {
        let _ = writeln!(
            out,
            "edri_events_delivered_total{{event=\"{}\",kind=\"{kind}\"}} {n}",
            label(event)
        );
    }

    header(out, "edri_events_handled_total", "counter", "Events handled, by handler.");
    for_each_handler(shared, |labels, stats| {
        let _ = writeln!(
            out,
            "edri_events_handled_total{{{labels}}} {}",
            stats.handled.load(Ordering::Relaxed)
        );
    });
    header(
        out,
        "edri_handler_duration_seconds",
        "histogram",
        "Time from the start of a handler call to its answer (thread and process calls: from the moment a worker slot is free).",
    );
    for_each_handler(shared, |labels, stats| {
        let mut cumulative = 0;
        for (i, count) in stats.buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS.get(i).map_or_else(|| "+Inf".to_owned(), ToString::to_string);
            let _ = writeln!(
                out,
                "edri_handler_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = Duration::from_nanos(stats.sum_ns.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "edri_handler_duration_seconds_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "edri_handler_duration_seconds_count{{{labels}}} {cumulative}");
    });

    let vitals = shared.vitals();
    let gauges: [Gauge; 9] = [
        ("edri_mailbox_depth", "gauge", "Events waiting in the manager's mailbox.", |v| {
            v.queued as u64
        }),
        ("edri_mailbox_capacity", "gauge", "The manager's mailbox capacity.", |v| {
            v.capacity as u64
        }),
        ("edri_manager_busy", "gauge", "1 while the manager handles an event.", |v| {
            u64::from(v.busy)
        }),
        ("edri_handler_failures_total", "counter", "Handler calls that returned an error.", |v| {
            v.failed
        }),
        (
            "edri_handler_panics_total",
            "counter",
            "Handler calls that panicked or whose worker died.",
            |v| v.crashed,
        ),
        (
            "edri_events_dropped_total",
            "counter",
            "Events dropped unhandled from the manager's mailbox when the router stopped.",
            |v| v.dropped,
        ),
        (
            "edri_workers",
            "gauge",
            "Live worker processes of the manager's process handlers.",
            |v| v.workers as u64,
        ),
        ("edri_workers_idle", "gauge", "Worker processes waiting for a call.", |v| {
            v.workers_idle as u64
        }),
        (
            "edri_thread_calls_refused_total",
            "counter",
            "Thread-handler calls refused because no thread could be started.",
            |v| v.threads_refused,
        ),
    ];
    for (name, kind, help, get) in gauges {
        header(out, name, kind, help);
        for v in &vitals {
            let _ = writeln!(out, "{name}{{manager=\"{}\"}} {}", label(&v.name), get(v));
        }
    }
    crate::mode::process::render_kills(shared, out);
    header(out, "edri_events_sent_total", "counter", "Events sent, by event and sender.");
    for (id, route) in &shared.routes {
        for (from, total, _) in crate::router::senders::of(shared, *id, route) {
            let (event, from) = (label(route.event.name), label(&from));
            let _ = writeln!(
                out,
                "edri_events_sent_total{{event=\"{event}\",from=\"{from}\"}} {total}"
            );
        }
    }

    for attachment in shared.attachments.iter().filter_map(std::sync::Weak::upgrade) {
        attachment.render_metrics(out);
    }
    if let Some(registry) = &shared.user_metrics
        && let Err(e) = prometheus_client::encoding::text::encode_registry(out, registry)
    {
        tracing::warn!(error = %e, "cannot render the application's metrics");
    }
}

/// A per-manager series: name, type, help, and how to read it off the vitals.
type Gauge = (&'static str, &'static str, &'static str, fn(&crate::ManagerVitals) -> u64);

fn for_each_handler(shared: &Shared, mut f: impl FnMut(&str, &HandlerStats)) {
    for m in shared.managers.iter() {
        for (h, stats) in m.descriptor.handlers.iter().zip(m.handler_stats.iter()) {
            let labels = format!(
                "manager=\"{}\",event=\"{}\",method=\"{}\",mode=\"{}\"",
                label(m.descriptor.name),
                label(h.event.name),
                label(h.method),
                h.mode.as_str()
            );
            f(&labels, stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_labels() {
        let s = HandlerStats::default();
        s.record(Duration::from_nanos(500));
        s.record(Duration::from_millis(3));
        s.record(Duration::from_secs(60));
        assert_eq!(s.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(s.buckets[6].load(Ordering::Relaxed), 1);
        assert_eq!(s.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(s.handled.load(Ordering::Relaxed), 3);
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
