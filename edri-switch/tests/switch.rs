//! Several routers through a real `edri-switch`, each router a real process on 127.0.0.1.
//!
//! `harness = false`: this binary is the test runner, and also every router: started with
//! `EDRI_SWITCH_TEST_ROLE` set, it runs one router with the managers that role names.

#![allow(missing_docs)]

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

const SECRET: &str = "test-secret";
const ROLE_ENV: &str = "EDRI_SWITCH_TEST_ROLE";

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

fn router_id() -> String {
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
fn serve_role(role: &str) {
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
                other => panic!("unknown manager {other}"),
            };
        }
        let secret = std::env::var("EDRI_TEST_SECRET").unwrap_or_else(|_| SECRET.into());
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
struct Proc {
    child: Child,
}

impl Proc {
    fn kill(&mut self) {
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
fn switch(addr: &str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edri-switch"))
        .args(["--listen", addr])
        .env("EDRI_SWITCH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start edri-switch");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("edri-switch listening on ").expect(&line).to_owned();
    (Proc { child }, addr)
}

/// Starts a router process running `managers`, joined to `switch` as `id`; waits until it
/// started. Returns its first line too (`ready`, or `error: ...`).
fn router(id: &str, managers: &str, switch: &str) -> (Proc, String) {
    router_with_secret(id, managers, switch, SECRET)
}

fn router_with_secret(id: &str, managers: &str, switch: &str, secret: &str) -> (Proc, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("EDRI_TEST_SECRET", secret)
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
async fn ctl(switch: &str) -> Running {
    Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .switch(edri::switch::Switch::new(switch).secret(SECRET).id("ctl"))
        .start()
        .await
        .expect("start the ctl router")
}

/// Waits (at most 20 s) until `running` sees every router of `ids` connected.
async fn wait_for_peers(running: &Running, ids: &[&str]) {
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
struct Proxy {
    addr: String,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(target: String) -> Self {
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

    fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

/// Copies both ways until either side closes or the proxy cuts.
async fn pipe(a: TcpStream, b: TcpStream, cut: Arc<AtomicBool>, generation: Arc<AtomicU64>) {
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
async fn copy(
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

// ----- tests --------------------------------------------------------------------------------

/// Notifications, requests, request_all, round-robin, Unavailable, timeouts and failures
/// between four routers (three processes and this one).
async fn cross_router() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let (_a, ready_a) = router("a", "streamer", &addr);
    let (_b, ready_b) = router("b", "counter,echo", &addr);
    let (_c, ready_c) = router("c", "echo", &addr);
    assert_eq!((ready_a.as_str(), ready_b.as_str(), ready_c.as_str()), ("ready", "ready", "ready"));
    let running = ctl(&addr).await;
    wait_for_peers(&running, &["a", "b", "c"]).await;
    let ctx = running.ctx();

    // A notification from this router reaches the counter on b.
    for n in 0..10 {
        ctx.notify(Tick { n, pad: vec![] }).await.unwrap();
    }
    ctx.try_notify(Tick { n: 10, pad: vec![] }).unwrap();
    // A request goes to one router; answers come back here only.
    let mut routers = HashSet::new();
    for i in 0..6 {
        let r = ctx.request(Shout { text: format!("hi {i}") }).await.unwrap();
        assert_eq!(r.echo, format!("HI {i}"));
        routers.insert(r.router);
    }
    assert_eq!(
        routers,
        HashSet::from(["b".to_owned(), "c".to_owned()]),
        "round-robin over b and c"
    );
    let report = ctx.request(Report {}).await.unwrap();
    assert_eq!((report.received, report.duplicates, report.out_of_order), (11, 0, 0));

    // A failure keeps its status across routers.
    let failure = ctx.request(Shout { text: "fail".into() }).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Conflict, "{failure}");

    // request_all: this router's responder and every other router's.
    let all = ctx.request_all(Who {}).await;
    let mut ids: Vec<String> = all.into_iter().map(|r| r.unwrap().router).collect();
    ids.sort();
    assert_eq!(ids, ["b", "c", "ctl"]);

    // Nobody answers: at once.
    let begin = Instant::now();
    let failure = ctx.request(Nobody {}).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    assert!(begin.elapsed() < Duration::from_secs(1));

    // The requester's timeout holds across routers.
    let begin = Instant::now();
    let failure =
        ctx.request(Slow { ms: 3_000 }).timeout(Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Timeout, "{failure}");
    let took = begin.elapsed();
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1_500), "{took:?}");
    ctx.request(Slow { ms: 10 }).await.unwrap();

    // A manager on router a streams to the counter on b.
    ctx.request(StartStream { first: 11, count: 500, per_sec: 100_000 }).await.unwrap();
    let report = wait_for_count(ctx, 511, Duration::from_secs(20)).await;
    assert_eq!(report.received, 511);
    assert_eq!((report.duplicates, report.out_of_order), (0, 0));

    let status = running.switch().unwrap();
    assert!(status.connected && status.lost == 0, "{status:?}");
    running.shutdown().await.unwrap();
}

/// A router with another secret is refused, and says so; the others go on.
async fn wrong_secret() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let (mut intruder, line) = router_with_secret("x", "counter", &addr, "not the secret");
    assert!(line.starts_with("error: ") && line.contains("authentication failed"), "{line}");
    assert_eq!(intruder.child.wait().unwrap().code(), Some(3));
    let (_b, ready) = router("b", "counter", &addr);
    assert_eq!(ready, "ready");
    let running = ctl(&addr).await;
    wait_for_peers(&running, &["b"]).await;
    assert!(running.switch().unwrap().peers.iter().all(|p| p.id != "x"));
    running.shutdown().await.unwrap();
}

/// The buffer for an absent router is bounded (senders wait), and what stays unacknowledged
/// beyond the outage window is given up and counted, not kept forever.
async fn bounded_buffer_and_outage_window() {
    const BUFFER: usize = 256 << 10;
    let (_switch, addr) = switch("127.0.0.1:0");
    let (mut b, ready) = router("b", "counter", &addr);
    assert_eq!(ready, "ready");
    let config = edri::switch::Switch::new(addr.as_str())
        .secret(SECRET)
        .id("ctl")
        .buffer(BUFFER)
        .outage_window(Duration::from_secs(2));
    let running =
        Edri::builder().only_explicit().manager(Ctl).switch(config).start().await.unwrap();
    wait_for_peers(&running, &["b"]).await;
    b.kill();
    // The switch tells this router that b is gone (down: it may come back).
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.switch().unwrap().peers.iter().any(|p| p.id == "b" && p.connected) {
        assert!(Instant::now() < deadline, "b still shown connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Events for b are kept until the buffer is full; then the sender waits.
    let ctx = running.ctx();
    let mut accepted = 0u64;
    let blocked = loop {
        let tick = Tick { n: accepted, pad: vec![1; 1024] };
        match tokio::time::timeout(Duration::from_millis(200), ctx.notify(tick)).await {
            Ok(result) => {
                result.unwrap();
                accepted += 1;
            }
            Err(_) => break true,
        }
        if accepted > 10_000 {
            break false;
        }
    };
    assert!(blocked, "the sender never waited");
    let status = running.switch().unwrap();
    assert_eq!(status.buffered, accepted);
    let kept = accepted as usize * (1024 + 64);
    assert!(kept <= BUFFER + 2048, "kept ~{kept} bytes for a {BUFFER}-byte buffer");
    assert!(kept >= BUFFER / 2, "kept only ~{kept} bytes");
    // After the window, they are given up, counted, and the sender can go on.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let status = running.switch().unwrap();
    assert_eq!((status.lost, status.buffered), (accepted, 0), "{status:?}");
    let metrics = running.metrics();
    assert!(metrics.contains(&format!("edri_switch_lost_total {accepted}")), "{metrics}");
    // b stayed away beyond the window too: forgotten, nothing more is kept for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.switch().unwrap().peers.iter().any(|p| p.id == "b") {
        assert!(Instant::now() < deadline, "b never forgotten");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx.notify(Tick { n: 0, pad: vec![] }).await.unwrap();
    assert_eq!(running.switch().unwrap().buffered, 0);
    running.shutdown().await.unwrap();
}

/// Polls the counter until it received `count` ticks (bounded).
async fn wait_for_count(ctx: &Ctx, count: u64, limit: Duration) -> ReportResponse {
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

/// How the outage tests break the link.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// A proxy between the sending router and the switch cuts every connection for 10 s.
    Proxy,
    /// The switch is killed with SIGKILL and restarted on the same port 5 s later.
    KillSwitch,
}

/// 1 000 events/s for 20 s from router a to router b, with an outage after 5 s: the counter
/// on b receives every one of them once, in order.
async fn outage(kind: Outage) {
    let (mut switch_proc, addr) = switch("127.0.0.1:0");
    let proxy = Proxy::start(addr.clone()).await;
    let sender_switch = match kind {
        Outage::Proxy => proxy.addr.clone(),
        Outage::KillSwitch => addr.clone(),
    };
    let (_a, ready_a) = router("a", "streamer", &sender_switch);
    let (_b, ready_b) = router("b", "counter", &addr);
    assert_eq!((ready_a.as_str(), ready_b.as_str()), ("ready", "ready"));
    let running = ctl(&addr).await;
    wait_for_peers(&running, &["a", "b"]).await;
    let ctx = running.ctx();
    const COUNT: u64 = 20_000;
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 1_000 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (stalled_from, stalled_to) = match kind {
        Outage::Proxy => {
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let during = ctx.request(Report {}).await.unwrap();
            tokio::time::sleep(Duration::from_secs(8)).await;
            let later = ctx.request(Report {}).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            proxy.restore();
            (during.received, later.received)
        }
        Outage::KillSwitch => {
            switch_proc.kill();
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (restarted, again) = switch(&addr);
            assert_eq!(again, addr);
            switch_proc = restarted;
            wait_for_peers(&running, &["a", "b"]).await;
            (0, 0)
        }
    };
    // Nothing arrived while the sender was cut off: the outage was real.
    assert_eq!(stalled_from, stalled_to, "ticks arrived through a cut link");
    let report = wait_for_count(ctx, COUNT, Duration::from_secs(60)).await;
    println!("  {kind:?}: {report:?}");
    assert_eq!(
        (report.received, report.duplicates, report.out_of_order, report.last),
        (COUNT, 0, 0, COUNT - 1),
        "lost, duplicated or reordered ticks"
    );
    running.shutdown().await.unwrap();
    drop(switch_proc);
}

/// Chunk `i` of a test stream: lower-case letters, different in every chunk.
fn chunk(i: usize, size: usize) -> edri::Chunk {
    edri::Chunk((0..size).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect())
}

/// Sends `chunks` chunks of `size` bytes through an uppercasing tunnel and checks that every
/// one comes back converted, once, in order.
async fn stream_upper<E>(tunnel: edri::Tunnel<E>, chunks: usize, size: usize)
where
    E: edri::TunnelEvent<Send = edri::Chunk, Receive = edri::Chunk>,
{
    let (mut tx, mut rx) = tunnel.split();
    let sender = tokio::spawn(async move {
        for i in 0..chunks {
            tx.send(chunk(i, size)).await.unwrap();
        }
        tx.close();
    });
    let mut received = 0;
    while let Some(got) = rx.recv().await.unwrap() {
        let mut want = chunk(received, size);
        want.make_ascii_uppercase();
        assert!(got == want, "chunk {received} differs");
        received += 1;
    }
    sender.await.unwrap();
    assert_eq!(received, chunks);
}

/// Tunnels from this router to an acceptor on router t: a 100 MiB stream, rejection, no
/// acceptor, a panicking acceptor, a slow receiver, 100 tunnels at once, and the acceptor's
/// router killed mid-stream.
async fn tunnels() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let (mut t, ready) = router("t", "converter", &addr);
    assert_eq!(ready, "ready");
    let outage = Duration::from_secs(2);
    let running = Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .switch(edri::switch::Switch::new(&addr).secret(SECRET).id("ctl").outage_window(outage))
        .start()
        .await
        .unwrap();
    wait_for_peers(&running, &["t"]).await;
    let ctx = running.ctx();

    // 100 MiB in 64 KiB chunks, uppercased on t: complete and in order.
    let (total, size) = (100usize << 20, 64usize << 10);
    let begin = Instant::now();
    stream_upper(ctx.open(Upper {}).await.unwrap(), total / size, size).await;
    let took = begin.elapsed();
    println!(
        "  100 MiB across routers (there and back) in {took:.2?}: {:.0} MiB/s",
        100.0 / took.as_secs_f64()
    );

    // The acceptor runs in a worker process of router t: two bridges in a row.
    stream_upper(ctx.open(UpperInWorker {}).await.unwrap(), 128, size).await;

    // An item too large for the link fails the tunnel, on both sides, and nothing else: the
    // next tunnel works.
    let mut tunnel = ctx.open(Upper {}).await.unwrap();
    tunnel.send(edri::Chunk(vec![b'x'; 64 << 20])).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), tunnel.recv()).await.unwrap();
    let err = err.unwrap_err();
    assert_eq!(err.status(), edri::Status::Invalid, "{err}");
    assert!(err.message().contains("above the limit"), "{err}");
    let mut tunnel = ctx.open(Upper {}).await.unwrap();
    tunnel.send(chunk(0, 10)).await.unwrap();
    assert_eq!(tunnel.recv().await.unwrap().map(|c| c.len()), Some(10));
    tunnel.close();
    assert_eq!(tunnel.recv().await.unwrap(), None);

    // Rejection and no acceptor.
    let err = ctx.open(Refused {}).await.unwrap_err();
    assert_eq!((err.status(), err.message()), (edri::Status::Forbidden, "not for you"));
    let err = ctx.open(Orphan {}).await.unwrap_err();
    assert_eq!(err.status(), edri::Status::Unavailable, "{err}");

    // The acceptor panics: the opener's next receive fails at once.
    let mut tunnel = ctx.open(Fragile { at: 5 }).await.unwrap();
    let begin = Instant::now();
    let mut n = 0;
    let failure = loop {
        if let Err(f) = tunnel.send(n).await {
            break f;
        }
        match tunnel.recv().await {
            Ok(Some(echoed)) => {
                assert_eq!(echoed, n);
                n += 1;
            }
            Ok(None) => panic!("a crash is not a clean end"),
            Err(f) => break f,
        }
    };
    assert_eq!(failure.status(), edri::Status::Crashed, "{failure}");
    assert!(begin.elapsed() < Duration::from_secs(1), "{:?}", begin.elapsed());

    // A slow receiver: the sender keeps at most its window here and its window in flight.
    let window = 8;
    let (mut tx, mut rx) = ctx.open(Check { pause_ms: 5 }).window(window).await.unwrap().split();
    let mut peak = 0;
    for n in 0..200 {
        tx.send(n).await.unwrap();
        peak = peak.max(tx.buffered());
    }
    tx.close();
    assert_eq!(rx.recv().await.unwrap(), Some((200, 0)));
    println!("  slow receiver across routers: at most {peak} items buffered (window {window})");
    assert!(peak <= 2 * window, "{peak}");

    // 100 tunnels at once.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ctx.open(Check { pause_ms: 0 }).await.unwrap().split();
            for n in 0..500 {
                tx.send(n).await.unwrap();
            }
            tx.close();
            rx.recv().await.unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Some((500, 0)));
    }
    // Every tunnel that ended is forgotten on this side (the acceptor's sides end with them).
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.switch().unwrap().tunnels > 0 {
        assert!(Instant::now() < deadline, "{:?}", running.switch().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The acceptor's router is killed mid-stream: the stream ends with an error once the
    // outage window is over, never a hang.
    let (mut tx, mut rx) = ctx.open(Check { pause_ms: 0 }).await.unwrap().split();
    tx.send(0).await.unwrap();
    t.kill();
    let begin = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
    let failure = ended.expect("the stream ended").unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    println!(
        "  acceptor's router killed: the stream failed after {:.1?}: {failure}",
        begin.elapsed()
    );
    let sent = tx.send(1).await;
    assert!(sent.is_err(), "{sent:?}");
    running.shutdown().await.unwrap();
}

/// A tunnel through a link cut for 3 s: every item arrives once, in order.
async fn tunnel_outage() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let proxy = Proxy::start(addr.clone()).await;
    let (_t, ready) = router("t", "converter", &addr);
    assert_eq!(ready, "ready");
    let running = ctl(&proxy.addr).await;
    wait_for_peers(&running, &["t"]).await;
    let ctx = running.ctx().clone();
    let (mut tx, mut rx) = ctx.open(Check { pause_ms: 0 }).await.unwrap().split();
    const COUNT: u64 = 6_000;
    let sender = tokio::spawn(async move {
        let begin = tokio::time::Instant::now();
        for n in 0..COUNT {
            tokio::time::sleep_until(begin + Duration::from_millis(n)).await;
            tx.send(n).await.unwrap();
        }
        tx.close();
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    sender.await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
    assert_eq!(report, Some((COUNT, 0)), "lost, duplicated or reordered items");
    let status = running.switch().unwrap();
    assert!(status.reconnects >= 1, "{status:?}");
    running.shutdown().await.unwrap();
}

/// A tunnel through a cut longer than the outage window: items were given up, so the tunnel
/// fails (on this side and on the acceptor's) instead of going on with a hole in its stream.
async fn tunnel_outage_beyond_window() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let proxy = Proxy::start(addr.clone()).await;
    let (_t, ready) = router("t", "converter", &addr);
    assert_eq!(ready, "ready");
    let running = Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .switch(
            edri::switch::Switch::new(&proxy.addr)
                .secret(SECRET)
                .id("ctl")
                .outage_window(Duration::from_secs(1)),
        )
        .start()
        .await
        .unwrap();
    wait_for_peers(&running, &["t"]).await;
    let (mut tx, mut rx) = running.ctx().open(Check { pause_ms: 0 }).await.unwrap().split();
    tx.send(0).await.unwrap();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    let ended = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
    let failure = ended.expect("the stream ended").unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    assert!(failure.message().contains("given up"), "{failure}");
    assert!(tx.send(2).await.is_err());
    let status = running.switch().unwrap();
    assert!(status.lost >= 1 && status.tunnels == 0, "{status:?}");
    running.shutdown().await.unwrap();
}

// ----- runner -------------------------------------------------------------------------------

type Test = (&'static str, fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>);

fn main() {
    edri::serve_if_worker();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        serve_role(&role);
        return;
    }
    let tests: Vec<Test> = vec![
        ("cross_router", || Box::pin(cross_router())),
        ("wrong_secret", || Box::pin(wrong_secret())),
        ("bounded_buffer_and_outage_window", || Box::pin(bounded_buffer_and_outage_window())),
        ("outage_proxy_cut", || Box::pin(outage(Outage::Proxy))),
        ("outage_switch_killed", || Box::pin(outage(Outage::KillSwitch))),
        ("tunnels", || Box::pin(tunnels())),
        ("tunnel_outage", || Box::pin(tunnel_outage())),
        ("tunnel_outage_beyond_window", || Box::pin(tunnel_outage_beyond_window())),
    ];
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
