//! Worker processes the router killed, and why: counted per handler, logged with the count,
//! and served as `edri_workers_killed_total{manager,method,reason}`.

use crate::router::Shared;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a worker process was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    /// Its call ran past the worker timeout.
    WorkerTimeout,
    /// The requester stopped waiting: its own deadline passed, or it dropped the request.
    CallerGone,
    /// The router stopped (grace period over) while the worker was busy, or it was idle and
    /// did not exit when its stdin closed.
    Shutdown,
    /// Its pipe broke but the process did not exit.
    Unresponsive,
    /// It did not start as a worker (no `Ready`, another protocol).
    BadStart,
}

impl Kill {
    const ALL: [Self; 5] =
        [Self::WorkerTimeout, Self::CallerGone, Self::Shutdown, Self::Unresponsive, Self::BadStart];

    /// The `reason` label.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::WorkerTimeout => "worker_timeout",
            Self::CallerGone => "caller_gone",
            Self::Shutdown => "shutdown",
            Self::Unresponsive => "unresponsive",
            Self::BadStart => "bad_start",
        }
    }
}

/// Kills of one handler's workers, by reason.
#[derive(Debug, Default)]
pub(crate) struct Kills([AtomicU64; Kill::ALL.len()]);

impl Kills {
    /// Counts one kill; the count for that reason so far.
    pub(crate) fn add(&self, why: Kill) -> u64 {
        self.0[why as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The count for `why`.
    pub(crate) fn get(&self, why: Kill) -> u64 {
        self.0[why as usize].load(Ordering::Relaxed)
    }
}

/// `edri_workers_killed_total`, one series per process handler and reason (zeros included,
/// so that a dashboard sees the series before the first kill).
pub(crate) fn render(shared: &Shared, out: &mut String) {
    let pools: Vec<_> = shared.managers.iter().flat_map(|m| m.pools.iter().flatten()).collect();
    if pools.is_empty() {
        return;
    }
    crate::metrics::header(
        out,
        "edri_workers_killed_total",
        "counter",
        "Worker processes killed by the router, by handler and reason.",
    );
    for pool in pools {
        let (manager, method) = pool.name();
        for why in Kill::ALL {
            let _ = writeln!(
                out,
                "edri_workers_killed_total{{manager=\"{}\",method=\"{}\",reason=\"{}\"}} {}",
                crate::metrics::label(manager),
                crate::metrics::label(method),
                why.as_str(),
                pool.kills().get(why)
            );
        }
    }
}
