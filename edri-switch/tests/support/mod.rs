//! What the switch tests share: the events and managers the routers run, router and switch
//! processes, a fault-injecting proxy, and the runner.
//!
//! Each test binary is `harness = false`: it is the test runner, and also every router:
//! started with `EDRI_SWITCH_TEST_ROLE` set, it runs one router with the managers that role
//! names.

#![allow(dead_code, missing_docs, unreachable_pub)]

use edri::Running;
use edri::prelude::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const SECRET: &str = "test-secret";
pub const ROLE_ENV: &str = "EDRI_SWITCH_TEST_ROLE";

// ----- events and managers the routers run --------------------------------------------------

/// One event of a numbered stream.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Tick {
    pub n: u64,
    pub pad: Vec<u8>,
}

/// What the counter saw.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Report {
    #[response]
    pub received: u64,
    #[response]
    pub duplicates: u64,
    #[response]
    pub out_of_order: u64,
    #[response]
    pub last: u64,
}

/// Answered by every router that runs `Echo`.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Shout {
    pub text: String,
    #[response]
    pub echo: String,
    #[response]
    pub router: String,
}

/// Answered after `ms` milliseconds.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Slow {
    pub ms: u64,
}

/// Every router answers with its id (for `request_all`).
#[event(request)]
#[derive(Debug, Clone)]
pub struct Who {
    #[response]
    pub router: String,
}

/// Nobody answers this.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Nobody {}

/// Starts sending `count` ticks at `per_sec` from the streamer's router.
#[event(request)]
#[derive(Debug, Clone)]
pub struct StartStream {
    pub first: u64,
    pub count: u64,
    pub per_sec: u64,
}

/// How many ticks the streamer has sent.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Progress {
    #[response]
    pub sent: u64,
}

/// Counts ticks: duplicates and order.
#[derive(Default)]
pub struct Counter {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    last: Option<u64>,
    seen: HashSet<u64>,
}

#[manager]
impl Counter {
    #[solve]
    fn tick(&mut self, ev: &Tick) {
        if !self.seen.insert(ev.n) {
            self.duplicates += 1;
            return;
        }
        self.received += 1;
        if self.last.is_some_and(|last| ev.n != last + 1) {
            self.out_of_order += 1;
        }
        self.last = Some(ev.n);
    }

    #[solve]
    fn report(&mut self, _: &Report) -> ReportResponse {
        ReportResponse {
            received: self.received,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            last: self.last.unwrap_or(0),
        }
    }
}

pub fn router_id() -> String {
    std::env::var("EDRI_TEST_ROUTER").unwrap_or_else(|_| "ctl".into())
}

/// Answers `Shout`, `Slow` and `Who`.
#[derive(Default)]
pub struct Echo;

#[manager]
impl Echo {
    #[solve]
    fn shout(&mut self, ev: &Shout) -> Result<ShoutResponse, Failure> {
        if ev.text == "fail" {
            return Err(Failure::conflict("asked to fail"));
        }
        Ok(ShoutResponse { echo: ev.text.to_uppercase(), router: router_id() })
    }

    #[solve]
    async fn slow(&mut self, ev: &Slow) -> SlowResponse {
        tokio::time::sleep(Duration::from_millis(ev.ms)).await;
        SlowResponse {}
    }

    #[solve]
    fn who(&mut self, _: &Who) -> WhoResponse {
        WhoResponse { router: router_id() }
    }
}

/// Sends ticks on request, paced.
#[derive(Default)]
pub struct Streamer {
    sent: Arc<AtomicU64>,
}

#[manager]
impl Streamer {
    #[solve]
    fn start_stream(&mut self, ev: &StartStream, ctx: &Ctx) -> StartStreamResponse {
        let (ctx, sent, count, per_sec) = (ctx.clone(), self.sent.clone(), ev.count, ev.per_sec);
        let first = ev.first;
        ctx.clone().spawn(async move {
            let begin = tokio::time::Instant::now();
            for i in 0..count {
                let n = first + i;
                let due = begin + Duration::from_micros(i * 1_000_000 / per_sec.max(1));
                tokio::time::sleep_until(due).await;
                if ctx.notify(Tick { n, pad: vec![7; 48] }).await.is_err() {
                    return;
                }
                sent.store(i + 1, Ordering::Release);
            }
        });
        StartStreamResponse {}
    }

    #[solve]
    fn progress(&mut self, _: &Progress) -> ProgressResponse {
        ProgressResponse { sent: self.sent.load(Ordering::Acquire) }
    }
}

/// Uppercases every chunk and sends it back.
#[event(tunnel, send = edri::Chunk, receive = edri::Chunk)]
pub struct Upper {}

/// Uppercases every chunk in a worker process of the accepting router.
#[event(tunnel, send = edri::Chunk, receive = edri::Chunk)]
pub struct UpperInWorker {}

/// Always refused.
#[event(tunnel, send = u64, receive = u64)]
pub struct Refused {}

/// Nobody accepts it.
#[event(tunnel, send = u64, receive = u64)]
pub struct Orphan {}

/// Echoes numbers; the acceptor panics at number `at`.
#[event(tunnel, send = u64, receive = u64)]
pub struct Fragile {
    pub at: u64,
}

/// Checks that it receives 0, 1, 2, .. and, once the opener closed, answers with
/// `(received, out of order)`; takes one item every `pause_ms`.
#[event(tunnel, send = u64, receive = (u64, u64))]
pub struct Check {
    pub pause_ms: u64,
}

/// Accepts tunnels on the router that runs it.
#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn upper(&mut self, _: &Upper, opening: Opening<Upper>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        ctx.spawn(async move {
            while let Some(mut chunk) = end.recv().await? {
                chunk.make_ascii_uppercase();
                end.send(chunk).await?;
            }
            end.close();
            Ok::<_, Failure>(())
        });
    }

    #[solve(process)]
    fn upper_in_worker(_: UpperInWorker, opening: Opening<UpperInWorker>) -> Result<(), Failure> {
        let mut end = opening.accept()?;
        while let Some(mut chunk) = end.blocking_recv()? {
            chunk.make_ascii_uppercase();
            end.blocking_send(chunk)?;
        }
        end.close();
        Ok(())
    }

    #[solve]
    fn refused(&mut self, _: &Refused, opening: Opening<Refused>) {
        opening.reject(Failure::forbidden("not for you"));
    }

    #[solve]
    fn fragile(&mut self, ev: &Fragile, opening: Opening<Fragile>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        let at = ev.at;
        ctx.spawn(async move {
            while let Ok(Some(n)) = end.recv().await {
                assert!(n != at, "the Fragile acceptor breaks at {n}, on purpose");
                let _ = end.send(n).await;
            }
        });
    }

    #[solve]
    fn check(&mut self, ev: &Check, opening: Opening<Check>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        let pause = Duration::from_millis(ev.pause_ms);
        ctx.spawn(async move {
            let (mut received, mut out_of_order) = (0, 0);
            while let Some(n) = end.recv().await? {
                if n != received {
                    out_of_order += 1;
                }
                received += 1;
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            end.send((received, out_of_order)).await?;
            end.close();
            Ok::<_, Failure>(())
        });
    }
}

/// Handles about 400 ticks a second (a mailbox of 256) and appends the number of each
/// handled tick to the file named by `EDRI_TEST_LOG`, so that what a killed router handled
/// is known.
#[derive(Default)]
pub struct SlowCounter {
    log: Option<std::fs::File>,
}

#[manager(capacity = 256)]
impl SlowCounter {
    #[solve]
    async fn tick(&mut self, ev: &Tick) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let log = self.log.get_or_insert_with(|| {
            let path = std::env::var("EDRI_TEST_LOG").expect("EDRI_TEST_LOG");
            std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the log")
        });
        std::io::Write::write_all(log, format!("{}\n", ev.n).as_bytes()).expect("log a tick");
    }
}

/// The test runner's own router needs one manager.
#[derive(Default)]
pub struct Ctl;

#[manager]
impl Ctl {
    #[solve]
    fn who(&mut self, _: &Who) -> WhoResponse {
        WhoResponse { router: "ctl".into() }
    }
}

// ----- a router process ---------------------------------------------------------------------

/// Runs one router: `EDRI_SWITCH_TEST_ROLE` lists its managers (`counter,echo,streamer`).
pub fn serve_role(role: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let switch = std::env::var("EDRI_TEST_SWITCH").expect("EDRI_TEST_SWITCH");
        let mut builder = Edri::builder().only_explicit();
        for part in role.split(',') {
            builder = match part {
                "counter" => builder.manager(Counter::default()),
                "echo" => builder.manager(Echo),
                "streamer" => builder.manager(Streamer::default()),
                "converter" => builder.manager(Converter),
                "slowcounter" => builder.manager(SlowCounter::default()),
                other => panic!("unknown manager {other}"),
            };
        }
        let secret = std::env::var("EDRI_TEST_SECRET").unwrap_or_else(|_| SECRET.into());
        let secret = if secret.is_empty() { SECRET.to_owned() } else { secret };
        let config = edri::switch::Switch::new(switch).secret(secret).id(router_id());
        match builder.switch(config).start().await {
            Ok(running) => {
                println!("ready");
                running.wait_for_stop_signal().await;
                running.shutdown().await.unwrap();
            }
            Err(e) => {
                println!("error: {e}");
                std::process::exit(3);
            }
        }
    });
}

// ----- processes ----------------------------------------------------------------------------

/// A child process that is killed (by its pid, SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `edri-switch` on `addr` and waits for its first line.
pub fn switch(addr: &str) -> (Proc, String) {
    let (proc, addr, _) = switch_with(addr, false);
    (proc, addr)
}

/// [`switch`], with its log (standard error, `RUST_LOG=info`) line by line.
pub fn switch_logged(addr: &str) -> (Proc, String, std::sync::mpsc::Receiver<String>) {
    let (proc, addr, log) = switch_with(addr, true);
    (proc, addr, log.expect("piped"))
}

fn switch_with(
    addr: &str,
    piped: bool,
) -> (Proc, String, Option<std::sync::mpsc::Receiver<String>>) {
    let stderr = if piped { Stdio::piped() } else { Stdio::inherit() };
    let mut child = Command::new(env!("CARGO_BIN_EXE_edri-switch"))
        .args(["--listen", addr])
        .env("EDRI_SWITCH_SECRET", SECRET)
        .env("RUST_LOG", if piped { "info" } else { "warn" })
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start edri-switch");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("edri-switch listening on ").expect(&line).to_owned();
    let log = child.stderr.take().map(|stderr| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        rx
    });
    (Proc { child }, addr, log)
}

/// Starts a router process running `managers`, joined to `switch` as `id`; waits until it
/// started. Returns its first line too (`ready`, or `error: ...`).
pub fn router(id: &str, managers: &str, switch: &str) -> (Proc, String) {
    router_with_secret(id, managers, switch, SECRET)
}

pub fn router_with_secret(id: &str, managers: &str, switch: &str, secret: &str) -> (Proc, String) {
    router_env(id, managers, switch, &[("EDRI_TEST_SECRET", secret)])
}

/// [`router`] with more environment variables (`EDRI_TEST_SECRET`, `EDRI_TEST_LOG`).
pub fn router_env(id: &str, managers: &str, switch: &str, env: &[(&str, &str)]) -> (Proc, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .envs(env.iter().copied())
        .env(ROLE_ENV, managers)
        .env("EDRI_TEST_ROUTER", id)
        .env("EDRI_TEST_SWITCH", switch)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a router");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (Proc { child }, line.trim().to_owned())
}

/// This process's own router, joined to `switch` as `ctl`.
pub async fn ctl(switch: &str) -> Running {
    Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .switch(edri::switch::Switch::new(switch).secret(SECRET).id("ctl"))
        .start()
        .await
        .expect("start the ctl router")
}

/// Waits (at most 20 s) until `running` sees every router of `ids` connected.
pub async fn wait_for_peers(running: &Running, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = running.switch().unwrap();
        let up: HashSet<&str> =
            status.peers.iter().filter(|p| p.connected).map(|p| p.id.as_str()).collect();
        if ids.iter().all(|id| up.contains(id)) {
            return;
        }
        assert!(Instant::now() < deadline, "routers {ids:?} did not all join: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- a fault-injecting proxy --------------------------------------------------------------

/// A TCP proxy in front of the switch that can cut every connection through it, and refuse
/// new ones, until restored.
pub struct Proxy {
    pub addr: String,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                if c.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(&target).await else { continue };
                let (c, g) = (c.clone(), g.clone());
                tokio::spawn(pipe(client, upstream, c, g));
            }
        });
        Self { addr, cut, generation }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

/// Copies both ways until either side closes or the proxy cuts.
pub async fn pipe(a: TcpStream, b: TcpStream, cut: Arc<AtomicBool>, generation: Arc<AtomicU64>) {
    let born = generation.load(Ordering::Acquire);
    let alive = move || !cut.load(Ordering::Acquire) && generation.load(Ordering::Acquire) == born;
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    // Either direction ending drops both halves of both sockets: the connection is cut.
    tokio::select! {
        () = copy(ar, bw, alive.clone()) => {}
        () = copy(br, aw, alive) => {}
    }
}

/// Copies one direction while `alive` (checked at least every 50 ms).
pub async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    alive: impl Fn() -> bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(Duration::from_millis(50), from.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_) => 0,
        };
        if !alive() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Polls the counter until it received `count` ticks (bounded).
pub async fn wait_for_count(ctx: &Ctx, count: u64, limit: Duration) -> ReportResponse {
    let deadline = Instant::now() + limit;
    loop {
        let report = ctx.request(Report {}).timeout(Duration::from_secs(2)).await;
        match report {
            Ok(report) if report.received >= count || Instant::now() > deadline => return report,
            Err(failure) if Instant::now() > deadline => panic!("no report: {failure}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

// ----- runner -------------------------------------------------------------------------------

pub type Test = (&'static str, fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>);

/// Serves a router when started as one; otherwise runs `tests` (those whose name contains an
/// argument, if any are given), each on a fresh runtime with a 120 s bound.
pub fn run(tests: Vec<Test>) {
    edri::serve_if_worker();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        serve_role(&role);
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let begin = Instant::now();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async { tokio::time::timeout(Duration::from_secs(120), test()).await })
        }));
        drop(runtime);
        match result {
            Ok(Ok(())) => println!("test {name} ... ok ({:.1?})", begin.elapsed()),
            Ok(Err(_)) => {
                failed += 1;
                println!("test {name} ... FAILED: timed out after 120 s");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    if failed > 0 {
        println!("{failed} failed");
        std::process::exit(1);
    }
}
