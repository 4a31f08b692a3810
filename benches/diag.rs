//! Diagnostic benches, not targets: raw tokio variants that add, one at a time, the work the
//! router does per message, next to the plain raw twin and EDRI, to see where EDRI's time goes.
//!
//! Not run by a plain `cargo bench`; run it with
//! `cargo bench -p edri-benches --bench diag`.
//!
//! - `diag_notify`: `raw` sends `Tick` through a bounded mpsc; `raw_arc` sends `Arc<Tick>`
//!   (one allocation per event, as EDRI's notify); `raw_dyn` sends `Arc<dyn Any>` downcast by
//!   the consumer; `raw_envelope_bare` sends EDRI's envelope shape (`Arc<dyn Any>` plus a
//!   handler index, in an enum); `raw_envelope` also runs each delivery under `catch_unwind`
//!   with the stats stores of EDRI's manager loop; `edri` is `ctx.notify`.
//! - `diag_request`: `raw` is mpsc + oneshot; `raw_boxed` puts the event and the reply sender
//!   in one `Box<dyn Any>` cell downcast by the server (as EDRI's request envelope);
//!   `raw_timer` arms a 30 s `tokio::time::Sleep` while the answer is pending (as EDRI's
//!   request deadline); `raw_both` does both; `edri` is `ctx.request`.
//! - `diag_request_64`: 64 requesters; `raw` awaits the oneshot, `raw_yield` yields once
//!   before (as EDRI's requests do since commit 515f4e8), `raw_yield_timer` then also arms the
//!   deadline when the answer is still missing; `edri` is `ctx.request`.

use criterion::{BenchmarkId, Criterion};
use edri::prelude::*;
use edri_benches::spawn_raw_sink;
use edri_benches::{
    BATCH, CAPACITY, Done, END, Echo, Echoer, Flavour, IN_FLIGHT, Sink, Tick, group, measure,
};
use std::any::Any;
use std::future::{Future, poll_fn};
use std::hint::black_box;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

// ---------------------------------------------------------------- notify

/// EDRI's envelope shape, rebuilt by hand.
struct Envelope {
    handler: u16,
    payload: Payload,
}

#[allow(dead_code)]
enum Payload {
    Shared(Arc<dyn Any + Send + Sync>),
    Request(Box<dyn Any + Send>),
    Stop,
}

#[derive(Default)]
struct Stats {
    busy: AtomicBool,
    processed: AtomicU64,
}

/// Serves envelopes like EDRI's manager loop; `FULL` adds `catch_unwind` and the stats.
async fn envelope_consumer<const FULL: bool>(mut rx: mpsc::Receiver<Envelope>, done: Arc<Done>) {
    let stats = Arc::new(Stats::default());
    let mut sum = 0u64;
    while let Some(env) = rx.recv().await {
        if matches!(env.payload, Payload::Stop) {
            break;
        }
        let mut handle = || {
            if let (0, Payload::Shared(arc)) = (env.handler, &env.payload) {
                let ev = arc.downcast_ref::<Tick>().expect("a Tick");
                if ev.0 == END {
                    done.arrive();
                } else {
                    sum = sum.wrapping_add(ev.0);
                }
            }
        };
        if FULL {
            stats.busy.store(true, Ordering::Release);
            let out = std::panic::catch_unwind(AssertUnwindSafe(handle));
            let p = stats.processed.load(Ordering::Relaxed);
            stats.processed.store(p + 1, Ordering::Relaxed);
            stats.busy.store(false, Ordering::Release);
            black_box(out.is_ok());
        } else {
            handle();
        }
    }
    black_box(sum);
}

/// Sends `BATCH` values made by `make` (the last one from `END`) and waits for `done`.
async fn send_batch<T, F>(tx: &mpsc::Sender<T>, done: &Done, make: F)
where
    F: Fn(u64) -> T,
{
    for i in 0..BATCH - 1 {
        let _ = tx.send(make(i)).await;
    }
    let _ = tx.send(make(END)).await;
    done.wait().await;
}

fn diag_notify(c: &mut Criterion) {
    let mut g = group(c, "diag_notify");
    for flavour in Flavour::ALL {
        let rt = flavour.runtime();
        let id = |v: &str| BenchmarkId::new(v, flavour.name());

        // raw: Tick by value.
        let done = Done::new(1);
        let tx = spawn_raw_sink(&rt, &done);
        let driver = (tx, done);
        g.bench_function(id("raw"), |b| {
            b.iter_custom(|iters| {
                measure(&rt, iters, &driver, |(tx, done)| async move {
                    send_batch(&tx, &done, Tick).await;
                })
            });
        });
        drop(driver);

        // raw_arc: one allocation per event.
        let done = Done::new(1);
        let (tx, mut rx) = mpsc::channel::<Arc<Tick>>(CAPACITY);
        let d = done.clone();
        rt.spawn(async move {
            let mut sum = 0u64;
            while let Some(ev) = rx.recv().await {
                if ev.0 == END {
                    d.arrive();
                } else {
                    sum = sum.wrapping_add(ev.0);
                }
            }
            black_box(sum);
        });
        let driver = (tx, done);
        g.bench_function(id("raw_arc"), |b| {
            b.iter_custom(|iters| {
                measure(&rt, iters, &driver, |(tx, done)| async move {
                    send_batch(&tx, &done, |v| Arc::new(Tick(v))).await;
                })
            });
        });
        drop(driver);

        // raw_dyn: `Arc<dyn Any>` downcast by the consumer (fat pointer, type check).
        let done = Done::new(1);
        let (tx, mut rx) = mpsc::channel::<Arc<dyn Any + Send + Sync>>(CAPACITY);
        let d = done.clone();
        rt.spawn(async move {
            let mut sum = 0u64;
            while let Some(arc) = rx.recv().await {
                let ev = arc.downcast_ref::<Tick>().expect("a Tick");
                if ev.0 == END {
                    d.arrive();
                } else {
                    sum = sum.wrapping_add(ev.0);
                }
            }
            black_box(sum);
        });
        let driver = (tx, done);
        g.bench_function(id("raw_dyn"), |b| {
            b.iter_custom(|iters| {
                measure(&rt, iters, &driver, |(tx, done)| async move {
                    send_batch(&tx, &done, |v| Arc::new(Tick(v)) as Arc<dyn Any + Send + Sync>)
                        .await;
                })
            });
        });
        drop(driver);

        // raw_envelope_bare: the envelope, without catch_unwind and stats;
        // raw_envelope: with both, as EDRI's manager loop.
        for (name, full) in [("raw_envelope_bare", false), ("raw_envelope", true)] {
            let done = Done::new(1);
            let (tx, rx) = mpsc::channel::<Envelope>(CAPACITY);
            if full {
                rt.spawn(envelope_consumer::<true>(rx, done.clone()));
            } else {
                rt.spawn(envelope_consumer::<false>(rx, done.clone()));
            }
            let driver = (tx, done);
            g.bench_function(id(name), |b| {
                b.iter_custom(|iters| {
                    measure(&rt, iters, &driver, |(tx, done)| async move {
                        send_batch(&tx, &done, |v| Envelope {
                            handler: 0,
                            payload: Payload::Shared(Arc::new(Tick(v))),
                        })
                        .await;
                    })
                });
            });
            drop(driver);
        }

        // edri
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
        g.bench_function(id("edri"), |b| {
            b.iter_custom(|iters| {
                measure(&rt, iters, &driver, |(ctx, done)| async move {
                    for i in 0..BATCH - 1 {
                        ctx.notify(Tick(i)).await.expect("notify");
                    }
                    ctx.notify(Tick(END)).await.expect("notify");
                    done.wait().await;
                })
            });
        });
        drop(driver);
        rt.block_on(running.shutdown()).expect("shutdown");
    }
    g.finish();
}

// ---------------------------------------------------------------- request

type Plain = (u64, oneshot::Sender<u64>);
/// EDRI's request cell: the event and the reply sender in one type-erased box.
type Cell = (Option<u64>, Option<oneshot::Sender<u64>>);

/// Awaits `answer`, arming a 30 s sleep the first time it is pending (EDRI's deadline).
async fn with_timer(mut answer: oneshot::Receiver<u64>) -> u64 {
    let mut sleep = pin!(None::<tokio::time::Sleep>);
    poll_fn(|cx| {
        if let Poll::Ready(v) = Pin::new(&mut answer).poll(cx) {
            return Poll::Ready(v.expect("answer"));
        }
        if sleep.is_none() {
            sleep.set(Some(tokio::time::sleep(Duration::from_secs(30))));
        }
        if let Some(s) = sleep.as_mut().as_pin_mut()
            && s.poll(cx).is_ready()
        {
            panic!("timed out");
        }
        Poll::Pending
    })
    .await
}

fn spawn_plain(rt: &Runtime) -> mpsc::Sender<Plain> {
    let (tx, mut rx) = mpsc::channel::<Plain>(CAPACITY);
    rt.spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(x + 1);
        }
    });
    tx
}

fn spawn_boxed(rt: &Runtime) -> mpsc::Sender<Box<dyn Any + Send>> {
    let (tx, mut rx) = mpsc::channel::<Box<dyn Any + Send>>(CAPACITY);
    rt.spawn(async move {
        while let Some(cell) = rx.recv().await {
            let mut cell = cell.downcast::<Cell>().expect("a cell");
            let x = cell.0.take().expect("event");
            if let Some(reply) = cell.1.take() {
                let _ = reply.send(x + 1);
            }
        }
    });
    tx
}

async fn plain_request(tx: &mpsc::Sender<Plain>, x: u64, timer: bool) -> u64 {
    let (reply, answer) = oneshot::channel();
    tx.send((x, reply)).await.expect("send");
    if timer { with_timer(answer).await } else { answer.await.expect("answer") }
}

async fn boxed_request(tx: &mpsc::Sender<Box<dyn Any + Send>>, x: u64, timer: bool) -> u64 {
    let (reply, answer) = oneshot::channel();
    let cell: Box<dyn Any + Send> = Box::new((Some(x), Some(reply)) as Cell);
    tx.send(cell).await.expect("send");
    if timer { with_timer(answer).await } else { answer.await.expect("answer") }
}

fn diag_request(c: &mut Criterion) {
    let mut g = group(c, "diag_request");
    for flavour in Flavour::ALL {
        let rt = flavour.runtime();
        let id = |v: &str| BenchmarkId::new(v, flavour.name());

        let tx = spawn_plain(&rt);
        for (name, timer) in [("raw", false), ("raw_timer", true)] {
            g.bench_function(id(name), |b| {
                b.iter_custom(|iters| {
                    measure(&rt, iters, &tx, move |tx| async move {
                        let mut sum = 0u64;
                        for i in 0..BATCH {
                            sum = sum.wrapping_add(plain_request(&tx, i, timer).await);
                        }
                        black_box(sum);
                    })
                });
            });
        }
        drop(tx);

        let tx = spawn_boxed(&rt);
        for (name, timer) in [("raw_boxed", false), ("raw_both", true)] {
            g.bench_function(id(name), |b| {
                b.iter_custom(|iters| {
                    measure(&rt, iters, &tx, move |tx| async move {
                        let mut sum = 0u64;
                        for i in 0..BATCH {
                            sum = sum.wrapping_add(boxed_request(&tx, i, timer).await);
                        }
                        black_box(sum);
                    })
                });
            });
        }
        drop(tx);

        let running = rt
            .block_on(
                Edri::builder().only_explicit().mailbox_capacity(CAPACITY).manager(Echoer).start(),
            )
            .expect("router");
        let ctx = running.ctx().clone();
        g.bench_function(id("edri"), |b| {
            b.iter_custom(|iters| {
                measure(&rt, iters, &ctx, |ctx| async move {
                    let mut sum = 0u64;
                    for i in 0..BATCH {
                        sum = sum.wrapping_add(ctx.request(Echo { x: i }).await.expect("req").y);
                    }
                    black_box(sum);
                })
            });
        });
        drop(ctx);
        rt.block_on(running.shutdown()).expect("shutdown");
    }
    g.finish();
}

// ---------------------------------------------------------------- request_64

/// How a raw requester of `diag_request_64` waits for its answer.
#[derive(Clone, Copy)]
enum Wait {
    /// `answer.await`.
    Plain,
    /// `yield_now()` once after sending, then `answer.await` (as EDRI since 515f4e8).
    YieldFirst,
    /// Yield once, then await with the 30 s deadline armed if still pending.
    YieldThenTimer,
}

async fn raw_64_batch(tx: mpsc::Sender<Plain>, wait: Wait) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let tx = tx.clone();
        set.spawn(async move {
            let mut sum = 0u64;
            for x in 0..BATCH / IN_FLIGHT {
                let (reply, answer) = oneshot::channel();
                tx.send((x, reply)).await.expect("send");
                let y = match wait {
                    Wait::Plain => answer.await.expect("answer"),
                    Wait::YieldFirst => {
                        tokio::task::yield_now().await;
                        answer.await.expect("answer")
                    }
                    Wait::YieldThenTimer => {
                        tokio::task::yield_now().await;
                        with_timer(answer).await
                    }
                };
                sum = sum.wrapping_add(y);
            }
            black_box(sum);
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("requester panicked");
    }
}

fn diag_request_64(c: &mut Criterion) {
    let mut g = group(c, "diag_request_64");
    for flavour in Flavour::ALL {
        let rt = flavour.runtime();
        let id = |v: &str| BenchmarkId::new(v, flavour.name());
        let tx = spawn_plain(&rt);
        for (name, wait) in [
            ("raw", Wait::Plain),
            ("raw_yield", Wait::YieldFirst),
            ("raw_yield_timer", Wait::YieldThenTimer),
        ] {
            g.bench_function(id(name), |b| {
                b.iter_custom(|iters| measure(&rt, iters, &tx, move |tx| raw_64_batch(tx, wait)));
            });
        }
        drop(tx);

        let running = rt
            .block_on(
                Edri::builder().only_explicit().mailbox_capacity(CAPACITY).manager(Echoer).start(),
            )
            .expect("router");
        let ctx = running.ctx().clone();
        g.bench_function(id("edri"), |b| {
            b.iter_custom(|iters| {
                measure(&rt, iters, &ctx, |ctx| async move {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..IN_FLIGHT {
                        let ctx = ctx.clone();
                        set.spawn(async move {
                            let mut sum = 0u64;
                            for x in 0..BATCH / IN_FLIGHT {
                                sum =
                                    sum.wrapping_add(ctx.request(Echo { x }).await.expect("req").y);
                            }
                            black_box(sum);
                        });
                    }
                    while let Some(r) = set.join_next().await {
                        r.expect("requester panicked");
                    }
                })
            });
        });
        drop(ctx);
        rt.block_on(running.shutdown()).expect("shutdown");
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    diag_notify(&mut c);
    diag_request(&mut c);
    diag_request_64(&mut c);
    c.final_summary();
}
