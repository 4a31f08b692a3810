//! A small EDRI application: three managers, a notification fanned out to two of them, a
//! request, a request answered with a `Failure`, and a `request_all`.
//!
//! `cargo run --release --example quickstart` prints what happened and exits by itself.

use edri::prelude::*;
use std::time::Duration;

/// Announces an uploaded file to everyone interested.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct FileUploaded {
    /// Where the file is.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Asks for a division; the quotient comes back in `DivideResponse`.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Divide {
    /// Dividend.
    pub a: f64,
    /// Divisor.
    pub b: f64,
    /// The answer.
    #[response]
    pub quotient: f64,
}

/// Asks a manager how many files it has seen.
#[event(request, name = "stats.files")]
#[derive(Debug, Clone)]
pub struct FileStats {
    /// Files seen so far.
    #[response]
    pub seen: u64,
    /// Bytes seen so far.
    #[response]
    pub bytes: u64,
}

/// Answers `Divide`.
#[derive(Default)]
pub struct Calc {
    served: u64,
}

#[manager]
impl Calc {
    #[solve]
    fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> {
        if ev.b == 0.0 {
            return Err(Failure::invalid("division by zero"));
        }
        self.served += 1;
        Ok(DivideResponse { quotient: ev.a / ev.b })
    }
}

/// Indexes uploaded files and answers `FileStats`.
#[derive(Default)]
pub struct Indexer {
    seen: u64,
    bytes: u64,
}

#[manager]
impl Indexer {
    #[solve]
    fn uploaded(&mut self, ev: &FileUploaded) {
        self.seen += 1;
        self.bytes += ev.size;
        println!("indexer: indexed {} ({} bytes)", ev.path, ev.size);
    }

    #[solve]
    fn stats(&self, _: &FileStats) -> FileStatsResponse {
        FileStatsResponse { seen: self.seen, bytes: self.bytes }
    }
}

/// Also listens to uploads, and greets the start.
#[derive(Default)]
pub struct Auditor;

#[manager]
impl Auditor {
    #[solve]
    fn started(&mut self, _: &Started, ctx: &Ctx) {
        println!("auditor: started as `{}`", ctx.manager_name().unwrap_or("?"));
    }

    #[solve]
    async fn uploaded(&mut self, ev: &FileUploaded) {
        println!("auditor: saw upload of {}", ev.path);
    }
}

#[edri::main]
async fn main() -> edri::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();

    let running = Edri::builder().request_timeout(Duration::from_secs(2)).start().await?;
    println!("running managers: {:?}", running.managers());
    let ctx = running.ctx();

    for (path, size) in [("a.txt", 120), ("b.png", 4096)] {
        ctx.notify(FileUploaded { path: path.into(), size }).await.ok();
    }

    match ctx.request(Divide { a: 7.0, b: 2.0 }).await {
        Ok(r) => println!("7 / 2 = {}", r.quotient),
        Err(f) => println!("7 / 2 failed: {f}"),
    }
    match ctx.request(Divide { a: 1.0, b: 0.0 }).await {
        Ok(r) => println!("1 / 0 = {}", r.quotient),
        Err(f) => println!("1 / 0 failed as it should: {f}"),
    }
    for answer in ctx.request_all(FileStats {}).await {
        match answer {
            Ok(s) => println!("request_all: {} files, {} bytes", s.seen, s.bytes),
            Err(f) => println!("request_all: a responder failed: {f}"),
        }
    }

    running.shutdown().await?;
    println!("done");
    Ok(())
}
