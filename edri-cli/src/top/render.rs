//! One frame of `edri top`, as plain text.

use super::model::{Event, Snapshot};
use crate::table;
use std::fmt::Write as _;

/// What a frame shows.
pub(crate) struct View<'a> {
    /// The router's address, as given.
    pub(crate) addr: &'a str,
    /// The latest poll.
    pub(crate) now: &'a Snapshot,
    /// The poll before, for rates.
    pub(crate) before: Option<&'a Snapshot>,
    /// Why the latest poll failed, when it did (the frame shows the last good one).
    pub(crate) error: Option<&'a str>,
    /// Whether it is the live view (it says how to quit).
    pub(crate) live: bool,
}

/// The frame's text.
pub(crate) fn frame(view: &View<'_>) -> String {
    let t = &view.now.topology;
    let mut out = String::new();
    let quit = if view.live { "   (q or Ctrl-C quits)" } else { "" };
    let _ = writeln!(
        out,
        "edri top {}   pid {}   up {}   {} managers, {} events, {} routers{quit}",
        view.addr,
        t.pid,
        duration(t.uptime_ms / 1000),
        t.managers.len(),
        t.events.len(),
        t.routers.len(),
    );
    if let Some(error) = view.error {
        let _ = writeln!(out, "!! {error}");
    }
    out.push('\n');
    let managers: Vec<[String; 9]> = t
        .managers
        .iter()
        .map(|m| {
            let workers = if m.workers == 0 {
                "-".to_owned()
            } else {
                format!("{} ({} idle)", m.workers, m.workers_idle)
            };
            [
                m.name.clone(),
                m.queue.clone(),
                format!("{}/{}", m.depth, m.capacity),
                if m.busy { "busy" } else { "-" }.to_owned(),
                m.processed.to_string(),
                rate(view.now.manager_rate(m, view.before)),
                m.failed.to_string(),
                m.crashed.to_string(),
                workers,
            ]
        })
        .collect();
    let head = [
        "MANAGER",
        "QUEUE",
        "DEPTH",
        "BUSY",
        "PROCESSED",
        "RATE/s",
        "FAILED",
        "CRASHED",
        "WORKERS",
    ];
    out.push_str(&table::render(&head.map(str::to_owned), &managers));
    out.push('\n');
    let events: Vec<[String; 5]> = t
        .events
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.kind.clone(),
                rate(view.now.event_rate(e, view.before)),
                senders(e),
                e.handlers.join(", "),
            ]
        })
        .collect();
    let head = ["EVENT", "KIND", "RATE/s", "SENDERS (last minute)", "HANDLERS"];
    out.push_str(&table::render(&head.map(str::to_owned), &events));
    if !t.routers.is_empty() {
        out.push('\n');
        let routers: Vec<[String; 5]> = t
            .routers
            .iter()
            .map(|r| {
                [
                    r.id.clone(),
                    r.via.clone(),
                    if r.connected { "connected" } else { "away" }.to_owned(),
                    r.subscribes.len().to_string(),
                    r.responds.len().to_string(),
                ]
            })
            .collect();
        let head = ["ROUTER", "VIA", "STATE", "SUBSCRIBES", "RESPONDS"];
        out.push_str(&table::render(&head.map(str::to_owned), &routers));
    }
    out
}

/// `outside 12, Billing 3`: who sent the event in the last minute; `-` when not tracked.
fn senders(e: &Event) -> String {
    match &e.senders {
        None => "-".to_owned(),
        Some(senders) => {
            let busy: Vec<String> = senders
                .iter()
                .filter(|s| s.last_minute > 0)
                .map(|s| format!("{} {}", s.from, s.last_minute))
                .collect();
            if busy.is_empty() { "none".to_owned() } else { busy.join(", ") }
        }
    }
}

fn rate(rate: Option<f64>) -> String {
    rate.map_or("-".to_owned(), |r| format!("{r:.1}"))
}

/// `1h02m03s`, `4m05s`, `6s`.
fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Instant;

    #[test]
    fn a_frame_shows_managers_events_senders_and_routers() {
        let topology = json!({
            "pid": 42, "uptime_ms": 3_723_000,
            "managers": [{"name": "Notes", "queue": "fifo", "capacity": 1024, "depth": 3,
                          "busy": true, "processed": 12, "workers": 2, "workers_idle": 1}],
            "events": [{"name": "CreateNote", "kind": "request", "handlers": ["Notes::create"],
                        "senders": [{"from": "outside", "total": 9, "last_minute": 6}]},
                       {"name": "Tick", "kind": "notification", "handlers": []}],
            "routers": [{"via": "switch", "id": "pricing", "connected": true,
                         "subscribes": ["Tick"], "responds": []}]
        });
        let now =
            Snapshot { topology: serde_json::from_value(topology).unwrap(), at: Instant::now() };
        let text = frame(&View {
            addr: "127.0.0.1:1",
            now: &now,
            before: None,
            error: Some("boom"),
            live: true,
        });
        for expected in [
            "pid 42",
            "up 1h02m03s",
            "q or Ctrl-C",
            "!! boom",
            "Notes",
            "3/1024",
            "busy",
            "2 (1 idle)",
            "outside 6",
            "0.1",
            "Notes::create",
            "pricing",
            "connected",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from\n{text}");
        }
        let tick = text.lines().find(|l| l.starts_with("Tick")).unwrap();
        assert!(tick.contains(" - "), "{tick}");
    }
}
