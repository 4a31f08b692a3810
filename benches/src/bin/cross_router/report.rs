//! The ratios of a transport to its twin, against the targets.

use super::*;

/// The targets of a transport against its twin: the most `request_seq`'s p50 may be over the
/// twin's, the least `request_64`'s rate may be of the twin's, and for notifications either a
/// rate (`Rate`) or a ratio to the twin's (`Ratio`).
pub(crate) struct Targets {
    pub(crate) p50: f64,
    pub(crate) request_64: f64,
    pub(crate) notify: NotifyTarget,
}

pub(crate) enum NotifyTarget {
    Rate(f64),
    Ratio(f64),
}

/// Each NATS run against the raw run of the same rank (issue targets in `BENCH.md`), each
/// switch run against the relay run of the same rank.
pub(crate) fn summarize(outcomes: &[Outcome]) {
    let nats = Targets { p50: 1.2, request_64: 0.9, notify: NotifyTarget::Rate(150e3) };
    compare(outcomes, Transport::Nats, Transport::Raw, &nats);
    let switch = Targets { p50: 1.3, request_64: 0.6, notify: NotifyTarget::Ratio(0.6) };
    compare(outcomes, Transport::Switch, Transport::Relay, &switch);
}

pub(crate) fn compare(
    outcomes: &[Outcome],
    subject: Transport,
    twin: Transport,
    targets: &Targets,
) {
    if outcomes.iter().all(|o| o.transport != subject)
        || outcomes.iter().all(|o| o.transport != twin)
    {
        return;
    }
    let notify = match targets.notify {
        NotifyTarget::Rate(rate) => format!("notify lossless >= {:.0} k/s", rate / 1e3),
        NotifyTarget::Ratio(ratio) => format!("notify lossless >= {ratio} x {}", twin.name()),
    };
    println!(
        "ratios {} / {} (targets: {notify}; request_seq p50 <= {} x {}; request_64 >= {} x {})",
        subject.name(),
        twin.name(),
        targets.p50,
        twin.name(),
        targets.request_64,
        twin.name(),
    );
    let runs = |t: Transport| {
        let mut runs: Vec<Vec<&Outcome>> = Vec::new();
        for o in outcomes.iter().filter(|o| o.transport == t) {
            match runs.last_mut() {
                Some(run) if run.iter().all(|r| r.workload != o.workload) => run.push(o),
                _ => runs.push(vec![o]),
            }
        }
        runs
    };
    for (rank, (ours, theirs)) in runs(subject).iter().zip(runs(twin)).enumerate() {
        for n in ours {
            let Some(r) = theirs.iter().find(|r| r.workload == n.workload) else { continue };
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let verdict = |met: bool| if met { "met" } else { "MISSED" };
            let line = match n.workload {
                "request_seq" => {
                    let ratio = us(n.p50) / us(r.p50).max(1e-9);
                    format!(
                        "p50 {:.1} / {:.1} µs = {ratio:.2} ({}), p99 {:.1} / {:.1} µs = {:.2}",
                        us(n.p50),
                        us(r.p50),
                        verdict(ratio <= targets.p50 && n.ok),
                        us(n.p99),
                        us(r.p99),
                        us(n.p99) / us(r.p99).max(1e-9),
                    )
                }
                workload => {
                    let ratio = n.rate / r.rate.max(1e-9);
                    let met = match (workload, &targets.notify) {
                        ("request_64", _) => ratio >= targets.request_64,
                        (_, NotifyTarget::Rate(rate)) => n.rate >= *rate,
                        (_, NotifyTarget::Ratio(least)) => ratio >= *least,
                    };
                    format!(
                        "{:.1} / {:.1} k/s = {ratio:.2} ({}{})",
                        n.rate / 1e3,
                        r.rate / 1e3,
                        verdict(met && n.ok),
                        if n.ok { "" } else { ", not lossless / failures" },
                    )
                }
            };
            let cpu = if n.cpu_us.is_finite() && r.cpu_us.is_finite() {
                let ratio = n.cpu_us / r.cpu_us.max(1e-9);
                format!("; cpu/op {:.2} / {:.2} µs = {ratio:.2}", n.cpu_us, r.cpu_us)
            } else {
                String::new()
            };
            println!("  pair {}: {:<14} {line}{cpu}", rank + 1, n.workload);
        }
    }
}
