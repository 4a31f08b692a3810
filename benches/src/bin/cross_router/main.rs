//! Cross-router throughput and latency: two EDRI routers joined through a real switch or
//! through NATS JetStream, and raw async-nats doing the same work, each party its own process
//! on 127.0.0.1.
//!
//! ```text
//! cargo run --release -p edri-benches --bin cross-router [-- --flavour current|multi]
//!     [--count N] [--switch-flavour multi|current] [--transport switch|nats|raw[,...]]
//! ```
//!
//! The binary is every process: started with `EDRI_CROSS_BENCH_ROLE=switch` it runs
//! [`edri::switch::Server`] in-process and prints `listening on <addr>`; with
//! `EDRI_CROSS_BENCH_ROLE=receiver` it runs a router with [`Sink`] and [`Echoer`], joined to
//! the switch (or to NATS) as `receiver`, and prints `ready`; `nats` guards the bench's own
//! `nats-server` ([`nats_hub`]); `raw-receiver` is the raw twin's receiver ([`raw`]). Without a
//! role it is the driver: for each `--transport` (default `switch`; a comma list runs several
//! in turn, each with fresh children, and ends with the ratios nats / raw) it starts the
//! children (re-executing itself), starts its own router joined as `driver`, waits until
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
//! `--transport relay` is the switch's twin ([`relay`]): the same notify and request workloads
//! as length-prefixed frames through a relay process, without routers; the run ends with the
//! ratios switch / relay when both ran.
//!
//! `--only notify|request|tunnel` runs one group of workloads. Tunnels do not cross NATS (the
//! transport refuses them): `nats` and `raw` skip them. `raw` runs workloads 1–4 with
//! async-nats directly ([`raw`]); `nats` and `raw` share one `nats-server` per invocation,
//! each run under its own namespace.
//! `--flavour current` (default) runs both routers on a current-thread tokio runtime,
//! `--flavour multi` on a 2-worker multi-thread runtime; the switch runs on one thread, as the
//! `edri-switch` binary does, unless `--switch-flavour multi` (2 workers). Every wait is
//! bounded. The children exit by themselves when the driver's end of their stdin closes (the
//! driver ended, also on panic, or was killed; the `nats` guard kills its server by pid first);
//! the driver closes it when a transport's run ends and kills a child (by pid) that is still
//! there 5 s later.

mod nats_hub;
mod raw;
mod relay;

use bytes::Bytes;
use edri::prelude::*;
use edri::{EdriBuilder, Running};
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
const NATS_ENV: &str = "EDRI_CROSS_BENCH_NATS";
const NAMESPACE_ENV: &str = "EDRI_CROSS_BENCH_NAMESPACE";
const RELAY_ENV: &str = "EDRI_CROSS_BENCH_RELAY";
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
/// Time limit of the measurement of one transport.
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

/// What a receiver saw of the ticks.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    received: u64,
    duplicates: u64,
    gaps: u64,
}

/// Counts ticks and checks each stream's order (the EDRI receiver's and the raw one's).
#[derive(Default)]
pub struct Tally {
    received: u64,
    duplicates: u64,
    gaps: u64,
    /// The next `n` expected from each stream.
    next: HashMap<u32, u64>,
}

impl Tally {
    fn tick(&mut self, stream: u32, n: u64) {
        let next = self.next.entry(stream).or_insert(0);
        if n < *next {
            self.duplicates += 1;
            return;
        }
        if n > *next {
            self.gaps += 1;
        }
        *next = n + 1;
        self.received += 1;
    }

    fn count(&self) -> Count {
        Count { received: self.received, duplicates: self.duplicates, gaps: self.gaps }
    }
}

/// Counts ticks and checks each stream's order.
#[derive(Default)]
pub struct Sink(Tally);

#[manager]
impl Sink {
    #[solve]
    fn tick(&mut self, ev: &CrossTick) {
        self.0.tick(ev.stream, ev.n);
    }

    #[solve]
    fn count(&mut self, _: &CrossCount) -> CrossCountResponse {
        let Count { received, duplicates, gaps } = self.0.count();
        CrossCountResponse { received, duplicates, gaps }
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

/// How the driver reaches the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Two routers joined through an `edri::switch::Server`.
    Switch,
    /// Two routers joined through NATS JetStream (`EdriBuilder::nats`).
    Nats,
    /// async-nats directly, no router: the NATS transport's twin.
    Raw,
    /// Length-prefixed frames through a relay process, no router: the switch's twin.
    Relay,
}

impl Transport {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "switch" => Ok(Self::Switch),
            "nats" => Ok(Self::Nats),
            "raw" => Ok(Self::Raw),
            "relay" => Ok(Self::Relay),
            other => {
                Err(format!("unknown transport `{other}`; expected switch, nats, raw or relay"))
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Switch => "switch",
            Self::Nats => "nats",
            Self::Raw => "raw",
            Self::Relay => "relay",
        }
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
    transports: Vec<Transport>,
}

const USAGE: &str = "usage: cross-router [--flavour current|multi] [--switch-flavour multi|current] \
                     [--count N] [--tunnel-mib N] [--only notify|request|tunnel] \
                     [--transport switch|nats|raw|relay[,...]]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        flavour: Flavour::Current,
        switch_flavour: Flavour::Current,
        count: DEFAULT_COUNT,
        tunnel_mib: 512,
        only: None,
        transports: Vec::new(),
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
            "--transport" => {
                for name in value()?.split(',') {
                    options.transports.push(Transport::parse(name)?);
                }
            }
            // `cargo bench` style arguments are ignored.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if options.transports.is_empty() {
        options.transports.push(Transport::Switch);
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

/// How a router joins the others (given to the receiver through its environment).
#[derive(Debug, Clone)]
enum Join {
    /// The switch at this address.
    Switch(String),
    /// The NATS server at this URL, under this namespace.
    Nats { url: String, namespace: String },
    /// No router: the relay twin's relay at this address.
    Relay(String),
}

impl Join {
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Switch(addr) => vec![(SWITCH_ENV, addr.clone())],
            Self::Nats { url, namespace } => {
                vec![(NATS_ENV, url.clone()), (NAMESPACE_ENV, namespace.clone())]
            }
            Self::Relay(addr) => vec![(RELAY_ENV, addr.clone())],
        }
    }

    fn from_env() -> Self {
        let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
        match std::env::var(SWITCH_ENV) {
            Ok(addr) => Self::Switch(addr),
            Err(_) => Self::Nats { url: var(NATS_ENV), namespace: var(NAMESPACE_ENV) },
        }
    }

    /// `builder` joined as router `id`.
    fn join(&self, builder: EdriBuilder, id: &str) -> EdriBuilder {
        match self {
            Self::Switch(addr) => {
                builder.switch(edri::switch::Switch::new(addr.clone()).secret(SECRET).id(id))
            }
            Self::Nats { url, namespace } => {
                builder.nats(edri::nats::Nats::new(url.clone()).namespace(namespace).id(id))
            }
            Self::Relay(_) => panic!("no router joins the relay twin"),
        }
    }
}

/// Role `receiver`: the counting and echoing router.
fn serve_receiver(flavour: Flavour) {
    let join = Join::from_env();
    flavour.runtime().block_on(async {
        let builder = Edri::builder()
            .only_explicit()
            .manager(Sink::default())
            .manager(Echoer)
            .manager(StreamSink);
        match join.join(builder, RECEIVER).start().await {
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

/// Role `raw-receiver`: the raw twin's receiver.
fn serve_raw_receiver(flavour: Flavour) {
    let Join::Nats { url, namespace } = Join::from_env() else {
        panic!("the raw receiver needs {NATS_ENV}");
    };
    if let Err(e) = flavour.runtime().block_on(raw::serve(&url, &namespace)) {
        println!("error: {e}");
        std::process::exit(3);
    }
}

/// A child process: its stdin closed when dropped (it exits then), killed by its pid
/// (SIGKILL) if it has not exited within `STOP_LIMIT`.
struct Proc {
    name: &'static str,
    child: Child,
    /// The lines it prints on stdout.
    lines: mpsc::Receiver<String>,
}

/// How long a child may take to exit once its stdin closed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

impl Proc {
    /// Re-executes this binary as `role`, with `env`.
    fn start(role: &'static str, flavour: Flavour, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("current_exe"));
        command
            .env(ROLE_ENV, role)
            .env(FLAVOUR_ENV, flavour.arg())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
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

    /// Its first line, which must start with `prefix`: the rest.
    fn expect(&self, prefix: &str) -> String {
        let line = self.line(START_LIMIT);
        match line.strip_prefix(prefix) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("the {} said `{line}`, not `{prefix}...`", self.name),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The `nats` guard kills its server when its stdin closes: give it the time to.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// A workload's figures, for the summary and the ratios.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    transport: Transport,
    workload: &'static str,
    /// Per second: notifications received, or requests answered.
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Lossless (notifications), or no failure (requests).
    ok: bool,
}

/// A router's link counters (switch or NATS), for the report.
struct Counters {
    link: &'static str,
    values: [(&'static str, u64); 4],
}

impl Counters {
    fn of(running: &Running) -> Self {
        if let Some(s) = running.switch() {
            let values = [
                ("resent", s.resent),
                ("dup", s.duplicates),
                ("lost", s.lost),
                ("reconnects", s.reconnects),
            ];
            return Self { link: "switch", values };
        }
        let s = running.nats().expect("joined to a switch or to NATS");
        let values = [
            ("redelivered", s.redelivered),
            ("dup", s.duplicates),
            ("lost", s.lost),
            ("reconnects", s.reconnects),
        ];
        Self { link: "nats", values }
    }

    /// `link: name=delta ...` since `before`.
    fn since(&self, before: &Self) -> String {
        let deltas: Vec<String> = self
            .values
            .iter()
            .zip(&before.values)
            .map(|((name, now), (_, then))| format!("{name}={}", now - then))
            .collect();
        format!("{}: {}", self.link, deltas.join(" "))
    }
}

/// Whether the receiver is among `peers` (id, connected, subscribes, responds), connected,
/// and announced its subscriptions and answers.
fn receiver_ready<'a>(
    mut peers: impl Iterator<Item = (&'a str, bool, &'a [String], &'a [String])>,
) -> bool {
    peers.any(|(id, connected, subscribes, responds)| {
        id == RECEIVER
            && connected
            && subscribes.iter().any(|e| e == "CrossTick")
            && ["CrossEcho", "CrossCount", "CrossReset"]
                .iter()
                .all(|name| responds.iter().any(|e| e == name))
    })
}

/// Waits (at most `START_LIMIT`) until the receiver is connected and announced its
/// subscriptions and answers.
async fn wait_for_receiver(running: &Running) {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let (ready, status) = match (running.switch(), running.nats()) {
            (Some(s), _) => {
                let peers = s.peers.iter();
                let peers =
                    peers.map(|p| (p.id.as_str(), p.connected, &p.subscribes[..], &p.responds[..]));
                (s.connected && receiver_ready(peers), format!("{s:?}"))
            }
            (None, Some(s)) => {
                let peers = s.peers.iter();
                let peers =
                    peers.map(|p| (p.id.as_str(), p.connected, &p.subscribes[..], &p.responds[..]));
                (s.connected && receiver_ready(peers), format!("{s:?}"))
            }
            (None, None) => panic!("the driver's router is joined to neither a switch nor NATS"),
        };
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "the receiver did not join in time: {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Where the workloads go: an EDRI router (joined through the switch or NATS), or raw
/// async-nats.
#[derive(Clone)]
enum Target {
    Edri(Ctx),
    Raw(Box<raw::RawTarget>),
    Relay(relay::RelayTarget),
}

impl Target {
    /// Forgets the receiver's counts.
    async fn reset(&self) -> Result<(), String> {
        match self {
            Self::Edri(ctx) => ctx
                .request(CrossReset {})
                .timeout(REQUEST_TIMEOUT)
                .await
                .map(drop)
                .map_err(|f| f.to_string()),
            Self::Raw(raw) => raw.reset().await,
            Self::Relay(relay) => relay.reset().await,
        }
    }

    /// The receiver's counts, waited for at most `REQUEST_TIMEOUT`.
    async fn count(&self) -> Result<Count, String> {
        match self {
            Self::Edri(ctx) => {
                let answer = ctx.request(CrossCount {}).timeout(REQUEST_TIMEOUT).await;
                let c = answer.map_err(|f| f.to_string())?;
                Ok(Count { received: c.received, duplicates: c.duplicates, gaps: c.gaps })
            }
            Self::Raw(raw) => raw.count().await,
            Self::Relay(relay) => relay.count().await,
        }
    }

    /// Sends ticks `0..count` of `stream` until done or `stop_at`; returns how many were sent.
    async fn send_stream(self, stream: u32, count: u64, stop_at: Instant) -> (u64, Option<String>) {
        let ctx = match self {
            Self::Edri(ctx) => ctx,
            Self::Raw(raw) => return (*raw).send_stream(stream, count, stop_at).await,
            Self::Relay(relay) => return relay.send_stream(stream, count, stop_at).await,
        };
        for n in 0..count {
            if n % 1024 == 0 && Instant::now() >= stop_at {
                return (n, None);
            }
            if let Err(failure) = ctx.notify(CrossTick { stream, n, pad: vec![0xA5; PAD] }).await {
                return (n, Some(failure.to_string()));
            }
        }
        (count, None)
    }

    /// One echo round trip, timed; an error on a failure or a wrong answer.
    async fn echo(&self, pad: &Bytes) -> Result<Duration, String> {
        let ctx = match self {
            Self::Edri(ctx) => ctx,
            Self::Raw(raw) => return raw.echo(pad).await,
            Self::Relay(relay) => return relay.echo(pad).await,
        };
        let t0 = Instant::now();
        let answer = ctx.request(CrossEcho { pad: pad.to_vec() }).timeout(REQUEST_TIMEOUT).await;
        let took = t0.elapsed();
        match answer {
            Ok(r) if r.back == *pad => Ok(took),
            Ok(r) => Err(format!("wrong echo: {} bytes", r.back.len())),
            Err(failure) => Err(failure.to_string()),
        }
    }
}

/// Resets the receiver, warms the path up with a few ticks, resets again.
async fn prepare_notify(target: &Target) {
    target.reset().await.expect("reset");
    let far = Instant::now() + Duration::from_secs(30);
    let (sent, failure) = target.clone().send_stream(0, 20_000, far).await;
    assert!(failure.is_none(), "warm-up failed: {failure:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = target.count().await.expect("count");
        if seen.received + seen.duplicates >= sent {
            break;
        }
        assert!(Instant::now() < deadline, "warm-up ticks not all received: {seen:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    target.reset().await.expect("reset");
}

/// `streams` tasks send `total` ticks between them; then polls until the receiver has them.
async fn notify_workload(side: &Side<'_>, name: &'static str, streams: u32, total: u64) -> Outcome {
    let target = &side.target;
    prepare_notify(target).await;
    let before = side.running.map(Counters::of);
    let begin = Instant::now();
    let stop_at = begin + SEND_LIMIT;
    let mut tasks = Vec::new();
    for stream in 0..streams {
        let share =
            total / u64::from(streams) + u64::from(u64::from(stream) < total % u64::from(streams));
        tasks.push(tokio::spawn(target.clone().send_stream(stream, share, stop_at)));
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
        match target.count().await {
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
    let link = match (side.running, &before) {
        (Some(running), Some(before)) => format!("  {}", Counters::of(running).since(before)),
        _ => String::new(),
    };
    let (received, duplicates, gaps) =
        seen.map_or((0, 0, 0), |s| (s.received, s.duplicates, s.gaps));
    let lossless = failures.is_empty() && received == sent && duplicates == 0 && gaps == 0;
    let early = if sent < total { " (stopped at 60 s)" } else { "" };
    println!(
        "{:<7}{name:<14} rate={:>12}  sent={sent}{early} received={received} \
         duplicates={duplicates} gaps={gaps} lossless={}  send={:.2}s total={:.2}s{link}",
        side.transport.name(),
        rate(received, elapsed),
        if lossless { "yes" } else { "NO" },
        send_time.as_secs_f64(),
        elapsed.as_secs_f64(),
    );
    for failure in failures.iter().take(3) {
        println!("  failure: {failure}");
    }
    Outcome {
        transport: side.transport,
        workload: name,
        rate: received as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        ok: lossless,
    }
}

fn report_requests(
    transport: Transport,
    name: &'static str,
    mut samples: Vec<Duration>,
    elapsed: Duration,
    errors: &[String],
) -> Outcome {
    samples.sort_unstable();
    let us = |q: f64| quantile(&samples, q).as_secs_f64() * 1e6;
    println!(
        "{:<7}{name:<14} rate={:>12}  p50={:>8.1} µs  p99={:>8.1} µs  max={:>9.1} µs  n={} \
         failures={}",
        transport.name(),
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
    Outcome {
        transport,
        workload: name,
        rate: samples.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: quantile(&samples, 0.50),
        p99: quantile(&samples, 0.99),
        ok: errors.is_empty(),
    }
}

/// Untimed round trips before a request workload.
async fn warm_up(target: &Target, pad: &Bytes) {
    for _ in 0..WARM_UP {
        target.echo(pad).await.expect("warm-up echo");
    }
}

/// `SEQ_REQUESTS` round trips, each awaited before the next.
async fn request_seq(side: &Side<'_>) -> Outcome {
    let pad = Bytes::from(vec![0x5A; PAD]);
    warm_up(&side.target, &pad).await;
    let mut samples = Vec::with_capacity(SEQ_REQUESTS);
    let mut errors = Vec::new();
    let begin = Instant::now();
    while samples.len() + errors.len() < SEQ_REQUESTS && begin.elapsed() < REQUEST_LIMIT {
        match side.target.echo(&pad).await {
            Ok(took) => samples.push(took),
            Err(e) => errors.push(e),
        }
    }
    report_requests(side.transport, "request_seq", samples, begin.elapsed(), &errors)
}

/// `IN_FLIGHT` tasks looping round trips until `CONCURRENT_REQUESTS` in all.
async fn request_64(side: &Side<'_>) -> Outcome {
    let pad = Bytes::from(vec![0x5A; PAD]);
    warm_up(&side.target, &pad).await;
    let tickets = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let stop_at = begin + REQUEST_LIMIT;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (target, tickets, pad) = (side.target.clone(), tickets.clone(), pad.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = Vec::new();
                while tickets.fetch_add(1, Ordering::Relaxed) < CONCURRENT_REQUESTS
                    && Instant::now() < stop_at
                {
                    match target.echo(&pad).await {
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
    report_requests(side.transport, "request_64", samples, begin.elapsed(), &errors)
}

/// One transport's driver side: where the workloads go, and its router if it has one.
struct Side<'a> {
    transport: Transport,
    target: Target,
    running: Option<&'a Running>,
}

/// The notify and request workloads (as `--only` selects) through `side`.
async fn workloads(options: &Options, side: &Side<'_>) -> Vec<Outcome> {
    let group = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    let mut outcomes = Vec::new();
    if group("notify") {
        outcomes.push(notify_workload(side, "notify_1x64B", 1, options.count).await);
        outcomes.push(notify_workload(side, "notify_4x64B", STREAMS, options.count).await);
    }
    if group("request") {
        outcomes.push(request_seq(side).await);
        outcomes.push(request_64(side).await);
    }
    outcomes
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

/// Every workload, on this process's router joined through `join`.
async fn drive(options: &Options, transport: Transport, join: &Join) -> Vec<Outcome> {
    let running = join
        .join(Edri::builder().only_explicit().manager(Ctl), "driver")
        .start()
        .await
        .expect("start the driver's router");
    wait_for_receiver(&running).await;
    let side =
        Side { transport, target: Target::Edri(running.ctx().clone()), running: Some(&running) };
    let outcomes = workloads(options, &side).await;
    let tunnels = options.only.as_deref().is_none_or(|only| only == "tunnel");
    if tunnels && transport == Transport::Nats {
        println!("{:<7}tunnels: skipped (NATS refuses tunnels across routers)", "nats");
    } else if tunnels {
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
    if let Some(s) = running.switch() {
        println!(
            "driver switch status: connected={} sent={} delivered={} resent={} duplicates={} \
             lost={} buffered={} reconnects={}",
            s.connected,
            s.sent,
            s.delivered,
            s.resent,
            s.duplicates,
            s.lost,
            s.buffered,
            s.reconnects,
        );
    }
    if let Some(s) = running.nats() {
        println!(
            "driver nats status: connected={} published={} duplicates={} lost={} buffered={} \
             reconnects={}",
            s.connected, s.published, s.duplicates, s.lost, s.buffered, s.reconnects,
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), running.shutdown()).await;
    outcomes
}

/// Every workload with async-nats directly.
async fn drive_raw(options: &Options, url: &str, namespace: &str) -> Vec<Outcome> {
    let target = raw::RawTarget::connect(url, namespace).await.expect("connect to NATS");
    let side =
        Side { transport: Transport::Raw, target: Target::Raw(Box::new(target)), running: None };
    workloads(options, &side).await
}

/// Every workload through the relay twin at `addr`.
async fn drive_relay(options: &Options, addr: &str) -> Vec<Outcome> {
    let target = relay::RelayTarget::connect(addr).await.expect("connect to the relay");
    let side = Side { transport: Transport::Relay, target: Target::Relay(target), running: None };
    workloads(options, &side).await
}

/// Role `relay` or `relay-receiver`: the relay twin's processes.
fn serve_relay(role: &str, flavour: Flavour) {
    let served = flavour.runtime().block_on(async {
        if role == "relay" {
            relay::serve().await
        } else {
            let addr = std::env::var(RELAY_ENV).map_err(|_| format!("{RELAY_ENV} is not set"))?;
            relay::receive(&addr).await
        }
    });
    if let Err(e) = served {
        println!("error: {e}");
        std::process::exit(3);
    }
}

/// The bench's `nats-server`: its guard process and client URL.
struct Hub {
    _guard: Proc,
    url: String,
}

impl Hub {
    fn start() -> Self {
        let guard = Proc::start("nats", Flavour::Current, &[]);
        let said = guard.expect("listening on ");
        let (addr, version) = said.split_once(' ').unwrap_or((&said, "?"));
        println!("nats-server: {version} on {addr}, JetStream with file storage in a temp dir");
        Self { url: format!("nats://{addr}"), _guard: guard }
    }
}

/// Run `index` of the invocation through `transport`: its children, then the workloads.
fn run(options: &Options, index: usize, transport: Transport, hub: Option<&Hub>) -> Vec<Outcome> {
    let namespace = format!("crossbench{index}");
    let nats = || Join::Nats {
        url: hub.expect("a nats-server").url.clone(),
        namespace: namespace.clone(),
    };
    let mut children = Vec::new();
    let join = match transport {
        Transport::Switch => {
            let switch = Proc::start("switch", options.switch_flavour, &[]);
            let join = Join::Switch(switch.expect("listening on "));
            children.push(switch);
            join
        }
        Transport::Nats | Transport::Raw => nats(),
        Transport::Relay => {
            let relay = Proc::start("relay", Flavour::Current, &[]);
            let join = Join::Relay(relay.expect("listening on "));
            children.push(relay);
            join
        }
    };
    let role = match transport {
        Transport::Raw => "raw-receiver",
        Transport::Relay => "relay-receiver",
        Transport::Switch | Transport::Nats => "receiver",
    };
    let receiver = Proc::start(role, options.flavour, &join.env());
    let said = receiver.line(START_LIMIT);
    assert_eq!(said, "ready", "the receiver did not start");
    children.push(receiver);
    let runtime = options.flavour.runtime();
    let finished = runtime.block_on(async {
        let work = async {
            match (&join, transport) {
                (Join::Nats { url, namespace }, Transport::Raw) => {
                    drive_raw(options, url, namespace).await
                }
                (Join::Relay(addr), _) => drive_relay(options, addr).await,
                _ => drive(options, transport, &join).await,
            }
        };
        tokio::time::timeout(TOTAL_LIMIT, work).await
    });
    drop(runtime);
    // The receiver first, then the switch.
    while let Some(child) = children.pop() {
        drop(child);
    }
    finished.unwrap_or_else(|_| {
        println!("cross-router: {} gave up after {TOTAL_LIMIT:?}", transport.name());
        Vec::new()
    })
}

/// The targets of a transport against its twin: the most `request_seq`'s p50 may be over the
/// twin's, the least `request_64`'s rate may be of the twin's, and for notifications either a
/// rate (`Rate`) or a ratio to the twin's (`Ratio`).
struct Targets {
    p50: f64,
    request_64: f64,
    notify: NotifyTarget,
}

enum NotifyTarget {
    Rate(f64),
    Ratio(f64),
}

/// Each NATS run against the raw run of the same rank (issue targets in `BENCH.md`), each
/// switch run against the relay run of the same rank.
fn summarize(outcomes: &[Outcome]) {
    let nats = Targets { p50: 1.2, request_64: 0.9, notify: NotifyTarget::Rate(150e3) };
    compare(outcomes, Transport::Nats, Transport::Raw, &nats);
    let switch = Targets { p50: 1.3, request_64: 0.6, notify: NotifyTarget::Ratio(0.6) };
    compare(outcomes, Transport::Switch, Transport::Relay, &switch);
}

fn compare(outcomes: &[Outcome], subject: Transport, twin: Transport, targets: &Targets) {
    if outcomes.iter().all(|o| o.transport != subject)
        || outcomes.iter().all(|o| o.transport != twin)
    {
        return;
    }
    let notify = match targets.notify {
        NotifyTarget::Rate(rate) => format!("notify lossless >= {:.0} k/s", rate / 1e3),
        NotifyTarget::Ratio(ratio) => format!("notify lossless >= {ratio} x {}", twin.name()),
    };
    println!(
        "ratios {} / {} (targets: {notify}; request_seq p50 <= {} x {}; request_64 >= {} x {})",
        subject.name(),
        twin.name(),
        targets.p50,
        twin.name(),
        targets.request_64,
        twin.name(),
    );
    let runs = |t: Transport| {
        let mut runs: Vec<Vec<&Outcome>> = Vec::new();
        for o in outcomes.iter().filter(|o| o.transport == t) {
            match runs.last_mut() {
                Some(run) if run.iter().all(|r| r.workload != o.workload) => run.push(o),
                _ => runs.push(vec![o]),
            }
        }
        runs
    };
    for (rank, (ours, theirs)) in runs(subject).iter().zip(runs(twin)).enumerate() {
        for n in ours {
            let Some(r) = theirs.iter().find(|r| r.workload == n.workload) else { continue };
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let verdict = |met: bool| if met { "met" } else { "MISSED" };
            let line = match n.workload {
                "request_seq" => {
                    let ratio = us(n.p50) / us(r.p50).max(1e-9);
                    format!(
                        "p50 {:.1} / {:.1} µs = {ratio:.2} ({}), p99 {:.1} / {:.1} µs = {:.2}",
                        us(n.p50),
                        us(r.p50),
                        verdict(ratio <= targets.p50 && n.ok),
                        us(n.p99),
                        us(r.p99),
                        us(n.p99) / us(r.p99).max(1e-9),
                    )
                }
                workload => {
                    let ratio = n.rate / r.rate.max(1e-9);
                    let met = match (workload, &targets.notify) {
                        ("request_64", _) => ratio >= targets.request_64,
                        (_, NotifyTarget::Rate(rate)) => n.rate >= *rate,
                        (_, NotifyTarget::Ratio(least)) => ratio >= *least,
                    };
                    format!(
                        "{:.1} / {:.1} k/s = {ratio:.2} ({}{})",
                        n.rate / 1e3,
                        r.rate / 1e3,
                        verdict(met && n.ok),
                        if n.ok { "" } else { ", not lossless / failures" },
                    )
                }
            };
            println!("  pair {}: {:<14} {line}", rank + 1, n.workload);
        }
    }
}

fn main() {
    edri::serve_if_worker();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let flavour = std::env::var(FLAVOUR_ENV)
            .ok()
            .and_then(|f| Flavour::parse(&f).ok())
            .unwrap_or(Flavour::Current);
        if role == "nats" {
            // Ends when its stdin closes, after killing its server.
            nats_hub::guard();
        }
        exit_with_parent();
        match role.as_str() {
            "switch" => serve_switch(flavour),
            "receiver" => serve_receiver(flavour),
            "raw-receiver" => serve_raw_receiver(flavour),
            "relay" | "relay-receiver" => serve_relay(&role, flavour),
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
    let names: Vec<&str> = options.transports.iter().map(|t| t.name()).collect();
    println!(
        "cross-router: transports {}, routers {} (driver and receiver, separate processes), \
         switch {}, N={} notifications of {PAD} B, loadavg {}",
        names.join(","),
        options.flavour.describe(),
        options.switch_flavour.describe(),
        options.count,
        loadavg(),
    );
    let hub = options
        .transports
        .iter()
        .any(|t| matches!(t, Transport::Nats | Transport::Raw))
        .then(Hub::start);
    let mut outcomes = Vec::new();
    for (index, transport) in options.transports.iter().enumerate() {
        outcomes.extend(run(&options, index, *transport, hub.as_ref()));
    }
    summarize(&outcomes);
    println!("cross-router: done, loadavg {}", loadavg());
    drop(hub);
}
