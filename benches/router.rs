//! In-process benches of the EDRI router, each next to its raw-tokio twin in the same criterion
//! group, on a current-thread runtime and on a 2-worker multi-thread runtime.
//!
//! Every measured iteration is one batch of `BATCH` messages (requests for the request
//! workloads) and ends when the last one has been processed, so the throughput criterion
//! prints is messages (or published notifications, for fan-out) per second. The router, the
//! runtime and the raw consumer tasks are set up outside the measurement; the batches run in
//! one task spawned on the runtime (so on a worker thread for the multi-thread flavour).
//!
//! `cargo bench -p edri-benches --bench router` (append `-- notify_1to1` to pick a group).

use criterion::{BenchmarkId, Criterion};
use edri::prelude::*;
use edri_benches::spawn_raw_sink;
use edri_benches::{
    BATCH, CAPACITY, Done, END, Echo, Echoer, Fan, Flavour, IN_FLIGHT, Sink, Tick, group, measure,
    start_fanout,
};
use std::hint::black_box;
use std::sync::Arc;
use tokio::runtime::Runtime;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;

// ---------------------------------------------------------------- notify_1to1

async fn edri_notify_batch((ctx, done): (Ctx, Arc<Done>)) {
    for i in 0..BATCH - 1 {
        ctx.notify(Tick(i)).await.expect("notify");
    }
    ctx.notify(Tick(END)).await.expect("notify");
    done.wait().await;
}

async fn raw_notify_batch((tx, done): (mpsc::Sender<Tick>, Arc<Done>)) {
    for i in 0..BATCH - 1 {
        tx.send(Tick(i)).await.expect("send");
    }
    tx.send(Tick(END)).await.expect("send");
    done.wait().await;
}

fn notify_1to1(c: &mut Criterion) {
    let mut g = group(c, "notify_1to1");
    for flavour in Flavour::ALL {
        let rt = flavour.runtime();

        let done = Done::new(1);
        let running = rt
            .block_on(
                Edri::builder()
                    .only_explicit()
                    .mailbox_capacity(CAPACITY)
                    .manager(Sink { sum: 0, done: done.clone() })
                    .start(),
            )
            .expect("router");
        let driver = (running.ctx().clone(), done);
        g.bench_function(BenchmarkId::new("edri", flavour.name()), |b| {
            b.iter_custom(|iters| measure(&rt, iters, &driver, edri_notify_batch));
        });
        drop(driver);
        rt.block_on(running.shutdown()).expect("shutdown");

        let done = Done::new(1);
        let tx = spawn_raw_sink(&rt, &done);
        let driver = (tx, done);
        g.bench_function(BenchmarkId::new("raw", flavour.name()), |b| {
            b.iter_custom(|iters| measure(&rt, iters, &driver, raw_notify_batch));
        });
        drop(driver);
        drop(rt);
    }
    g.finish();
}

// ---------------------------------------------------------------- requests

type RawRequest = (u64, oneshot::Sender<u64>);

/// The raw twin of `Echoer`: a task answering `x + 1` through the oneshot.
fn spawn_raw_echo(rt: &Runtime) -> mpsc::Sender<RawRequest> {
    let (tx, mut rx) = mpsc::channel::<RawRequest>(CAPACITY);
    rt.spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(x + 1);
        }
    });
    tx
}

async fn raw_request(tx: &mpsc::Sender<RawRequest>, x: u64) -> u64 {
    let (reply, answer) = oneshot::channel();
    tx.send((x, reply)).await.expect("send");
    answer.await.expect("answer")
}

async fn edri_seq_batch(ctx: Ctx) {
    let mut sum = 0u64;
    for i in 0..BATCH {
        sum = sum.wrapping_add(ctx.request(Echo { x: i }).await.expect("request").y);
    }
    black_box(sum);
}

async fn raw_seq_batch(tx: mpsc::Sender<RawRequest>) {
    let mut sum = 0u64;
    for i in 0..BATCH {
        sum = sum.wrapping_add(raw_request(&tx, i).await);
    }
    black_box(sum);
}

async fn edri_64_batch(ctx: Ctx) {
    let mut set = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let ctx = ctx.clone();
        set.spawn(async move {
            let mut sum = 0u64;
            for i in 0..BATCH / IN_FLIGHT {
                sum = sum.wrapping_add(ctx.request(Echo { x: i }).await.expect("request").y);
            }
            black_box(sum);
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("requester panicked");
    }
}

async fn raw_64_batch(tx: mpsc::Sender<RawRequest>) {
    let mut set = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let tx = tx.clone();
        set.spawn(async move {
            let mut sum = 0u64;
            for i in 0..BATCH / IN_FLIGHT {
                sum = sum.wrapping_add(raw_request(&tx, i).await);
            }
            black_box(sum);
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("requester panicked");
    }
}

fn requests(c: &mut Criterion, name: &str, concurrent: bool) {
    let mut g = group(c, name);
    for flavour in Flavour::ALL {
        let rt = flavour.runtime();

        let running = rt
            .block_on(
                Edri::builder().only_explicit().mailbox_capacity(CAPACITY).manager(Echoer).start(),
            )
            .expect("router");
        let ctx = running.ctx().clone();
        g.bench_function(BenchmarkId::new("edri", flavour.name()), |b| {
            b.iter_custom(|iters| {
                if concurrent {
                    measure(&rt, iters, &ctx, edri_64_batch)
                } else {
                    measure(&rt, iters, &ctx, edri_seq_batch)
                }
            });
        });
        drop(ctx);
        rt.block_on(running.shutdown()).expect("shutdown");

        let tx = spawn_raw_echo(&rt);
        g.bench_function(BenchmarkId::new("raw", flavour.name()), |b| {
            b.iter_custom(|iters| {
                if concurrent {
                    measure(&rt, iters, &tx, raw_64_batch)
                } else {
                    measure(&rt, iters, &tx, raw_seq_batch)
                }
            });
        });
        drop(tx);
        drop(rt);
    }
    g.finish();
}

fn request_seq(c: &mut Criterion) {
    requests(c, "request_seq", false);
}

fn request_64(c: &mut Criterion) {
    requests(c, "request_64", true);
}

// ---------------------------------------------------------------- fanout_1to8

const SUBSCRIBERS: usize = 8;

async fn edri_fan_batch((ctx, done): (Ctx, Arc<Done>)) {
    for i in 0..BATCH - 1 {
        ctx.notify(Fan(i)).await.expect("notify");
    }
    ctx.notify(Fan(END)).await.expect("notify");
    done.wait().await;
}

/// tokio broadcast never blocks the sender: to stay lossless like a bounded mailbox, the
/// sender yields while the ring is full. A receiver that lags anyway panics the bench.
async fn raw_broadcast_batch((tx, done): (broadcast::Sender<Fan>, Arc<Done>)) {
    for i in 0..BATCH {
        while tx.len() >= CAPACITY {
            tokio::task::yield_now().await;
        }
        let v = if i == BATCH - 1 { END } else { i };
        tx.send(Fan(v)).expect("broadcast");
    }
    done.wait().await;
}

type Mailboxes = Arc<[mpsc::Sender<Arc<Fan>>]>;

/// What the router does, written by hand: one `Arc` per notification, cloned into eight
/// bounded mpsc channels (a diagnostic variant, not a target).
async fn raw_mpsc8_batch((txs, done): (Mailboxes, Arc<Done>)) {
    for i in 0..BATCH {
        let v = if i == BATCH - 1 { END } else { i };
        let ev = Arc::new(Fan(v));
        for tx in txs.iter() {
            tx.send(ev.clone()).await.expect("send");
        }
    }
    done.wait().await;
}

fn fanout_1to8(c: &mut Criterion) {
    let mut g = group(c, "fanout_1to8");
    for flavour in Flavour::ALL {
        let rt = flavour.runtime();

        let done = Done::new(SUBSCRIBERS);
        let running = rt.block_on(start_fanout(&done)).expect("router");
        let driver = (running.ctx().clone(), done);
        g.bench_function(BenchmarkId::new("edri", flavour.name()), |b| {
            b.iter_custom(|iters| measure(&rt, iters, &driver, edri_fan_batch));
        });
        drop(driver);
        rt.block_on(running.shutdown()).expect("shutdown");

        let done = Done::new(SUBSCRIBERS);
        let (tx, _) = broadcast::channel::<Fan>(CAPACITY);
        for _ in 0..SUBSCRIBERS {
            let mut rx = tx.subscribe();
            let done = done.clone();
            rt.spawn(async move {
                let mut sum = 0u64;
                loop {
                    match rx.recv().await {
                        Ok(Fan(END)) => done.arrive(),
                        Ok(Fan(v)) => sum = sum.wrapping_add(v),
                        Err(broadcast::error::RecvError::Closed) => break,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            panic!("broadcast receiver lost {n} events")
                        }
                    }
                }
                black_box(sum);
            });
        }
        let driver = (tx, done);
        g.bench_function(BenchmarkId::new("raw", flavour.name()), |b| {
            b.iter_custom(|iters| measure(&rt, iters, &driver, raw_broadcast_batch));
        });
        drop(driver);

        let done = Done::new(SUBSCRIBERS);
        let mut txs = Vec::with_capacity(SUBSCRIBERS);
        for _ in 0..SUBSCRIBERS {
            let (tx, mut rx) = mpsc::channel::<Arc<Fan>>(CAPACITY);
            txs.push(tx);
            let done = done.clone();
            rt.spawn(async move {
                let mut sum = 0u64;
                while let Some(ev) = rx.recv().await {
                    if ev.0 == END {
                        done.arrive();
                    } else {
                        sum = sum.wrapping_add(ev.0);
                    }
                }
                black_box(sum);
            });
        }
        let driver = (Arc::<[_]>::from(txs), done);
        g.bench_function(BenchmarkId::new("raw_mpsc8", flavour.name()), |b| {
            b.iter_custom(|iters| measure(&rt, iters, &driver, raw_mpsc8_batch));
        });
        drop(driver);
        drop(rt);
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    notify_1to1(&mut c);
    request_seq(&mut c);
    request_64(&mut c);
    fanout_1to8(&mut c);
    c.final_summary();
}
