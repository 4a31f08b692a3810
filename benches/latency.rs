//! Round-trip percentiles of sequential requests (criterion gives no p99): EDRI's
//! `ctx.request(Echo)` against a raw tokio mpsc + oneshot echo task, on one runtime.
//!
//! Each variant runs `ROUNDS` interleaved rounds (raw, edri, raw, edri, ...) of at most
//! `SAMPLES` timed requests or `ROUND_TIME`, whichever comes first, after `WARM_UP` untimed
//! requests; the samples of all rounds are pooled. One line per variant and flavour.
//!
//! `cargo bench -p edri-benches --bench latency` (arguments are ignored). Set
//! `EDRI_LATENCY_FLAVOURS=current_thread` to skip the multi-thread runtime.

use edri::prelude::*;
use edri_benches::{CAPACITY, Echo, Echoer, Flavour, quantile};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const WARM_UP: u64 = 20_000;
const SAMPLES: usize = 200_000;
const ROUNDS: usize = 3;
const ROUND_TIME: Duration = Duration::from_secs(2);

type RawRequest = (u64, oneshot::Sender<u64>);

/// Times up to `SAMPLES` sequential calls of `call`, in nanoseconds.
async fn sample<F, Fut>(mut call: F) -> Vec<u64>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    for i in 0..WARM_UP {
        black_box(call(i).await);
    }
    let mut out = Vec::with_capacity(SAMPLES);
    let deadline = Instant::now() + ROUND_TIME;
    let mut i = 0u64;
    while out.len() < SAMPLES {
        let t0 = Instant::now();
        black_box(call(i).await);
        let t1 = Instant::now();
        out.push((t1 - t0).as_nanos() as u64);
        i += 1;
        if i.is_multiple_of(1024) && t1 > deadline {
            break;
        }
    }
    out
}

fn report(flavour: Flavour, variant: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let us = |q: f64| quantile(&ns, q) as f64 / 1000.0;
    println!(
        "latency {:<14} {:<4} n={:>7} p50={:.3} µs p90={:.3} µs p99={:.3} µs p99.9={:.3} µs max={:.1} µs",
        flavour.name(),
        variant,
        ns.len(),
        us(0.50),
        us(0.90),
        us(0.99),
        us(0.999),
        ns.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
}

fn run(flavour: Flavour) {
    let rt = flavour.runtime();
    let (edri, raw) = rt.block_on(async {
        tokio::spawn(async {
            let running = Edri::builder()
                .only_explicit()
                .mailbox_capacity(CAPACITY)
                .manager(Echoer)
                .start()
                .await
                .expect("router");
            let ctx = running.ctx().clone();

            let (tx, mut rx) = mpsc::channel::<RawRequest>(CAPACITY);
            tokio::spawn(async move {
                while let Some((x, reply)) = rx.recv().await {
                    let _ = reply.send(x + 1);
                }
            });

            let mut edri = Vec::new();
            let mut raw = Vec::new();
            let (tx_ref, ctx_ref) = (&tx, &ctx);
            for _ in 0..ROUNDS {
                raw.extend(
                    sample(move |x| async move {
                        let (reply, answer) = oneshot::channel();
                        tx_ref.send((x, reply)).await.expect("send");
                        answer.await.expect("answer")
                    })
                    .await,
                );
                edri.extend(
                    sample(move |x| async move {
                        ctx_ref.request(Echo { x }).await.expect("request").y
                    })
                    .await,
                );
            }
            drop(ctx);
            running.shutdown().await.expect("shutdown");
            (edri, raw)
        })
        .await
        .expect("latency task")
    });
    report(flavour, "raw", raw);
    report(flavour, "edri", edri);
}

fn main() {
    let only = std::env::var("EDRI_LATENCY_FLAVOURS").unwrap_or_default();
    for flavour in Flavour::ALL {
        if only.is_empty() || only.split(',').any(|f| f == flavour.name()) {
            run(flavour);
        }
    }
}
