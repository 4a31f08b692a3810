//! The scheduler: jobs that send an event at a time, after a delay, every interval, or on a
//! cron expression (feature `cron`, on by default). An ordinary manager (`edri.scheduler`)
//! that every router runs, reached by events ([`Schedule`], [`Update`], [`Cancel`],
//! [`ListJobs`]: every one answers), so any manager, worker or remote router can use it;
//! `ctx.schedule(job)` / `ctx.cancel(name)` and `Edri::builder().job(job)` are shorthands.
//!
//! # Examples
//!
//! ```no_run
//! use edri::prelude::*;
//! use edri::Job;
//! use std::time::Duration;
//!
//! #[event(notification)]
//! #[derive(Default)]
//! pub struct Refresh;
//!
//! #[event(request)]
//! #[derive(Default)]
//! pub struct Backup { pub full: bool }
//!
//! #[edri::main]
//! async fn main() -> edri::Result<()> {
//!     Edri::builder()
//!         .job(Job::every(Duration::from_secs(60), Refresh).named("refresh"))
//!         .job(Job::cron("0 0 3 * * *", Backup { full: true }).named("nightly-backup"))
//!         .run()
//!         .await
//! }
//! ```
//!
//! A job keeps its event serialized; each firing sends a fresh event decoded from it (a
//! notification is delivered to every subscriber, a request to its responder, whose answer is
//! only logged when it is a failure). Jobs are kept in the router's store, so they survive a
//! restart when the store is durable (`Store::durable`).
//!
//! **Timers and misfires.**
//! - `every(d)` uses the monotonic clock: ticks at `start + k·d`. Ticks missed while the router
//!   was busy are not replayed: the job fires once, then resumes on the schedule. After a
//!   restart the interval starts anew.
//! - `after(d)` is turned into `at(now + d)` when scheduled, so a restart does not restart it.
//! - `at(t)` and `cron(..)` use the wall clock, re-read at least every second, so a clock
//!   change is noticed within a second. An `at` job whose time passed while the process was
//!   down fires once when it is loaded; cron occurrences missed while down are skipped, and the
//!   job goes on from the next occurrence after now.
//! - One-shot jobs (`at`, `after`) are removed once they fired.
//!
//! **Without the `cron` feature** [`Job::cron`] is absent; [`Trigger::Cron`] stays (jobs are
//! data that other routers and the store hold), and a router built without the feature refuses
//! such a job as `Invalid`, saying so.

use crate::registry::EventRegistration;
use crate::{Ctx, Event, Failure};
use edri_macros::{event, manager, solve};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms)
}

/// The store keys under which jobs are kept.
const PREFIX: &str = "edri.scheduler/jobs/";

/// When a job fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// Once, at this wall-clock time (milliseconds since the Unix epoch).
    At {
        /// When.
        unix_ms: u64,
    },
    /// Once, this long after it was scheduled (stored as `At`).
    After {
        /// The delay in milliseconds.
        ms: u64,
    },
    /// Repeatedly, this often (monotonic clock).
    Every {
        /// The interval in milliseconds (at least 1).
        ms: u64,
    },
    /// On a cron expression, with optional seconds field (`"*/5 * * * * *"`), in UTC. Runs
    /// only on a router built with the `cron` feature (elsewhere the job is `Invalid`).
    Cron {
        /// The expression.
        expr: String,
    },
}

/// A named job: a trigger and the (serialized) event it sends.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::Job;
/// use std::time::{Duration, SystemTime};
/// # #[event(notification)] pub struct Remind { pub note: String }
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// let tea = Job::after(Duration::from_secs(240), Remind { note: "tea".into() }).named("tea");
/// tea.validate()?; // what `schedule` checks: a declared event, a valid trigger
/// ctx.schedule(tea).await?;
/// let noon = SystemTime::now() + Duration::from_secs(3600);
/// ctx.schedule(Job::at(noon, Remind { note: "lunch".into() }).named("lunch")).await?;
/// ctx.schedule(Job::cron("*/5 * * * *", Remind { note: "stretch".into() })).await?;
/// ctx.cancel("tea").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job's name, unique in a router (default: the event's name).
    pub name: String,
    /// When it fires.
    pub trigger: Trigger,
    /// The event's name.
    pub event: String,
    /// The event's postcard bytes; a fresh event is decoded from them at each firing.
    pub payload: Vec<u8>,
    /// Why the job cannot run, found when it was built (reported when it is scheduled).
    #[serde(skip)]
    invalid: Option<String>,
}

impl Job {
    fn of<E: Event>(trigger: Trigger, event: &E) -> Self {
        let (payload, invalid) = match crate::ctx::encode(event) {
            Ok(bytes) => (bytes, None),
            Err(failure) => (Vec::new(), Some(failure.message().to_owned())),
        };
        Self {
            name: E::META.name.to_owned(),
            trigger,
            event: E::META.name.to_owned(),
            payload,
            invalid,
        }
    }

    /// Sends `event` once at `when`.
    pub fn at<E: Event>(when: SystemTime, event: E) -> Self {
        let unix_ms = when.duration_since(UNIX_EPOCH).map_or(0, ms);
        Self::of(Trigger::At { unix_ms }, &event)
    }

    /// Sends `event` once, `delay` after it is scheduled.
    pub fn after<E: Event>(delay: Duration, event: E) -> Self {
        Self::of(Trigger::After { ms: ms(delay) }, &event)
    }

    /// Sends `event` every `interval` (which must not be zero).
    pub fn every<E: Event>(interval: Duration, event: E) -> Self {
        Self::of(Trigger::Every { ms: ms(interval) }, &event)
    }

    /// Sends `event` at every occurrence of a cron expression (UTC; a leading seconds field
    /// is optional: `"0 */5 * * * *"` or `"*/5 * * * *"`).
    #[cfg(feature = "cron")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cron")))]
    pub fn cron<E: Event>(expr: &str, event: E) -> Self {
        Self::of(Trigger::Cron { expr: expr.to_owned() }, &event)
    }

    /// Names the job (default: the event's name).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Whether the job can run here: its event is declared in this binary (a notification or a
    /// request), its trigger is
    /// valid (a cron expression parses, an interval is not zero) and its event serialized.
    ///
    /// # Errors
    /// `Invalid`, saying what is wrong.
    pub fn validate(&self) -> Result<(), Failure> {
        if let Some(why) = &self.invalid {
            return Err(Failure::invalid(format!("job `{}`: {why}", self.name)));
        }
        if self.name.is_empty() {
            return Err(Failure::invalid("a job needs a name"));
        }
        if registration(&self.event)?.meta.kind == crate::EventKind::Tunnel {
            return Err(Failure::invalid(format!(
                "job `{}`: `{}` is a tunnel; a job sends notifications and requests",
                self.name, self.event
            )));
        }
        match &self.trigger {
            Trigger::Cron { expr } => parse_cron(expr).map(drop),
            Trigger::Every { ms: 0 } => Err(Failure::invalid(format!(
                "job `{}`: an interval must be longer than zero",
                self.name
            ))),
            _ => Ok(()),
        }
    }
}

/// The first firing of a trigger (wall clock, ms since the Unix epoch).
fn first_run(trigger: &Trigger) -> Option<u64> {
    match trigger {
        Trigger::At { unix_ms } => Some((*unix_ms).max(1)),
        Trigger::After { ms } | Trigger::Every { ms } => Some(now_ms().saturating_add(*ms)),
        Trigger::Cron { expr } => parse_cron(expr).ok().as_ref().and_then(next_cron),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(feature = "cron")]
fn parse_cron(expr: &str) -> Result<croner::Cron, Failure> {
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| Failure::invalid(format!("cron expression `{expr}`: {e}")))
}

/// The next wall-clock time (ms) a cron expression fires after now.
#[cfg(feature = "cron")]
fn next_cron(cron: &croner::Cron) -> Option<u64> {
    let next = cron.find_next_occurrence(&chrono::Utc::now(), false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

/// A build without the `cron` feature reads no cron expression: a job that has one (from
/// another router, or kept in the store by a build with the feature) is refused.
#[cfg(not(feature = "cron"))]
fn parse_cron(expr: &str) -> Result<std::convert::Infallible, Failure> {
    Err(Failure::invalid(format!(
        "cron expression `{expr}`: this router was built without the `cron` feature of edri"
    )))
}

#[cfg(not(feature = "cron"))]
fn next_cron(cron: &std::convert::Infallible) -> Option<u64> {
    match *cron {}
}

/// One job as `ListJobs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job's name.
    pub name: String,
    /// The event it sends.
    pub event: String,
    /// When it fires.
    pub trigger: Trigger,
    /// The next firing (wall clock, ms since the Unix epoch), if any.
    pub next_run_ms: Option<u64>,
    /// How often it fired since it was (re)scheduled in this process.
    pub fired: u64,
}

/// Adds a job; `Conflict` when a job has that name, `Invalid` for an unknown event or a bad
/// trigger.
#[event(request, name = "edri.scheduler.Schedule", crate = crate)]
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The job.
    pub job: Job,
    /// Its first firing (wall clock, ms since the Unix epoch).
    #[response]
    pub next_run_ms: Option<u64>,
}

/// Replaces the trigger and event of the job with the same name; `NotFound` when none.
#[event(request, name = "edri.scheduler.Update", crate = crate)]
#[derive(Debug, Clone)]
pub struct Update {
    /// The job, under its existing name.
    pub job: Job,
    /// Its next firing.
    #[response]
    pub next_run_ms: Option<u64>,
}

/// Removes a job; `NotFound` when none has that name.
#[event(request, name = "edri.scheduler.Cancel", crate = crate)]
#[derive(Debug, Clone)]
pub struct Cancel {
    /// The job's name.
    pub name: String,
}

/// Lists the jobs, by name.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::scheduler::ListJobs;
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// for job in ctx.request(ListJobs::default()).await?.jobs {
///     println!("{} sends {} ({:?}), fired {} times", job.name, job.event, job.trigger, job.fired);
/// }
/// # Ok(()) }
/// ```
#[event(request, name = "edri.scheduler.ListJobs", crate = crate)]
#[derive(Debug, Clone, Default)]
pub struct ListJobs {
    /// The jobs.
    #[response]
    pub jobs: Vec<JobInfo>,
}

/// What a running job shares with the manager.
#[derive(Debug, Default)]
struct Progress {
    next_run_ms: AtomicU64,
    fired: AtomicU64,
}

struct Active {
    job: Job,
    progress: Arc<Progress>,
    driver: tokio::task::JoinHandle<()>,
}

/// The manager behind the scheduler; every router runs one (leave it out with
/// `.without::<SchedulerManager>()`).
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> edri::Result<()> {
/// let running = edri::Edri::builder().without::<edri::SchedulerManager>().start().await?;
/// # Ok(()) }
/// ```
pub struct SchedulerManager {
    initial: Vec<Job>,
    jobs: BTreeMap<String, Active>,
}

impl SchedulerManager {
    pub(crate) fn new(initial: Vec<Job>) -> Self {
        Self { initial, jobs: BTreeMap::new() }
    }

    /// Checks a job, turns `after` into `at`, and starts its driver.
    fn activate(&mut self, ctx: &Ctx, mut job: Job) -> Result<Option<u64>, Failure> {
        job.validate()?;
        let registration = registration(&job.event)?;
        if let Trigger::After { ms } = job.trigger {
            job.trigger = Trigger::At { unix_ms: now_ms().saturating_add(ms) };
        }
        let next = first_run(&job.trigger);
        let progress = Arc::new(Progress::default());
        progress.next_run_ms.store(next.unwrap_or(0), Ordering::Release);
        let driver = ctx.spawn(drive(ctx.clone(), job.clone(), registration, progress.clone()));
        if let Some(old) = self.jobs.insert(job.name.clone(), Active { job, progress, driver }) {
            old.driver.abort();
        }
        Ok(next)
    }
}

fn next_of(progress: &Progress) -> Option<u64> {
    Some(progress.next_run_ms.load(Ordering::Acquire)).filter(|&t| t != 0)
}

fn registration(event: &str) -> Result<&'static EventRegistration, Failure> {
    crate::registry::event(event)
        .ok_or_else(|| Failure::invalid(format!("no event named `{event}` in this binary")))
}

/// Runs one job until it is done (one-shots) or cancelled (its task is aborted).
async fn drive(
    ctx: Ctx,
    job: Job,
    registration: &'static EventRegistration,
    progress: Arc<Progress>,
) {
    match &job.trigger {
        Trigger::Every { ms } => {
            let period = Duration::from_millis((*ms).max(1));
            let mut next = tokio::time::Instant::now() + period;
            loop {
                progress.next_run_ms.store(now_ms() + ms_until(next), Ordering::Release);
                tokio::time::sleep_until(next).await;
                fire(&ctx, &job, registration, &progress).await;
                next += period;
                let now = tokio::time::Instant::now();
                if next <= now {
                    // Missed ticks are not replayed: go on at the next tick after now.
                    let behind = now - next;
                    next += period
                        * (u32::try_from(behind.as_millis() / period.as_millis().max(1))
                            .unwrap_or(u32::MAX)
                            + 1);
                }
            }
        }
        Trigger::At { unix_ms } => {
            progress.next_run_ms.store((*unix_ms).max(1), Ordering::Release);
            wait_wall(*unix_ms).await;
            fire(&ctx, &job, registration, &progress).await;
            progress.next_run_ms.store(0, Ordering::Release);
            ctx.store().delete(&format!("{PREFIX}{}", job.name)).await.ok();
        }
        Trigger::After { .. } => unreachable!("`after` jobs are turned into `at` jobs"),
        Trigger::Cron { expr } => {
            let Ok(cron) = parse_cron(expr) else { return };
            while let Some(next) = next_cron(&cron) {
                progress.next_run_ms.store(next, Ordering::Release);
                wait_wall(next).await;
                fire(&ctx, &job, registration, &progress).await;
            }
        }
    }
}

fn ms_until(t: tokio::time::Instant) -> u64 {
    ms(t.saturating_duration_since(tokio::time::Instant::now()))
}

/// Sleeps until a wall-clock time, re-reading the clock at least every second.
async fn wait_wall(unix_ms: u64) {
    loop {
        let now = now_ms();
        if now >= unix_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis((unix_ms - now).min(1_000))).await;
    }
}

async fn fire(ctx: &Ctx, job: &Job, registration: &'static EventRegistration, progress: &Progress) {
    progress.fired.fetch_add(1, Ordering::Relaxed);
    let payload = &job.payload;
    let result = match registration.meta.kind {
        crate::EventKind::Request => {
            (registration.request_bytes)(ctx.clone(), payload, crate::router::DEFAULT_TIMEOUT)
                .await
                .map(drop)
        }
        _ => (registration.notify_bytes)(ctx.clone(), payload, None).await,
    };
    if let Err(failure) = result {
        tracing::warn!(job = job.name, event = job.event, %failure, "scheduled event failed");
    }
}

#[manager(manual, name = "edri.scheduler", crate = crate)]
impl SchedulerManager {
    /// Loads the kept jobs, then the builder's (which replace kept ones of the same name).
    #[solve]
    async fn started(&mut self, _: &crate::Started, ctx: &Ctx) {
        let kept: Vec<(String, Job)> = ctx.store().list(PREFIX).await.unwrap_or_else(|failure| {
            tracing::warn!(%failure, "cannot read the kept jobs");
            Vec::new()
        });
        let initial = std::mem::take(&mut self.initial);
        let builder_names: Vec<String> = initial.iter().map(|j| j.name.clone()).collect();
        for (_, job) in kept.into_iter().filter(|(_, j)| !builder_names.contains(&j.name)) {
            if let Err(failure) = self.activate(ctx, job) {
                tracing::warn!(%failure, "a kept job cannot run");
            }
        }
        for job in initial {
            let name = job.name.clone();
            match self.activate(ctx, job) {
                Ok(_) => keep(ctx, &self.jobs[&name].job).await,
                Err(failure) => {
                    tracing::error!(job = name, %failure, "a job given to the builder cannot run")
                }
            }
        }
    }

    #[solve]
    async fn schedule(&mut self, ev: Schedule, ctx: &Ctx) -> Result<ScheduleResponse, Failure> {
        if self.jobs.contains_key(&ev.job.name) {
            return Err(Failure::conflict(format!("a job named `{}` exists", ev.job.name)));
        }
        let name = ev.job.name.clone();
        let next_run_ms = self.activate(ctx, ev.job)?;
        keep(ctx, &self.jobs[&name].job).await;
        Ok(ScheduleResponse { next_run_ms })
    }

    #[solve]
    async fn update(&mut self, ev: Update, ctx: &Ctx) -> Result<UpdateResponse, Failure> {
        if !self.jobs.contains_key(&ev.job.name) {
            return Err(Failure::not_found(format!("no job named `{}`", ev.job.name)));
        }
        let name = ev.job.name.clone();
        let next_run_ms = self.activate(ctx, ev.job)?;
        keep(ctx, &self.jobs[&name].job).await;
        Ok(UpdateResponse { next_run_ms })
    }

    #[solve]
    async fn cancel(&mut self, ev: &Cancel, ctx: &Ctx) -> Result<CancelResponse, Failure> {
        let active = self
            .jobs
            .remove(&ev.name)
            .ok_or_else(|| Failure::not_found(format!("no job named `{}`", ev.name)))?;
        active.driver.abort();
        ctx.store().delete(&format!("{PREFIX}{}", ev.name)).await?;
        Ok(CancelResponse)
    }

    #[solve]
    fn list(&self, _: &ListJobs) -> ListJobsResponse {
        ListJobsResponse {
            jobs: self
                .jobs
                .values()
                .map(|a| JobInfo {
                    name: a.job.name.clone(),
                    event: a.job.event.clone(),
                    trigger: a.job.trigger.clone(),
                    next_run_ms: next_of(&a.progress),
                    fired: a.progress.fired.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

/// Keeps a job in the store (durable when the store is).
async fn keep(ctx: &Ctx, job: &Job) {
    if let Err(failure) = ctx.store().set(&format!("{PREFIX}{}", job.name), job).await {
        tracing::warn!(job = job.name, %failure, "cannot keep the job in the store");
    }
}

impl Ctx {
    /// Schedules a job (the [`Schedule`] request): its first firing time.
    ///
    /// # Errors
    /// `Conflict` for a duplicate name, `Invalid` for a bad job, or the request's failures.
    pub async fn schedule(&self, job: Job) -> Result<Option<u64>, Failure> {
        Ok(self.request(Schedule { job }).await?.next_run_ms)
    }

    /// Cancels the job named `name` (the [`Cancel`] request).
    ///
    /// # Errors
    /// `NotFound` when there is none, or the request's failures.
    pub async fn cancel(&self, name: &str) -> Result<(), Failure> {
        self.request(Cancel { name: name.to_owned() }).await.map(drop)
    }
}
