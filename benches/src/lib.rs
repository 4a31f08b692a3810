//! Events, managers and helpers shared by the EDRI bench programs (`router.rs`, the criterion
//! benches, and `latency.rs`, the request round-trip percentiles).
//!
//! None of the managers here implements `Default` except [`Echoer`], and every bench router is
//! built with `only_explicit()`, so each bench starts exactly the managers it needs.

use edri::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

pub mod twins;

/// Messages per measured iteration (a multiple of 64, for `request_64`).
pub const BATCH: u64 = 10_240;

/// Concurrent requesters in `request_64`.
pub const IN_FLIGHT: u64 = 64;

/// Mailbox / channel capacity of every bench, edri and raw tokio alike.
pub const CAPACITY: usize = 1024;

/// The payload that marks the last message of a batch.
pub const END: u64 = u64::MAX;

/// The tokio runtime flavours every workload is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `new_current_thread()`: sender and receivers share one thread.
    CurrentThread,
    /// `new_multi_thread().worker_threads(2)`.
    MultiThread,
}

impl Flavour {
    /// Both flavours, current-thread first.
    pub const ALL: [Self; 2] = [Self::CurrentThread, Self::MultiThread];

    /// The name used in bench ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::CurrentThread => "current_thread",
            Self::MultiThread => "multi_thread",
        }
    }

    /// A fresh runtime of this flavour (time driver enabled: edri arms request deadlines).
    pub fn runtime(self) -> Runtime {
        let mut builder = match self {
            Self::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Self::MultiThread => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        };
        builder.enable_all().build().expect("tokio runtime")
    }
}

/// Counts the consumers that have seen the end-of-batch marker and wakes the bench when all
/// `parties` have. Reusable batch after batch.
#[derive(Debug)]
pub struct Done {
    parties: usize,
    seen: AtomicUsize,
    notify: Notify,
}

impl Done {
    /// A barrier for `parties` consumers.
    pub fn new(parties: usize) -> Arc<Self> {
        Arc::new(Self { parties, seen: AtomicUsize::new(0), notify: Notify::new() })
    }

    /// One consumer has processed its whole batch.
    pub fn arrive(&self) {
        if self.seen.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.seen.store(0, Ordering::Relaxed);
            // `notify_one` keeps a permit when the bench is not waiting yet.
            self.notify.notify_one();
        }
    }

    /// Waits until every consumer has arrived.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// A one-way notification to one manager; `Tick(END)` closes a batch.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Tick(pub u64);

/// A request answered with `x + 1`.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Echo {
    /// The question.
    pub x: u64,
    /// The answer.
    #[response]
    pub y: u64,
}

/// A notification every fan-out manager subscribes to; `Fan(END)` closes a batch.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Fan(pub u64);

/// Consumes [`Tick`]s and tells [`Done`] at the end of each batch.
#[derive(Debug)]
pub struct Sink {
    /// Sum of the payloads seen (kept so the handler does some work).
    pub sum: u64,
    /// Told at every `Tick(END)`.
    pub done: Arc<Done>,
}

#[manager(capacity = 1024)]
impl Sink {
    #[solve]
    fn tick(&mut self, ev: &Tick) {
        if ev.0 == END {
            self.done.arrive();
        } else {
            self.sum = self.sum.wrapping_add(ev.0);
        }
    }
}

/// Answers [`Echo`].
#[derive(Debug, Default)]
pub struct Echoer;

#[manager(capacity = 1024)]
impl Echoer {
    #[solve]
    fn echo(&mut self, ev: &Echo) -> EchoResponse {
        EchoResponse { y: ev.x + 1 }
    }
}

macro_rules! fan_managers {
    ($($name:ident),+ $(,)?) => {
        $(
            /// One of the eight subscribers of [`Fan`] (`fanout_1to8`).
            #[derive(Debug)]
            pub struct $name {
                /// Sum of the payloads seen.
                pub sum: u64,
                /// Told at every `Fan(END)`.
                pub done: Arc<Done>,
            }

            impl $name {
                /// A subscriber reporting to `done`.
                pub fn new(done: Arc<Done>) -> Self {
                    Self { sum: 0, done }
                }
            }

            #[manager(capacity = 1024)]
            impl $name {
                #[solve]
                fn fan(&mut self, ev: &Fan) {
                    if ev.0 == END {
                        self.done.arrive();
                    } else {
                        self.sum = self.sum.wrapping_add(ev.0);
                    }
                }
            }
        )+
    };
}

fan_managers!(Fan0, Fan1, Fan2, Fan3, Fan4, Fan5, Fan6, Fan7);

/// A router running the eight fan-out subscribers, all reporting to `done` (8 parties).
pub async fn start_fanout(done: &Arc<Done>) -> edri::Result<edri::Running> {
    Edri::builder()
        .only_explicit()
        .manager(Fan0::new(done.clone()))
        .manager(Fan1::new(done.clone()))
        .manager(Fan2::new(done.clone()))
        .manager(Fan3::new(done.clone()))
        .manager(Fan4::new(done.clone()))
        .manager(Fan5::new(done.clone()))
        .manager(Fan6::new(done.clone()))
        .manager(Fan7::new(done.clone()))
        .start()
        .await
}

/// The `q`-quantile (0..=1) of sorted samples, nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `iters` batches in one task spawned on `rt` and returns the time they took (the
/// router, the runtime and the consumers are set up outside the measurement).
pub fn measure<D, F, Fut>(rt: &Runtime, iters: u64, driver: &D, batch: F) -> std::time::Duration
where
    D: Clone + Send + 'static,
    F: Fn(D) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let driver = driver.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                batch(driver.clone()).await;
            }
            start.elapsed()
        })
        .await
        .expect("bench task panicked")
    })
}

/// A criterion group of `BATCH`-element iterations with the short settings all benches share.
pub fn group<'a>(
    c: &'a mut criterion::Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(criterion::Throughput::Elements(BATCH))
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(10);
    g
}

/// The raw-tokio twin of `Sink`: a task summing `Tick`s from a bounded channel (capacity
/// `CAPACITY`) that arrives at `done` on `END`.
pub fn spawn_raw_sink(rt: &Runtime, done: &Arc<Done>) -> tokio::sync::mpsc::Sender<Tick> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Tick>(CAPACITY);
    let done = done.clone();
    rt.spawn(async move {
        let mut sum = 0u64;
        while let Some(Tick(v)) = rx.recv().await {
            if v == END {
                done.arrive();
            } else {
                sum = sum.wrapping_add(v);
            }
        }
        std::hint::black_box(sum);
    });
    tx
}
