#![allow(missing_docs)]
//! A busy process worker never outlives the ones waiting for it: the requester's own timeout,
//! a dropped request and `shutdown()` each kill it (checked by pid, zombies included) and the
//! next call gets a fresh worker. This test binary is its own worker (`harness = false`).

use edri::prelude::*;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Writes the worker's pid to `pid_file`, then spins (busy, not sleeping) for `millis`.
#[event(request)]
pub struct Spin {
    pub pid_file: String,
    pub millis: u64,
}

#[derive(Default)]
pub struct Spinner;

#[manager]
impl Spinner {
    #[solve(process)]
    fn spin(ev: Spin) -> SpinResponse {
        let tmp = format!("{}.tmp", ev.pid_file);
        std::fs::write(&tmp, std::process::id().to_string()).unwrap();
        std::fs::rename(&tmp, &ev.pid_file).unwrap();
        let until = Instant::now() + Duration::from_millis(ev.millis);
        let mut turns = 0u64;
        while Instant::now() < until {
            turns = std::hint::black_box(turns.wrapping_add(1));
        }
        SpinResponse
    }
}

/// The worker timeout is far beyond every bound below: only the requester or the shutdown
/// can end a spinning call in time.
async fn start() -> edri::Running {
    Edri::builder()
        .only_explicit()
        .manager(Spinner)
        .worker_timeout(Duration::from_secs(120))
        .grace_period(Duration::from_millis(500))
        .start()
        .await
        .unwrap()
}

/// A fresh pid file path for one call.
fn pid_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("edri-{name}-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn spin(path: &std::path::Path, millis: u64) -> Spin {
    Spin { pid_file: path.to_string_lossy().into_owned(), millis }
}

/// The pid the handler wrote, once it did (at most `within`).
async fn written_pid(path: &std::path::Path, within: Duration) -> Option<u32> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text.parse().ok();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Whether `pid` is a process that has not been reaped (a zombie counts as alive: only
/// `waitpid` by its parent makes it go).
fn present(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` is gone, reaped, within 10 s.
async fn reaped_within_10s(pid: u32) -> bool {
    for _ in 0..1_000 {
        if !present(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn killed(running: &edri::Running, reason: &str) -> u64 {
    let series = format!(
        "edri_workers_killed_total{{manager=\"Spinner\",method=\"spin\",reason=\"{reason}\"}} "
    );
    let metrics = running.metrics();
    let line = metrics.lines().find_map(|l| l.strip_prefix(series.as_str()));
    line.unwrap_or_else(|| panic!("no {series} in\n{metrics}")).parse().unwrap()
}

/// A quick call, so that the pool holds one idle worker whose pid is known.
async fn warm(running: &edri::Running) -> u32 {
    let path = pid_file("warm");
    running.ctx().request(spin(&path, 0)).await.unwrap();
    let pid = written_pid(&path, Duration::from_secs(1)).await.unwrap();
    assert_eq!(running.worker_pids(), [pid]);
    pid
}

/// The next call is served promptly, by a fresh worker.
async fn served_by_a_fresh_worker(running: &edri::Running, old: u32) {
    let path = pid_file("next");
    let begun = Instant::now();
    running.ctx().request(spin(&path, 0)).timeout(Duration::from_secs(10)).await.unwrap();
    assert!(begun.elapsed() < Duration::from_secs(5), "next call took {:?}", begun.elapsed());
    let pid = written_pid(&path, Duration::from_secs(1)).await.unwrap();
    assert_ne!(pid, old, "the killed worker served again");
}

async fn the_callers_timeout_kills_its_busy_worker() {
    let running = start().await;
    let pid = warm(&running).await;
    let path = pid_file("timeout");
    let begun = Instant::now();
    let err = running
        .ctx()
        .request(spin(&path, 60_000))
        .timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Status::Timeout, "{err}");
    assert!(begun.elapsed() < Duration::from_secs(3), "took {:?}", begun.elapsed());
    if let Some(written) = written_pid(&path, Duration::ZERO).await {
        assert_eq!(written, pid, "the call ran in the warm worker");
    }
    assert!(reaped_within_10s(pid).await, "worker {pid} still spins after its caller gave up");
    assert!(!running.worker_pids().contains(&pid));
    assert_eq!(killed(&running, "caller_gone"), 1);
    served_by_a_fresh_worker(&running, pid).await;
    running.shutdown().await.unwrap();
}

async fn a_dropped_request_kills_its_busy_worker() {
    let running = start().await;
    let path = pid_file("dropped");
    let ctx = running.ctx().clone();
    let request = spin(&path, 60_000);
    let call = tokio::spawn(async move { ctx.request(request).await });
    let pid = written_pid(&path, Duration::from_secs(20)).await.expect("the handler started");
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert!(reaped_within_10s(pid).await, "worker {pid} still spins after its request was dropped");
    assert_eq!(killed(&running, "caller_gone"), 1);
    served_by_a_fresh_worker(&running, pid).await;
    running.shutdown().await.unwrap();
}

async fn shutdown_kills_a_busy_worker_and_returns_once_it_is_reaped() {
    let running = start().await;
    let path = pid_file("shutdown");
    let ctx = running.ctx().clone();
    let request = spin(&path, 60_000);
    let call = tokio::spawn(async move { ctx.request(request).await });
    let pid = written_pid(&path, Duration::from_secs(20)).await.expect("the handler started");
    let begun = Instant::now();
    running.shutdown().await.unwrap();
    // No waiting here: `shutdown` returned, so the child is reaped already.
    assert!(!present(pid), "shutdown returned with worker {pid} still there");
    assert!(begun.elapsed() < Duration::from_secs(10), "shutdown took {:?}", begun.elapsed());
    let err =
        tokio::time::timeout(Duration::from_secs(5), call).await.unwrap().unwrap().unwrap_err();
    assert_eq!(err.status(), Status::Unavailable, "{err}");
}

async fn a_request_given_up_while_it_waited_for_the_worker_is_not_run() {
    let running = start().await;
    let pid = warm(&running).await;
    // The only worker (limit 1) is busy for 1.5 s; the second call waits for it and its
    // requester gives up after 300 ms.
    let first = pid_file("first");
    let ctx = running.ctx().clone();
    let request = spin(&first, 1_500);
    let busy = tokio::spawn(async move { ctx.request(request).await });
    assert_eq!(written_pid(&first, Duration::from_secs(20)).await, Some(pid));
    let second = pid_file("second");
    let err = running
        .ctx()
        .request(spin(&second, 0))
        .timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Status::Timeout, "{err}");
    tokio::time::timeout(Duration::from_secs(20), busy).await.unwrap().unwrap().unwrap();
    // Give a wrongly started call time to write its file, then check it never ran.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.exists(), "a call nobody waited for ran");
    assert_eq!(running.worker_pids(), [pid], "no worker was started or killed for it");
    assert_eq!(killed(&running, "caller_gone"), 0);
    running.shutdown().await.unwrap();
}

async fn metrics_start_at_zero() {
    let running = start().await;
    for reason in ["worker_timeout", "caller_gone", "shutdown", "unresponsive", "bad_start"] {
        assert_eq!(killed(&running, reason), 0, "{reason}");
    }
    running.shutdown().await.unwrap();
}

type Case = (&'static str, fn() -> Pin<Box<dyn Future<Output = ()>>>);

fn main() {
    edri::serve_if_worker();
    let cases: &[Case] = &[
        ("the_callers_timeout_kills_its_busy_worker", || {
            Box::pin(the_callers_timeout_kills_its_busy_worker())
        }),
        ("a_dropped_request_kills_its_busy_worker", || {
            Box::pin(a_dropped_request_kills_its_busy_worker())
        }),
        ("shutdown_kills_a_busy_worker_and_returns_once_it_is_reaped", || {
            Box::pin(shutdown_kills_a_busy_worker_and_returns_once_it_is_reaped())
        }),
        ("a_request_given_up_while_it_waited_for_the_worker_is_not_run", || {
            Box::pin(a_request_given_up_while_it_waited_for_the_worker_is_not_run())
        }),
        ("metrics_start_at_zero", || Box::pin(metrics_start_at_zero())),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(case())));
        drop(runtime);
        if outcome.is_ok() {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("\nprocess_bounds: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
