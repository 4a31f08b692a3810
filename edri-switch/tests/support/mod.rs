//! What the cross-router tests share: child router processes, the hub's transport
//! ([`transport::Transport`], implemented for the switch in [`switch`]), the events and
//! managers the routers run, a link-cutting proxy, and the runner.
//!
//! Each test binary is `harness = false`: it is the test runner, and also every router it
//! starts: started with `EDRI_TEST_ROLE` set, it runs one router with the managers that
//! role names, joined with the transport `EDRI_TEST_TRANSPORT` names.

#![allow(dead_code, missing_docs, unreachable_pub)]

pub mod managers;
pub mod nats;
pub mod switch;
pub mod transport;

pub use managers::*;
pub use transport::{Join, Link, Transport};

use edri::prelude::*;
use edri::{EdriBuilder, Running};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const ROLE_ENV: &str = "EDRI_TEST_ROLE";
pub const TRANSPORT_ENV: &str = "EDRI_TEST_TRANSPORT";
pub const ROUTER_ENV: &str = "EDRI_TEST_ROUTER";
/// Set: every router process logs to standard error (at `RUST_LOG`'s level, `warn`).
pub const TRACE_ENV: &str = "EDRI_TEST_TRACE";

// ----- a router process ---------------------------------------------------------------------

/// Runs one router: `role` lists its managers (`counter,echo,streamer`); it joins with the
/// transport and the [`Join`] its parent handed down.
fn serve_role(transports: &[&dyn Transport], role: &str) {
    let name = std::env::var(TRANSPORT_ENV).expect(TRANSPORT_ENV);
    let transport = *transports.iter().find(|t| t.name() == name).expect("a known transport");
    if std::env::var_os(TRACE_ENV).is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut builder = Edri::builder().only_explicit();
        for part in role.split(',') {
            builder = match part {
                "counter" => builder.manager(Counter::default()),
                "echo" => builder.manager(Echo::default()),
                "streamer" => builder.manager(Streamer::default()),
                "converter" => builder.manager(Converter),
                "slowcounter" => builder.manager(SlowCounter::default()),
                other => panic!("unknown manager {other}"),
            };
        }
        match transport.join(builder, &Join::from_env()).start().await {
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

/// Starts a router process running `managers`, joined with `transport` as `join` says;
/// waits until it started. Returns its first line too (`ready`, or `error: ...`).
pub fn router(transport: &dyn Transport, join: &Join, managers: &str) -> (Proc, String) {
    router_env(transport, join, managers, &[])
}

/// [`router`] with more environment variables (`EDRI_TEST_LOG`).
pub fn router_env(
    transport: &dyn Transport,
    join: &Join,
    managers: &str,
    env: &[(&str, &str)],
) -> (Proc, String) {
    router_exe(&std::env::current_exe().unwrap(), transport, join, managers, env)
}

/// [`router_env`] with the router built from another test binary, `exe`.
pub fn router_exe(
    exe: &std::path::Path,
    transport: &dyn Transport,
    join: &Join,
    managers: &str,
    env: &[(&str, &str)],
) -> (Proc, String) {
    let mut child = Command::new(exe)
        .envs(join.to_env())
        .envs(env.iter().copied())
        .env(ROLE_ENV, managers)
        .env(TRANSPORT_ENV, transport.name())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a router");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (Proc { child }, line.trim().to_owned())
}

/// This process's own router (`Ctl`, plus `more`'s managers), joined as `join` says.
pub async fn ctl_with(transport: &dyn Transport, join: &Join, more: EdriBuilder) -> Running {
    transport.join(more.manager(Ctl), join).start().await.expect("start this process's router")
}

/// This process's own router, joined to `addr` as `ctl`.
pub async fn ctl(transport: &dyn Transport, addr: &str) -> Running {
    ctl_with(transport, &Join::new(addr, "ctl"), Edri::builder().only_explicit()).await
}

/// This process's router, sending ticks (`Streamer`), joined to `addr` as `ctl`, with at
/// most `in_flight` events on their way to one router.
pub async fn sender(transport: &dyn Transport, addr: &str, in_flight: u32) -> Running {
    let join = Join::new(addr, "ctl").in_flight(in_flight);
    ctl_with(transport, &join, Edri::builder().only_explicit().manager(Streamer::default())).await
}

/// Waits (at most 20 s) until `running` sees every router of `ids` connected.
pub async fn wait_for_peers(transport: &dyn Transport, running: &Running, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let link = transport.link(running);
        if ids.iter().all(|id| link.is_up(id)) {
            return;
        }
        assert!(Instant::now() < deadline, "routers {ids:?} did not all join: {link:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most `limit`) until `done` holds for `running`'s link; returns the link.
pub async fn wait_for_link(
    transport: &dyn Transport,
    running: &Running,
    limit: Duration,
    what: &str,
    done: impl Fn(&Link) -> bool,
) -> Link {
    let deadline = Instant::now() + limit;
    loop {
        let link = transport.link(running);
        if done(&link) {
            return link;
        }
        assert!(Instant::now() < deadline, "{what} (after {limit:?}): {link:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- a fault-injecting proxy --------------------------------------------------------------

/// A TCP proxy in front of the hub that can cut every connection through it, and refuse
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

/// Sends 1 KiB ticks until one waits more than 200 ms (the sender's buffer is full); how many
/// were taken. Fails if 10 000 were taken without a wait.
pub async fn fill_until_blocked(ctx: &Ctx) -> u64 {
    let mut accepted = 0u64;
    loop {
        let tick = Tick { n: accepted, pad: vec![1; 1024] };
        match tokio::time::timeout(Duration::from_millis(200), ctx.notify(tick)).await {
            Ok(result) => {
                result.unwrap();
                accepted += 1;
            }
            Err(_) => return accepted,
        }
        assert!(accepted <= 10_000, "the sender never waited");
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

/// The numbers in a `SlowCounter` log, with how often each was handled.
pub fn handled(log: &std::path::Path) -> BTreeMap<u64, u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut seen = BTreeMap::new();
    // The last line may be half-written by a killed router.
    for line in text.lines().filter_map(|l| l.parse::<u64>().ok()) {
        *seen.entry(line).or_insert(0) += 1;
    }
    seen
}

// ----- runner -------------------------------------------------------------------------------

/// One test, run once for a transport.
pub type Case =
    fn(&'static dyn Transport) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Serves a router when started as one; otherwise runs every case for every transport, as
/// `<transport>::<case>` (only those whose name contains an argument, if any are given), each
/// on a fresh runtime with a 120 s bound; exits with 1 if any failed. A case that does not
/// hold for a transport ([`Transport::differs`]) is listed as not run, with the reason.
pub fn run(transports: &[&'static dyn Transport], cases: &[(&'static str, Case)]) {
    edri::serve_if_worker();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        serve_role(transports, &role);
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed, mut skipped) = (0, Vec::new(), 0);
    for &transport in transports {
        for &(case, test) in cases {
            let name = format!("{}::{case}", transport.name());
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            if let Some(why) = transport.differs(case) {
                println!("test {name} ... not run for this transport: {why}");
                skipped += 1;
                continue;
            }
            let begin = Instant::now();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(120), test(transport)).await
                })
            }));
            drop(runtime);
            match result {
                Ok(Ok(())) => {
                    passed += 1;
                    println!("test {name} ... ok ({:.1?})", begin.elapsed());
                }
                Ok(Err(_)) => {
                    println!("test {name} ... FAILED: timed out after 120 s");
                    failed.push(name);
                }
                Err(_) => {
                    println!("test {name} ... FAILED");
                    failed.push(name);
                }
            }
        }
    }
    nats::remove_stores();
    if skipped == 0 {
        println!("{passed} passed, {} failed", failed.len());
    } else {
        println!("{passed} passed, {} failed, {skipped} skipped", failed.len());
    }
    if !failed.is_empty() {
        println!("failed: {}", failed.join(", "));
        std::process::exit(1);
    }
}
