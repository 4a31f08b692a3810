//! [`Running`]: a started router, its status, and its graceful shutdown.

use super::StopSignals;
use super::attach::{Attachment, Stage};
use crate::Ctx;
use crate::builtin::Stopping;
use crate::ctx::Origin;
use crate::envelope::Envelope;
use crate::error::Error;
use crate::manager::ManagerVitals;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long `shutdown` waits for an aborted manager's task to end, after the grace period.
const ABORT_WAIT: Duration = Duration::from_secs(2);

/// A running router: its [`Ctx`] and the way to stop it.
///
/// # Examples
///
/// A router embedded in a test, or in a program that stops it itself:
///
/// ```rust,standalone_crate
/// use edri::prelude::*;
///
/// #[event(request)]
/// pub struct Double { pub n: u64, #[response] pub doubled: u64 }
///
/// #[derive(Default)]
/// pub struct Doubler;
///
/// #[manager]
/// impl Doubler {
///     #[solve]
///     fn double(&mut self, ev: &Double) -> DoubleResponse {
///         DoubleResponse { doubled: ev.n * 2 }
///     }
/// }
///
/// #[edri::main(tracing = false)]
/// async fn main() -> edri::Result<()> {
///     let running = Edri::builder().start().await?;
///     assert_eq!(running.ctx().request(Double { n: 21 }).await?.doubled, 42);
///     assert!(running.managers().contains(&"Doubler"));
///     for vitals in running.vitals() {
///         println!("{}: {} processed, {} queued", vitals.name, vitals.processed, vitals.queued);
///     }
///     // Or run until Ctrl-C, SIGTERM or `ctx.shutdown()`:
///     // running.wait_for_stop_signal().await;
///     running.shutdown().await
/// }
/// ```
#[must_use = "dropping a `Running` stops its managers abruptly; call `.shutdown().await`"]
pub struct Running {
    ctx: Ctx,
    tasks: Vec<JoinHandle<()>>,
    grace: Duration,
    stopped: bool,
    attachments: Vec<Arc<dyn Attachment>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("managers", &self.managers()).finish_non_exhaustive()
    }
}

impl Running {
    pub(super) fn new(
        ctx: Ctx,
        tasks: Vec<JoinHandle<()>>,
        grace: Duration,
        attachments: Vec<Arc<dyn Attachment>>,
    ) -> Self {
        Self { ctx, tasks, grace, stopped: false, attachments }
    }

    /// A context for code outside any manager: notify, request, … from a test or `main`.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The names of the running managers, sorted.
    pub fn managers(&self) -> Vec<&'static str> {
        self.ctx.shared().managers.iter().map(|m| m.descriptor.name).collect()
    }

    /// A snapshot of every manager's counters (what `HealthCheck` answers).
    pub fn vitals(&self) -> Vec<ManagerVitals> {
        self.ctx.shared().vitals()
    }

    /// The pids of the live process-mode workers, of every manager.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.ctx
            .shared()
            .managers
            .iter()
            .flat_map(|m| m.pools.iter().flatten())
            .flat_map(|p| p.pids())
            .collect()
    }

    /// The router's metrics in the Prometheus text format: what the API broker serves at
    /// `GET /metrics`, with the lines of every attachment (broker, switch). Counting is on with
    /// the API broker or [`EdriBuilder::metrics`](super::EdriBuilder::metrics); otherwise the counters stay at zero.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        crate::metrics::render(self.ctx.shared(), &mut out);
        out
    }

    /// What runs in this router and who it is joined to: managers with their live counters
    /// and handlers, the events they handle, the other routers. What `GET /edri/topology`
    /// serves.
    pub fn topology(&self) -> crate::Topology {
        super::topology::snapshot(self.ctx.shared())
    }

    /// The attachment of type `A`, if this router has one.
    #[cfg_attr(
        not(any(feature = "api", feature = "switch", feature = "nats")),
        expect(dead_code, reason = "only the API broker and the transports are attachments")
    )]
    pub(crate) fn attachment<A: Attachment>(&self) -> Option<&A> {
        self.attachments.iter().find_map(|a| a.as_any().downcast_ref::<A>())
    }

    /// Resolves on Ctrl-C, SIGTERM or [`Ctx::shutdown`].
    ///
    /// The signals are listened to from the first poll of this future on.
    pub async fn wait_for_stop_signal(&self) {
        self.wait(StopSignals::listen()).await;
    }

    pub(super) async fn wait(&self, signals: StopSignals) {
        let requested = self.ctx.shared().shutdown_requested.notified();
        tokio::select! {
            () = requested => {}
            () = signals.recv() => {}
        }
    }

    /// Stops gracefully: sends [`Stopping`], waits (at most the grace period) until the
    /// router is quiescent — every mailbox empty and no handler running, so events that
    /// handlers send while draining are still delivered — then stops each manager. Later sends
    /// fail with `Unavailable`.
    ///
    /// Every send that began after the router stopped taking events gets `Unavailable`; an
    /// event accepted before is handled, or — if the grace period ran out first — dropped,
    /// counted ([`ManagerVitals::dropped`], [`ShutdownReport::dropped`]) and logged with the
    /// count. [`shutdown_report`](Self::shutdown_report) tells what happened.
    ///
    /// Process-mode workers still busy when the grace period ends are killed (counted in
    /// `edri_workers_killed_total{reason="shutdown"}`, their requesters get `Unavailable`);
    /// it returns once every worker process is reaped.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for reporting workers that had to be killed.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.shutdown_report().await;
        Ok(())
    }

    /// [`shutdown`](Self::shutdown), telling whether the router drained within the grace
    /// period and what was dropped.
    pub async fn shutdown_report(mut self) -> ShutdownReport {
        let drained = self.stop().await;
        let vitals = self.ctx.shared().vitals();
        let dropped = vitals.iter().map(|v| v.dropped).sum();
        ShutdownReport { drained, dropped, vitals }
    }

    /// Stops; whether everything drained within the grace period.
    async fn stop(&mut self) -> bool {
        if std::mem::replace(&mut self.stopped, true) {
            return true;
        }
        let shared = self.ctx.shared().clone();
        let deadline = tokio::time::Instant::now() + self.grace;
        // From now on code outside managers is refused; handlers still send while draining.
        shared.draining.store(true, Ordering::Release);
        // Intake first (the API): no new outside requests, the ones in flight are answered.
        for intake in self.attachments.iter().filter(|a| a.stage() == Stage::Intake) {
            if tokio::time::timeout_at(deadline, intake.drain(deadline)).await.is_err() {
                tracing::warn!("outside requests still running at the end of the grace period");
                intake.abort();
            }
        }
        let links: Vec<_> =
            self.attachments.iter().filter(|a| a.stage() == Stage::Link).cloned().collect();
        let drain = async {
            Ctx::new(shared.clone(), Origin::Router).notify(Stopping).await.ok();
            shared.quiescent().await;
            // Other routers acknowledge what was sent to them; then this router leaves, and
            // whatever they delivered meanwhile is handled too.
            if !links.is_empty() {
                for link in &links {
                    link.drain(deadline).await;
                }
                shared.quiescent().await;
            }
            shared.stopping.store(true, Ordering::Release);
            for m in shared.managers.iter() {
                m.mailbox.send(Envelope::stop()).await.ok();
            }
            for task in &mut self.tasks {
                task.await.ok();
            }
        };
        let drained = tokio::time::timeout_at(deadline, drain).await.is_ok();
        if !drained {
            shared.stopping.store(true, Ordering::Release);
            for link in &links {
                link.abort();
            }
            tracing::warn!(grace = ?self.grace, "the router did not drain within the grace period; stopping managers now");
            for task in &self.tasks {
                task.abort();
            }
            // An aborted manager's mailbox closes and counts what it held when its task is
            // dropped: wait for that (a handler that never yields keeps its task, and is named).
            let tasks = self.tasks.iter_mut().zip(shared.managers.iter());
            for (task, m) in tasks.filter(|(task, _)| !task.is_finished()) {
                if tokio::time::timeout(ABORT_WAIT, task).await.is_err() {
                    tracing::error!(
                        manager = m.descriptor.name,
                        "manager did not stop: one of its handlers blocks its thread"
                    );
                }
            }
        }
        let dropped: u64 =
            shared.managers.iter().map(|m| m.stats.dropped_count() + m.mailbox.lost()).sum();
        if dropped > 0 {
            tracing::warn!(dropped, "events were dropped unhandled at shutdown");
        }
        // Idle workers exit, busy ones (only left when the grace period ran out) are killed;
        // every one is reaped before this returns.
        crate::mode::process::shutdown(&shared).await;
        tracing::info!("edri router stopped");
        drained
    }
}

/// What [`Running::shutdown_report`] found.
///
/// # Examples
///
/// ```
/// async fn stop(running: edri::Running) {
///     let report = running.shutdown_report().await;
///     if !report.drained {
///         eprintln!("{} events dropped at shutdown", report.dropped);
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether every mailbox drained and every handler returned within the grace period.
    pub drained: bool,
    /// Events dropped unhandled from mailboxes when the grace period ran out.
    pub dropped: u64,
    /// Every manager's final counters.
    pub vitals: Vec<ManagerVitals>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.stopped {
            self.ctx.shared().stopping.store(true, Ordering::Release);
            for attachment in &self.attachments {
                attachment.abort();
            }
            for task in &self.tasks {
                task.abort();
            }
        }
    }
}
