//! The three ways a handler runs: inline on its manager's task, on threads of its own,
//! and in a child process of this same binary (crash-isolated). Also a priority mailbox and
//! the built-in `HealthCheck`.
//!
//! `cargo run --release --example modes`

use edri::HealthCheck;
use edri::prelude::*;
use std::time::Duration;

/// Counts words (inline: cheap, uses the manager's state).
#[event(request)]
#[derive(Debug, Clone)]
pub struct CountWords {
    /// The text.
    pub text: String,
    /// How many words.
    #[response]
    pub words: usize,
}

/// Hashes a buffer (thread: CPU-bound, blocking is fine there).
#[event(request)]
#[derive(Debug, Clone)]
pub struct Checksum {
    /// The bytes.
    pub data: Vec<u8>,
    /// FNV-1a of the bytes.
    #[response]
    pub sum: u64,
}

/// Runs something risky (process: if it crashes, only its worker dies).
#[event(request)]
#[derive(Debug, Clone)]
pub struct Risky {
    /// Whether to crash.
    pub crash: bool,
    /// The worker's pid.
    #[response]
    pub pid: u32,
}

/// An alert, served before routine work by a priority mailbox.
#[event(notification, priority = 9)]
#[derive(Debug, Clone)]
pub struct Alert {
    /// What happened.
    pub text: String,
}

/// The three handler modes in one manager.
#[derive(Default)]
pub struct Tools {
    counted: u64,
}

#[manager]
impl Tools {
    #[solve]
    fn count(&mut self, ev: &CountWords) -> CountWordsResponse {
        self.counted += 1;
        CountWordsResponse { words: ev.text.split_whitespace().count() }
    }

    #[solve(thread, limit = 2)]
    fn checksum(ev: Checksum) -> ChecksumResponse {
        let sum = ev.data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        ChecksumResponse { sum }
    }

    #[solve(process, limit = 2)]
    fn risky(ev: Risky, ctx: Ctx) -> Result<RiskyResponse, Failure> {
        if ev.crash {
            std::process::abort();
        }
        ctx.blocking_notify(Alert {
            text: format!("worker {} did risky work", std::process::id()),
        })?;
        Ok(RiskyResponse { pid: std::process::id() })
    }
}

/// Prints alerts; its mailbox serves urgent lanes first.
#[derive(Default)]
pub struct Pager;

#[manager(queue = priority)]
impl Pager {
    #[solve]
    fn alert(&mut self, ev: &Alert) {
        println!("pager: {}", ev.text);
    }
}

#[edri::main]
async fn main() -> edri::Result<()> {
    tracing_subscriber::fmt().with_env_filter("error").init();
    let running = Edri::builder().worker_timeout(Duration::from_secs(5)).start().await?;
    let ctx = running.ctx();

    let words = ctx.request(CountWords { text: "three little words".into() }).await;
    println!("inline:  {:?} words", words.map(|r| r.words));

    let sum = ctx.request(Checksum { data: b"edri".to_vec() }).await;
    println!("thread:  checksum {:x?}", sum.map(|r| r.sum));

    match ctx.request(Risky { crash: false }).await {
        Ok(r) => {
            println!("process: answered by pid {} (this is pid {})", r.pid, std::process::id())
        }
        Err(f) => println!("process: failed: {f}"),
    }
    match ctx.request(Risky { crash: true }).await {
        Ok(_) => println!("process: the crash did not happen?"),
        Err(f) => println!("process: the worker crashed as asked: {f}"),
    }
    let again = ctx.request(Risky { crash: false }).await.map(|r| r.pid);
    println!("process: a fresh worker took over: {again:?}");

    ctx.notify_priority(Alert { text: "urgent, lane 0".into() }, 0).await.ok();

    let health = ctx.request(HealthCheck::default()).await;
    if let Ok(h) = health {
        for m in h.managers {
            println!(
                "health:  {:<12} processed {:>2}, crashed {}, workers {}",
                m.name, m.processed, m.crashed, m.workers
            );
        }
    }
    running.shutdown().await?;
    println!("done: every worker reaped");
    Ok(())
}
