#![allow(missing_docs)]
//! The built-in scheduler: jobs by interval, delay, time and cron; every request answers. Cron
//! jobs need the `cron` feature (without it they are refused), a durable store `durable`.

use edri::Job;
use edri::prelude::*;
use edri::scheduler::{ListJobs, Trigger, Update};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Beat {
    pub from: String,
}

/// Records every beat with the time it arrived.
pub struct Recorder {
    beats: Arc<Mutex<Vec<(String, Instant)>>>,
}

#[manager(manual)]
impl Recorder {
    #[solve]
    fn beat(&mut self, ev: Beat) {
        self.beats.lock().unwrap().push((ev.from, Instant::now()));
    }
}

type Beats = Arc<Mutex<Vec<(String, Instant)>>>;

async fn start_with(builder: edri::EdriBuilder) -> (edri::Running, Beats) {
    let beats: Beats = Arc::default();
    let running =
        builder.only_explicit().manager(Recorder { beats: beats.clone() }).start().await.unwrap();
    (running, beats)
}

fn count(beats: &Beats, from: &str) -> usize {
    beats.lock().unwrap().iter().filter(|(f, _)| f == from).count()
}

#[tokio::test]
async fn every_100ms_fires_5_times_in_550ms_and_stops_after_cancel() {
    let (running, beats) = start_with(Edri::builder()).await;
    let ctx = running.ctx();
    let job = Job::every(Duration::from_millis(100), Beat { from: "tick".into() }).named("tick");
    let next = ctx.schedule(job).await.unwrap();
    assert!(next.is_some());
    tokio::time::sleep(Duration::from_millis(550)).await;
    let fired = count(&beats, "tick");
    assert!((4..=6).contains(&fired), "fired {fired} times in 550 ms");
    ctx.cancel("tick").await.unwrap();
    let after_cancel = count(&beats, "tick");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&beats, "tick"), after_cancel, "a cancelled job fired");
    assert_eq!(ctx.cancel("tick").await.unwrap_err().status(), Status::NotFound);
    running.shutdown().await.unwrap();
}

#[cfg(feature = "cron")]
#[tokio::test]
async fn cron_every_second_fires() {
    let (running, beats) = start_with(Edri::builder()).await;
    running
        .ctx()
        .schedule(Job::cron("* * * * * *", Beat { from: "cron".into() }).named("cron"))
        .await
        .unwrap();
    for _ in 0..250 {
        if count(&beats, "cron") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        count(&beats, "cron") >= 2,
        "a per-second cron job fired {} times in 2.5 s",
        count(&beats, "cron")
    );
    let bad =
        running.ctx().schedule(Job::cron("not cron", Beat { from: "x".into() }).named("bad")).await;
    assert_eq!(bad.unwrap_err().status(), Status::Invalid);
    running.shutdown().await.unwrap();
}

/// A router built without the `cron` feature refuses a cron job (one made elsewhere, or kept
/// in a store by a build with the feature), saying why.
#[cfg(not(feature = "cron"))]
#[tokio::test]
async fn a_cron_job_is_invalid_without_the_cron_feature() {
    let (running, beats) = start_with(Edri::builder()).await;
    let mut job = Job::every(Duration::from_millis(10), Beat { from: "cron".into() });
    job.trigger = Trigger::Cron { expr: "* * * * * *".into() };
    let err = running.ctx().schedule(job).await.unwrap_err();
    assert_eq!(err.status(), Status::Invalid);
    assert!(err.message().contains("without the `cron` feature"), "{err}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(count(&beats, "cron"), 0);
    assert!(running.ctx().request(ListJobs::default()).await.unwrap().jobs.is_empty());
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_job_sending_a_tunnel_is_invalid() {
    let (running, _) = start_with(Edri::builder()).await;
    // A tunnel is not something a job can send.
    let tunnel = running.ctx().schedule(Job::every(Duration::from_secs(1), Stream)).await;
    let err = tunnel.unwrap_err();
    assert_eq!(err.status(), Status::Invalid);
    assert!(err.message().contains("is a tunnel"), "{err}");
    running.shutdown().await.unwrap();
}

#[event(tunnel, send = u8, receive = u8)]
pub struct Stream;

#[tokio::test]
async fn list_jobs_duplicates_and_update() {
    let (running, beats) = start_with(Edri::builder()).await;
    let ctx = running.ctx();
    ctx.schedule(
        Job::every(Duration::from_secs(3600), Beat { from: "slow".into() }).named("b-slow"),
    )
    .await
    .unwrap();
    let at = SystemTime::now() + Duration::from_secs(7200);
    ctx.schedule(Job::at(at, Beat { from: "later".into() }).named("a-later")).await.unwrap();
    let dup = ctx
        .schedule(Job::every(Duration::from_secs(1), Beat { from: "x".into() }).named("b-slow"))
        .await;
    assert_eq!(dup.unwrap_err().status(), Status::Conflict);

    let jobs = ctx.request(ListJobs::default()).await.unwrap().jobs;
    let names: Vec<_> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["a-later", "b-slow"]);
    let now = edri_now_ms();
    assert!(jobs.iter().all(|j| j.next_run_ms.is_some_and(|t| t > now)), "{jobs:?}");
    assert_eq!(jobs[1].trigger, Trigger::Every { ms: 3_600_000 });

    // Update: the slow job becomes fast and starts firing.
    let fast = Job::every(Duration::from_millis(20), Beat { from: "slow".into() }).named("b-slow");
    ctx.request(Update { job: fast }).await.unwrap();
    for _ in 0..100 {
        if count(&beats, "slow") >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(count(&beats, "slow") >= 3);
    let missing = Job::every(Duration::from_secs(1), Beat { from: "x".into() }).named("nope");
    assert_eq!(ctx.request(Update { job: missing }).await.unwrap_err().status(), Status::NotFound);
    running.shutdown().await.unwrap();
}

fn edri_now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis())
        .unwrap()
}

#[tokio::test]
async fn builder_jobs_run_from_the_start_and_one_shots_go_away() {
    let builder = Edri::builder()
        .job(Job::after(Duration::from_millis(30), Beat { from: "once".into() }).named("once"))
        .job(Job::every(Duration::from_millis(40), Beat { from: "again".into() }).named("again"));
    let (running, beats) = start_with(builder).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&beats, "once"), 1);
    assert!(count(&beats, "again") >= 3);
    let jobs = running.ctx().request(ListJobs::default()).await.unwrap().jobs;
    let once = jobs.iter().find(|j| j.name == "once").unwrap();
    assert_eq!((once.fired, once.next_run_ms), (1, None), "a one-shot has no next run");
    assert!(matches!(once.trigger, Trigger::At { .. }), "`after` is kept as `at`");
    running.shutdown().await.unwrap();

    // An invalid builder job is a start error, not a silent no-op.
    let err = Edri::builder()
        .only_explicit()
        .manager(Recorder { beats: Arc::default() })
        .job(Job::every(Duration::ZERO, Beat { from: "x".into() }))
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("interval"), "{err}");
}

#[cfg(all(feature = "durable", feature = "cron"))]
#[tokio::test]
async fn jobs_persist_across_restarts_with_a_durable_store() {
    let dir = std::env::temp_dir().join(format!("edri-scheduler-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jobs.redb");
    let _ = std::fs::remove_file(&path);
    {
        let (running, _) =
            start_with(Edri::builder().store(edri::Store::durable(&path).unwrap())).await;
        let job = Job::cron("0 0 3 * * *", Beat { from: "nightly".into() }).named("nightly-backup");
        running.ctx().schedule(job).await.unwrap();
        running.shutdown().await.unwrap();
    }
    let (running, _) =
        start_with(Edri::builder().store(edri::Store::durable(&path).unwrap())).await;
    let mut jobs = Vec::new();
    for _ in 0..100 {
        jobs = running.ctx().request(ListJobs::default()).await.unwrap().jobs;
        if !jobs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["nightly-backup"]);
    assert_eq!(jobs[0].trigger, Trigger::Cron { expr: "0 0 3 * * *".into() });
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
