//! Request round trips through the three handler modes: inline, thread pool, child process.
//!
//! `cargo bench -p edri-benches --bench modes`. The binary is its own process worker: `main`
//! calls `edri::serve_if_worker()` before criterion starts.

use criterion::{BenchmarkId, Criterion, Throughput};
use edri::prelude::*;
use std::future::IntoFuture;
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

const BATCH: u64 = 200;

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    g.throughput(Throughput::Elements(BATCH))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
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
        // Start the worker process outside the measurement.
        rt.block_on(ctx.request(InProcess { x: 0 }).into_future()).expect("worker");

        macro_rules! mode {
            ($name:literal, $event:ident) => {
                g.bench_function(BenchmarkId::new($name, flavour), |b| {
                    b.iter_custom(|iters| {
                        let ctx = ctx.clone();
                        // Driven from a task of the runtime, as an application would.
                        rt.block_on(rt.spawn(async move {
                            let start = Instant::now();
                            for i in 0..iters * BATCH {
                                let r = ctx.request($event { x: i }).await.expect("round trip");
                                assert_eq!(r.y, i + 1);
                            }
                            start.elapsed()
                        }))
                        .expect("bench task")
                    });
                });
            };
        }
        mode!("inline", Inline);
        mode!("thread", Threaded);
        mode!("process", InProcess);
        rt.block_on(running.shutdown()).expect("shutdown");
    }
    g.finish();
}

fn main() {
    edri::serve_if_worker();
    let mut c = Criterion::default().configure_from_args();
    round_trips(&mut c);
    c.final_summary();
}
