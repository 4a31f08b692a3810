//! Cross-router throughput and latency: two EDRI routers joined through a real switch, each of
//! the three (switch, receiver router, driver router) its own process on 127.0.0.1.
//!
//! ```text
//! cargo run --release -p edri-benches --bin cross-router [-- --flavour current|multi]
//!     [--count N] [--switch-flavour multi|current]
//! ```
//!
//! The binary is all three processes: started with `EDRI_CROSS_BENCH_ROLE=switch` it runs
//! [`edri::switch::Server`] in-process and prints `listening on <addr>`; with
//! `EDRI_CROSS_BENCH_ROLE=receiver` it runs a router with [`Sink`] and [`Echoer`], joined to
//! the switch as `receiver`, and prints `ready`. Without a role it is the driver: it starts
//! both children (re-executing itself), starts its own router joined as `driver`, waits until
//! the receiver is connected and has announced its subscriptions, then measures:
//!
//! 1. `notify_1x64B`: one task sends `--count` (default 1 000 000) [`CrossTick`]s (64-byte
//!    payload) with `ctx.notify(..).await` as fast as it can (sending stops after 60 s), then
//!    polls [`CrossCount`] until the receiver has them all. Rate = received / (first send →
//!    the poll that saw them all). Lossless = every tick received once, in order.
//! 2. `notify_4x64B`: the same with 4 sender tasks, each its own ordered stream.
//! 3. `request_seq`: 20 000 sequential [`CrossEcho`] round trips (64 bytes each way): rate,
//!    p50, p99.
//! 4. `request_64`: 64 tasks looping `CrossEcho` until 200 000 responses: rate, p50, p99.
//! 5. `tunnel_64KiB`: one [`CrossStream`] tunnel to the receiver carries `--tunnel-mib`
//!    (default 512) MiB in 64 KiB [`edri::Chunk`]s; the acceptor counts the bytes and answers
//!    with the total once the driver closed. Rate = MiB / (open → total received), beside raw
//!    tokio TCP on 127.0.0.1 (one task writing 64 KiB buffers, one reading) in this process.
//! 6. `tunnel_inproc_64KiB`: the same tunnel inside one router of this process (no switch),
//!    beside a raw `tokio::sync::mpsc` channel of 16 `Vec<u8>` chunks between two tasks.
//!
//! `--only notify|request|tunnel` runs one group of workloads.
//! `--flavour current` (default) runs both routers on a current-thread tokio runtime,
//! `--flavour multi` on a 2-worker multi-thread runtime; the switch runs on one thread, as the
//! `edri-switch` binary does, unless `--switch-flavour multi` (2 workers). Every wait is bounded; the children are killed (by pid)
//! when the driver ends, also on panic, and exit by themselves when the driver's end of their
//! stdin closes (the driver was killed).

use edri::Running;
use edri::prelude::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SECRET: &str = "cross-router-bench";
const ROLE_ENV: &str = "EDRI_CROSS_BENCH_ROLE";
const SWITCH_ENV: &str = "EDRI_CROSS_BENCH_SWITCH";
const FLAVOUR_ENV: &str = "EDRI_CROSS_BENCH_FLAVOUR";
const RECEIVER: &str = "receiver";

/// Payload bytes of every tick and echo.
const PAD: usize = 64;
/// Default number of notifications per notify workload.
const DEFAULT_COUNT: u64 = 1_000_000;
/// Sending stops after this long (the count actually sent is reported).
const SEND_LIMIT: Duration = Duration::from_secs(60);
/// How long the receiver may take to catch up after the last send.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Sender tasks of `notify_4x64B`.
const STREAMS: u32 = 4;
/// Timed requests of `request_seq`.
const SEQ_REQUESTS: usize = 20_000;
/// Total responses of `request_64`.
const CONCURRENT_REQUESTS: u64 = 200_000;
/// Requesters of `request_64`.
const IN_FLIGHT: usize = 64;
/// Untimed requests before each request workload.
const WARM_UP: usize = 2_000;
/// Time limit of each request workload.
const REQUEST_LIMIT: Duration = Duration::from_secs(120);
/// Timeout of each single request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of a child's first line and of the receiver's joining.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Time limit of the whole measurement.
const TOTAL_LIMIT: Duration = Duration::from_secs(900);

// ----- events and managers ------------------------------------------------------------------

/// One notification of an ordered stream: `n` counts from 0 in each `stream`.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct CrossTick {
    /// Which sender.
    pub stream: u32,
    /// Its position in the stream.
    pub n: u64,
    /// `PAD` bytes.
    pub pad: Vec<u8>,
}

/// What the receiver's [`Sink`] saw.
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossCount {
    /// Ticks received in order.
    #[response]
    pub received: u64,
    /// Ticks seen again (`n` not above the stream's last).
    #[response]
    pub duplicates: u64,
    /// Ticks that skipped ahead (`n` above the stream's last + 1).
    #[response]
    pub gaps: u64,
}

/// Forgets every stream and count.
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossReset {}

/// Answered with its own payload.
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossEcho {
    /// `PAD` bytes.
    pub pad: Vec<u8>,
    /// The same bytes, back.
    #[response]
    pub back: Vec<u8>,
}

/// A one-way stream of chunks; the acceptor answers with the bytes it received.
#[event(tunnel, send = edri::Chunk, receive = u64)]
pub struct CrossStream {}

/// Accepts [`CrossStream`].
pub struct StreamSink;

#[manager]
impl StreamSink {
    #[solve]
    fn stream(&mut self, _: &CrossStream, opening: Opening<CrossStream>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        ctx.spawn(async move {
            let mut bytes = 0u64;
            while let Some(chunk) = end.recv().await? {
                bytes += chunk.len() as u64;
            }
            end.send(bytes).await?;
            end.close();
            Ok::<_, Failure>(())
        });
    }
}

/// Answered by the driver's own router (a router needs a manager).
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossPing {}

/// Counts ticks and checks each stream's order.
#[derive(Default)]
pub struct Sink {
    received: u64,
    duplicates: u64,
    gaps: u64,
    /// The next `n` expected from each stream.
    next: HashMap<u32, u64>,
}

#[manager]
impl Sink {
    #[solve]
    fn tick(&mut self, ev: &CrossTick) {
        let next = self.next.entry(ev.stream).or_insert(0);
        if ev.n < *next {
            self.duplicates += 1;
            return;
        }
        if ev.n > *next {
            self.gaps += 1;
        }
        *next = ev.n + 1;
        self.received += 1;
    }

    #[solve]
    fn count(&mut self, _: &CrossCount) -> CrossCountResponse {
        CrossCountResponse { received: self.received, duplicates: self.duplicates, gaps: self.gaps }
    }

    #[solve]
    fn reset(&mut self, _: &CrossReset) -> CrossResetResponse {
        *self = Self::default();
        CrossResetResponse {}
    }
}

/// Answers [`CrossEcho`].
pub struct Echoer;

#[manager]
impl Echoer {
    #[solve]
    fn echo(&mut self, ev: &CrossEcho) -> CrossEchoResponse {
        CrossEchoResponse { back: ev.pad.clone() }
    }
}

/// The driver router's one manager.
pub struct Ctl;

#[manager]
impl Ctl {
    #[solve]
    fn ping(&mut self, _: &CrossPing) -> CrossPingResponse {
        CrossPingResponse {}
    }
}

// ----- options ------------------------------------------------------------------------------

/// A tokio runtime flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Current,
    Multi,
}

impl Flavour {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "current" | "current_thread" => Ok(Self::Current),
            "multi" | "multi_thread" => Ok(Self::Multi),
            other => Err(format!("unknown flavour `{other}`; expected `current` or `multi`")),
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Multi => "multi",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Current => "current_thread",
            Self::Multi => "multi_thread(2)",
        }
    }

    fn runtime(self) -> tokio::runtime::Runtime {
        let mut builder = match self {
            Self::Current => tokio::runtime::Builder::new_current_thread(),
            Self::Multi => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        };
        builder.enable_all().build().expect("tokio runtime")
    }
}

/// The driver's command line.
#[derive(Debug)]
struct Options {
    flavour: Flavour,
    switch_flavour: Flavour,
    count: u64,
    tunnel_mib: u64,
    only: Option<String>,
}

const USAGE: &str = "usage: cross-router [--flavour current|multi] [--switch-flavour multi|current] \
                     [--count N] [--tunnel-mib N] [--only notify|request|tunnel]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        flavour: Flavour::Current,
        switch_flavour: Flavour::Current,
        count: DEFAULT_COUNT,
        tunnel_mib: 512,
        only: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--flavour" => options.flavour = Flavour::parse(&value()?)?,
            "--switch-flavour" => options.switch_flavour = Flavour::parse(&value()?)?,
            "--count" => {
                let text = value()?.replace('_', "");
                options.count = text.parse().map_err(|e| format!("--count {text}: {e}"))?;
            }
            "--tunnel-mib" => {
                let text = value()?;
                options.tunnel_mib =
                    text.parse().map_err(|e| format!("--tunnel-mib {text}: {e}"))?;
            }
            "--only" => match value()?.as_str() {
                group @ ("notify" | "request" | "tunnel") => options.only = Some(group.into()),
                other => return Err(format!("--only {other}: expected notify, request or tunnel")),
            },
            // `cargo bench` style arguments are ignored.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(options)
}

// ----- the child processes ------------------------------------------------------------------

/// Exits this (child) process when its stdin closes: the driver is gone, however it ended.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
}

/// Role `switch`: the hub, in-process.
fn serve_switch(flavour: Flavour) {
    flavour.runtime().block_on(async {
        let server = match edri::switch::Server::bind("127.0.0.1:0", SECRET).await {
            Ok(server) => server,
            Err(e) => {
                println!("error: cannot listen: {e}");
                std::process::exit(3);
            }
        };
        match server.local_addr() {
            Ok(addr) => println!("listening on {addr}"),
            Err(e) => println!("error: no local address: {e}"),
        }
        let _ = std::io::stdout().flush();
        if let Err(e) = server.run().await {
            eprintln!("cross-router switch: {e}");
            std::process::exit(3);
        }
    });
}

/// Role `receiver`: the counting and echoing router.
fn serve_receiver(flavour: Flavour) {
    let switch = std::env::var(SWITCH_ENV).expect(SWITCH_ENV);
    flavour.runtime().block_on(async {
        let started = Edri::builder()
            .only_explicit()
            .manager(Sink::default())
            .manager(Echoer)
            .manager(StreamSink)
            .switch(edri::switch::Switch::new(switch).secret(SECRET).id(RECEIVER))
            .start()
            .await;
        match started {
            Ok(running) => {
                println!("ready");
                let _ = std::io::stdout().flush();
                running.wait_for_stop_signal().await;
                let _ = running.shutdown().await;
            }
            Err(e) => {
                println!("error: {e}");
                std::process::exit(3);
            }
        }
    });
}

/// A child process, killed by its pid (SIGKILL) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    /// The lines it prints on stdout.
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Re-executes this binary as `role`.
    fn start(role: &'static str, flavour: Flavour, switch: Option<&str>) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("current_exe"));
        command
            .env(ROLE_ENV, role)
            .env(FLAVOUR_ENV, flavour.arg())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(switch) = switch {
            command.env(SWITCH_ENV, switch);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start the {role}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { name: role, child, lines }
    }

    /// Its next line on stdout, waited for at most `limit`.
    fn line(&self, limit: Duration) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(line) => line.trim().to_owned(),
            Err(e) => panic!("the {} printed no line within {limit:?}: {e}", self.name),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- measuring ----------------------------------------------------------------------------

/// The `q` quantile of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn rate(count: u64, elapsed: Duration) -> String {
    let per_sec = count as f64 / elapsed.as_secs_f64().max(1e-9);
    if per_sec >= 1e6 {
        format!("{:.3} M/s", per_sec / 1e6)
    } else {
        format!("{:.1} k/s", per_sec / 1e3)
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The driver router's switch counters, for the report.
struct Counters {
    resent: u64,
    duplicates: u64,
    lost: u64,
    reconnects: u64,
}

fn counters(running: &Running) -> Counters {
    let s = running.switch().expect("joined to a switch");
    Counters { resent: s.resent, duplicates: s.duplicates, lost: s.lost, reconnects: s.reconnects }
}

/// Waits (at most `START_LIMIT`) until the receiver is connected and announced its
/// subscriptions and answers.
async fn wait_for_receiver(running: &Running) {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let status = running.switch().expect("joined to a switch");
        let ready = status.peers.iter().any(|p| {
            p.id == RECEIVER
                && p.connected
                && p.subscribes.iter().any(|e| e == "CrossTick")
                && ["CrossEcho", "CrossCount", "CrossReset", "CrossStream"]
                    .iter()
                    .all(|name| p.responds.iter().any(|e| e == name))
        });
        if ready && status.connected {
            return;
        }
        assert!(Instant::now() < deadline, "the receiver did not join in time: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The receiver's count, waited for at most `REQUEST_TIMEOUT`.
async fn count(ctx: &Ctx) -> Result<CrossCountResponse, Failure> {
    ctx.request(CrossCount {}).timeout(REQUEST_TIMEOUT).await
}

/// Sends ticks `0..count` of `stream` until done or `stop_at`; returns how many were sent.
async fn send_stream(
    ctx: Ctx,
    stream: u32,
    count: u64,
    stop_at: Instant,
) -> (u64, Option<Failure>) {
    for n in 0..count {
        if n % 1024 == 0 && Instant::now() >= stop_at {
            return (n, None);
        }
        if let Err(failure) = ctx.notify(CrossTick { stream, n, pad: vec![0xA5; PAD] }).await {
            return (n, Some(failure));
        }
    }
    (count, None)
}

/// Resets the receiver, warms the path up with a few ticks, resets again.
async fn prepare_notify(ctx: &Ctx) {
    ctx.request(CrossReset {}).timeout(REQUEST_TIMEOUT).await.expect("reset");
    let far = Instant::now() + Duration::from_secs(30);
    let (sent, failure) = send_stream(ctx.clone(), 0, 20_000, far).await;
    assert!(failure.is_none(), "warm-up failed: {failure:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = count(ctx).await.expect("count");
        if seen.received + seen.duplicates >= sent {
            break;
        }
        assert!(Instant::now() < deadline, "warm-up ticks not all received: {seen:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ctx.request(CrossReset {}).timeout(REQUEST_TIMEOUT).await.expect("reset");
}

/// `streams` tasks send `total` ticks between them; then polls until the receiver has them.
async fn notify_workload(running: &Running, name: &str, streams: u32, total: u64) {
    let ctx = running.ctx();
    prepare_notify(ctx).await;
    let before = counters(running);
    let begin = Instant::now();
    let stop_at = begin + SEND_LIMIT;
    let mut tasks = Vec::new();
    for stream in 0..streams {
        let share =
            total / u64::from(streams) + u64::from(u64::from(stream) < total % u64::from(streams));
        tasks.push(tokio::spawn(send_stream(ctx.clone(), stream, share, stop_at)));
    }
    let mut sent = 0;
    let mut failures = Vec::new();
    for task in tasks {
        let (n, failure) = task.await.expect("sender task");
        sent += n;
        failures.extend(failure);
    }
    let send_time = begin.elapsed();
    let drain_deadline = Instant::now() + DRAIN_LIMIT;
    let (seen, elapsed) = loop {
        match count(ctx).await {
            Ok(seen) if seen.received + seen.duplicates >= sent => {
                break (Some(seen), begin.elapsed());
            }
            Ok(seen) if Instant::now() > drain_deadline => break (Some(seen), begin.elapsed()),
            Err(failure) if Instant::now() > drain_deadline => {
                failures.push(failure);
                break (None, begin.elapsed());
            }
            Err(failure) => {
                eprintln!("{name}: count failed (retrying): {failure}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    };
    let after = counters(running);
    let (received, duplicates, gaps) =
        seen.map_or((0, 0, 0), |s| (s.received, s.duplicates, s.gaps));
    let lossless = failures.is_empty() && received == sent && duplicates == 0 && gaps == 0;
    let early = if sent < total { " (stopped at 60 s)" } else { "" };
    println!(
        "{name:<14} rate={:>12}  sent={sent}{early} received={received} duplicates={duplicates} \
         gaps={gaps} lossless={}  send={:.2}s total={:.2}s  switch: resent={} dup={} lost={} \
         reconnects={}",
        rate(received, elapsed),
        if lossless { "yes" } else { "NO" },
        send_time.as_secs_f64(),
        elapsed.as_secs_f64(),
        after.resent - before.resent,
        after.duplicates - before.duplicates,
        after.lost - before.lost,
        after.reconnects - before.reconnects,
    );
    for failure in failures.iter().take(3) {
        println!("  failure: {failure}");
    }
}

/// One echo round trip, timed; an error on a failure or a wrong answer.
async fn echo(ctx: &Ctx, pad: &[u8]) -> Result<Duration, String> {
    let t0 = Instant::now();
    let answer = ctx.request(CrossEcho { pad: pad.to_vec() }).timeout(REQUEST_TIMEOUT).await;
    let took = t0.elapsed();
    match answer {
        Ok(r) if r.back == pad => Ok(took),
        Ok(r) => Err(format!("wrong echo: {} bytes", r.back.len())),
        Err(failure) => Err(failure.to_string()),
    }
}

fn report_requests(name: &str, mut samples: Vec<Duration>, elapsed: Duration, errors: &[String]) {
    samples.sort_unstable();
    let us = |q: f64| quantile(&samples, q).as_secs_f64() * 1e6;
    println!(
        "{name:<14} rate={:>12}  p50={:>8.1} µs  p99={:>8.1} µs  max={:>9.1} µs  n={} failures={}",
        rate(samples.len() as u64, elapsed),
        us(0.50),
        us(0.99),
        us(1.0),
        samples.len(),
        errors.len(),
    );
    for error in errors.iter().take(3) {
        println!("  failure: {error}");
    }
}

/// `SEQ_REQUESTS` round trips, each awaited before the next.
async fn request_seq(ctx: &Ctx) {
    let pad = vec![0x5A; PAD];
    for _ in 0..WARM_UP {
        echo(ctx, &pad).await.expect("warm-up echo");
    }
    let mut samples = Vec::with_capacity(SEQ_REQUESTS);
    let mut errors = Vec::new();
    let begin = Instant::now();
    while samples.len() + errors.len() < SEQ_REQUESTS && begin.elapsed() < REQUEST_LIMIT {
        match echo(ctx, &pad).await {
            Ok(took) => samples.push(took),
            Err(e) => errors.push(e),
        }
    }
    report_requests("request_seq", samples, begin.elapsed(), &errors);
}

/// `IN_FLIGHT` tasks looping round trips until `CONCURRENT_REQUESTS` in all.
async fn request_64(ctx: &Ctx) {
    let pad = vec![0x5A; PAD];
    for _ in 0..WARM_UP {
        echo(ctx, &pad).await.expect("warm-up echo");
    }
    let tickets = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let stop_at = begin + REQUEST_LIMIT;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (ctx, tickets, pad) = (ctx.clone(), tickets.clone(), pad.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = Vec::new();
                while tickets.fetch_add(1, Ordering::Relaxed) < CONCURRENT_REQUESTS
                    && Instant::now() < stop_at
                {
                    match echo(&ctx, &pad).await {
                        Ok(took) => samples.push(took),
                        Err(e) => errors.push(e),
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(CONCURRENT_REQUESTS as usize);
    let mut errors = Vec::new();
    for task in tasks {
        let (s, e) = task.await.expect("requester task");
        samples.extend(s);
        errors.extend(e);
    }
    report_requests("request_64", samples, begin.elapsed(), &errors);
}

/// Bytes per tunnel chunk.
const CHUNK: usize = 64 << 10;

/// Sends `bytes` through a [`CrossStream`] tunnel opened from `ctx`; the time until the
/// acceptor's total came back.
async fn tunnel_stream(ctx: &Ctx, bytes: u64) -> Duration {
    let begin = Instant::now();
    let tunnel = ctx.open(CrossStream {}).timeout(REQUEST_TIMEOUT).await.expect("open");
    let (mut tx, mut rx) = tunnel.split();
    let chunk = vec![0x5A; CHUNK];
    for _ in 0..bytes / CHUNK as u64 {
        tx.send(edri::Chunk(chunk.clone())).await.expect("send");
    }
    tx.close();
    let total = tokio::time::timeout(REQUEST_LIMIT, rx.recv()).await.expect("in time");
    assert_eq!(total.expect("total"), Some(bytes), "the acceptor got every byte");
    begin.elapsed()
}

/// `bytes` over a tokio TCP connection on 127.0.0.1, 64 KiB writes, read by another task.
async fn raw_tcp(bytes: u64) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        while got < bytes {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
        got
    });
    let begin = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let chunk = vec![0x5A; CHUNK];
    for _ in 0..bytes / CHUNK as u64 {
        socket.write_all(&chunk).await.expect("write");
    }
    assert_eq!(reader.await.expect("reader"), bytes);
    begin.elapsed()
}

/// `bytes` through a `tokio::sync::mpsc` channel of 16 chunks between two tasks.
async fn raw_channel(bytes: u64) -> Duration {
    let begin = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let reader = tokio::spawn(async move {
        let mut got = 0u64;
        while let Some(chunk) = rx.recv().await {
            got += chunk.len() as u64;
        }
        got
    });
    let chunk = vec![0x5A; CHUNK];
    for _ in 0..bytes / CHUNK as u64 {
        tx.send(chunk.clone()).await.expect("send");
    }
    drop(tx);
    assert_eq!(reader.await.expect("reader"), bytes);
    begin.elapsed()
}

fn report_stream(name: &str, bytes: u64, edri: Duration, baseline: &str, raw: Duration) {
    let mib = bytes as f64 / f64::from(1 << 20);
    let (ours, theirs) = (mib / edri.as_secs_f64(), mib / raw.as_secs_f64());
    println!(
        "{name}: {mib:.0} MiB in {edri:.2?} = {ours:.0} MiB/s; {baseline} {theirs:.0} MiB/s; \
         ratio {:.2}",
        ours / theirs
    );
}

/// Every workload, on this process's router joined to `switch`.
async fn drive(options: &Options, switch: &str) {
    let running = Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .switch(edri::switch::Switch::new(switch).secret(SECRET).id("driver"))
        .start()
        .await
        .expect("start the driver's router");
    wait_for_receiver(&running).await;
    let group = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    if group("notify") {
        notify_workload(&running, "notify_1x64B", 1, options.count).await;
        notify_workload(&running, "notify_4x64B", STREAMS, options.count).await;
    }
    if group("request") {
        request_seq(running.ctx()).await;
        request_64(running.ctx()).await;
    }
    if group("tunnel") {
        let bytes = options.tunnel_mib << 20;
        let edri = tunnel_stream(running.ctx(), bytes).await;
        let raw = raw_tcp(bytes).await;
        report_stream("tunnel_64KiB", bytes, edri, "raw tokio TCP", raw);
        let local = Edri::builder()
            .only_explicit()
            .manager(StreamSink)
            .start()
            .await
            .expect("start an in-process router");
        let edri = tunnel_stream(local.ctx(), bytes).await;
        let raw = raw_channel(bytes).await;
        report_stream("tunnel_inproc_64KiB", bytes, edri, "raw tokio mpsc", raw);
        let _ = local.shutdown().await;
    }
    let status = running.switch().expect("joined to a switch");
    println!(
        "driver switch status: connected={} sent={} delivered={} resent={} duplicates={} lost={} \
         buffered={} reconnects={}",
        status.connected,
        status.sent,
        status.delivered,
        status.resent,
        status.duplicates,
        status.lost,
        status.buffered,
        status.reconnects,
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), running.shutdown()).await;
}

fn main() {
    edri::serve_if_worker();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        exit_with_parent();
        let flavour = std::env::var(FLAVOUR_ENV)
            .ok()
            .and_then(|f| Flavour::parse(&f).ok())
            .unwrap_or(Flavour::Current);
        match role.as_str() {
            "switch" => serve_switch(flavour),
            "receiver" => serve_receiver(flavour),
            other => panic!("unknown {ROLE_ENV} `{other}`"),
        }
        return;
    }
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("cross-router: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "cross-router: routers {} (driver and receiver, separate processes), switch {}, \
         N={} notifications of {PAD} B, loadavg {}",
        options.flavour.describe(),
        options.switch_flavour.describe(),
        options.count,
        loadavg(),
    );
    let switch = Proc::start("switch", options.switch_flavour, None);
    let line = switch.line(START_LIMIT);
    let Some(addr) = line.strip_prefix("listening on ").map(str::to_owned) else {
        panic!("the switch said `{line}`");
    };
    let receiver = Proc::start("receiver", options.flavour, Some(&addr));
    let line = receiver.line(START_LIMIT);
    assert_eq!(line, "ready", "the receiver did not start");
    let runtime = options.flavour.runtime();
    let finished =
        runtime.block_on(async { tokio::time::timeout(TOTAL_LIMIT, drive(&options, &addr)).await });
    drop(runtime);
    if finished.is_err() {
        println!("cross-router: gave up after {TOTAL_LIMIT:?}");
    }
    println!("cross-router: done, loadavg {}", loadavg());
    drop(receiver);
    drop(switch);
}
