//! Request round trips through the three handler modes (inline, thread pool, child process)
//! beside the raw twins of the last two ([`edri_benches::twins`]): a std thread fed by a
//! channel, and a child echo process joined by pipes. Sequential round trips, and 64 callers
//! in flight (every handler and twin serves one call at a time).
//!
//! `cargo bench -p edri-benches --bench modes`. The binary is its own process worker and its
//! own echo child: `main` calls `edri::serve_if_worker()` and `serve_echo_if_child()` before
//! criterion starts. After criterion's lines, one line per workload gives the median time per
//! round trip of the measured samples and the ratio edri / twin.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use edri::prelude::*;
use edri_benches::twins::{ProcessTwin, ThreadTwin, serve_echo_if_child};
use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Adds one.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Inline {
    /// The input.
    pub x: u64,
    /// `x + 1`.
    #[response]
    pub y: u64,
}

/// Adds one, on the blocking pool.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Threaded {
    /// The input.
    pub x: u64,
    /// `x + 1`.
    #[response]
    pub y: u64,
}

/// Adds one, in a worker process.
#[event(request)]
#[derive(Debug, Clone)]
pub struct InProcess {
    /// The input.
    pub x: u64,
    /// `x + 1`.
    #[response]
    pub y: u64,
}

/// One handler per mode.
#[derive(Default)]
pub struct Modes;

#[manager(manual)]
impl Modes {
    #[solve]
    fn inline(&mut self, ev: &Inline) -> InlineResponse {
        InlineResponse { y: ev.x + 1 }
    }

    #[solve(thread, limit = 1)]
    fn threaded(ev: Threaded) -> ThreadedResponse {
        ThreadedResponse { y: ev.x + 1 }
    }

    #[solve(process, limit = 1)]
    fn in_process(ev: InProcess) -> InProcessResponse {
        InProcessResponse { y: ev.x + 1 }
    }
}

/// Round trips per measured iteration (a multiple of [`IN_FLIGHT`]).
const BATCH: u64 = 256;

/// Concurrent callers in the `*_64` workloads.
const IN_FLIGHT: u64 = 64;

/// Criterion samples per workload (the last `SAMPLES` timings of a workload are its measured
/// ones, the earlier ones its warm-up).
const SAMPLES: usize = 10;

/// Nanoseconds per round trip of every timed iteration, by (flavour, workload).
static TIMES: Mutex<BTreeMap<(&'static str, String), Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Runs `iters` batches of round trips through `call` in a task of `rt` (as an application
/// would call), `in_flight` callers at once, and records the time per round trip.
fn drive<F, Fut>(
    rt: &tokio::runtime::Runtime,
    key: (&'static str, String),
    iters: u64,
    in_flight: u64,
    call: F,
) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = u64> + Send,
{
    let calls = iters * BATCH;
    let elapsed = rt
        .block_on(rt.spawn(async move {
            let start = Instant::now();
            let callers: Vec<_> = (0..in_flight)
                .map(|caller| {
                    let call = call.clone();
                    tokio::spawn(async move {
                        for i in (caller..calls).step_by(in_flight as usize) {
                            assert_eq!(call(i).await, i + 1, "round trip");
                        }
                    })
                })
                .collect();
            for caller in callers {
                caller.await.expect("caller");
            }
            start.elapsed()
        }))
        .expect("bench task");
    let per_call = elapsed.as_nanos() as f64 / calls as f64;
    TIMES.lock().expect("times").entry(key).or_default().push(per_call);
    elapsed
}

/// A call of `f` with its own clone of `state` (the futures of a workload own what they use).
fn with<S, F, Fut>(state: &S, f: F) -> impl Fn(u64) -> Fut + Clone + Send + Sync + 'static
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, u64) -> Fut + Clone + Send + Sync + 'static,
{
    let state = state.clone();
    move |x| f(state.clone(), x)
}

/// One workload of the group: its name, and how many callers it has at once.
struct Workload<'a> {
    rt: &'a tokio::runtime::Runtime,
    flavour: &'static str,
    name: &'static str,
    in_flight: u64,
}

impl Workload<'_> {
    fn run<F, Fut>(self, g: &mut BenchmarkGroup<'_, WallTime>, call: F)
    where
        F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = u64> + Send,
    {
        let name = match self.in_flight {
            1 => self.name.to_owned(),
            n => format!("{}_{n}", self.name),
        };
        g.bench_function(BenchmarkId::new(&name, self.flavour), |b| {
            b.iter_custom(|iters| {
                let key = (self.flavour, name.clone());
                drive(self.rt, key, iters, self.in_flight, call.clone())
            });
        });
    }
}

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    g.throughput(Throughput::Elements(BATCH))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(SAMPLES);
    for (flavour, rt) in [
        ("current_thread", tokio::runtime::Builder::new_current_thread().enable_all().build()),
        (
            "multi_thread",
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build(),
        ),
    ] {
        let rt = rt.expect("runtime");
        let running =
            rt.block_on(Edri::builder().only_explicit().manager(Modes).start()).expect("router");
        let ctx = running.ctx().clone();
        // Start the worker process and the echo child outside the measurement.
        rt.block_on(ctx.request(InProcess { x: 0 }).into_future()).expect("worker");
        let thread_twin = ThreadTwin::start();
        let process_twin = Arc::new(rt.block_on(async { ProcessTwin::start() }));

        let on = |name, in_flight| Workload { rt: &rt, flavour, name, in_flight };
        let (c, t, p) = (ctx.clone(), thread_twin.clone(), process_twin.clone());
        on("inline", 1).run(
            &mut g,
            with(&c, |c, x| async move { c.request(Inline { x }).await.expect("inline").y }),
        );
        for in_flight in [1, IN_FLIGHT] {
            on("thread", in_flight).run(
                &mut g,
                with(&c, |c, x| async move { c.request(Threaded { x }).await.expect("thread").y }),
            );
            on("thread_twin", in_flight)
                .run(&mut g, with(&t, |t, x| async move { t.call(x).await }));
            if in_flight == 1 {
                on("spawn_blocking", 1).run(&mut g, |x| async move {
                    tokio::task::spawn_blocking(move || x + 1).await.expect("blocking")
                });
            }
            on("process", in_flight).run(
                &mut g,
                with(
                    &c,
                    |c, x| async move { c.request(InProcess { x }).await.expect("process").y },
                ),
            );
            on("process_twin", in_flight)
                .run(&mut g, with(&p, |p, x| async move { p.call(x).await }));
        }
        drop(process_twin);
        rt.block_on(running.shutdown()).expect("shutdown");
    }
    g.finish();
}

/// One line per workload: the median time per round trip over the measured samples, and the
/// ratio to the twin (edri / twin: below 1.5 is the target).
fn report() {
    let times = TIMES.lock().expect("times");
    let median = |key: &(&'static str, String)| {
        let all = times.get(key)?;
        let mut measured = all[all.len().saturating_sub(SAMPLES)..].to_vec();
        measured.sort_by(f64::total_cmp);
        measured.get(measured.len() / 2).copied()
    };
    for (flavour, name) in times.keys() {
        let Some(ns) = median(&(flavour, name.clone())) else { continue };
        let twin = name.replacen("thread", "thread_twin", 1).replacen("process", "process_twin", 1);
        let ratio = match median(&(flavour, twin.clone())) {
            Some(t) if twin != *name && !name.contains("twin") => {
                format!("  edri/twin {:.2}", ns / t)
            }
            _ => String::new(),
        };
        println!("modes {flavour:<14} {name:<18} {:>8.2} µs per round trip{ratio}", ns / 1000.0);
    }
}

fn main() {
    edri::serve_if_worker();
    serve_echo_if_child();
    let mut c = Criterion::default().configure_from_args();
    round_trips(&mut c);
    c.final_summary();
    report();
}
