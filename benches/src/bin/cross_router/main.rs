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
use std::io::Write;
use std::sync::Arc;
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

mod children;
mod cpu;
mod events;
mod options;
mod report;
mod workloads;

use children::*;
use events::*;
use options::*;
use report::*;
use workloads::*;

/// Every workload, on this process's router joined through `join`.
async fn drive(
    options: &Options,
    transport: Transport,
    join: &Join,
    cpu: cpu::Parts,
) -> Vec<Outcome> {
    let running = join
        .join(Edri::builder().only_explicit().manager(Ctl), "driver")
        .start()
        .await
        .expect("start the driver's router");
    wait_for_receiver(&running).await;
    let target = Target::Edri(running.ctx().clone());
    let side = Side { transport, target, running: Some(&running), cpu };
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
async fn drive_raw(options: &Options, url: &str, namespace: &str, cpu: cpu::Parts) -> Vec<Outcome> {
    let target = raw::RawTarget::connect(url, namespace).await.expect("connect to NATS");
    let target = Target::Raw(Box::new(target));
    let side = Side { transport: Transport::Raw, target, running: None, cpu };
    workloads(options, &side).await
}

/// Every workload through the relay twin at `addr`.
async fn drive_relay(options: &Options, addr: &str, cpu: cpu::Parts) -> Vec<Outcome> {
    let target = relay::RelayTarget::connect(addr).await.expect("connect to the relay");
    let side =
        Side { transport: Transport::Relay, target: Target::Relay(target), running: None, cpu };
    workloads(options, &side).await
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
    // CPU per operation: this process, the receiver, and what is between them.
    let mut cpu =
        cpu::Parts(vec![("driver", std::process::id()), ("receiver", receiver.child.id())]);
    match (children.first(), hub) {
        (Some(between), _) => cpu.0.push((between.name, between.child.id())),
        (None, Some(hub)) => {
            let server = cpu::child_named(hub.guard.child.id(), "nats-server");
            cpu.0.extend(server.map(|pid| ("nats-server", pid)));
        }
        (None, None) => {}
    }
    children.push(receiver);
    let runtime = options.flavour.runtime();
    let finished = runtime.block_on(async {
        let work = async {
            match (&join, transport) {
                (Join::Nats { url, namespace }, Transport::Raw) => {
                    drive_raw(options, url, namespace, cpu).await
                }
                (Join::Relay(addr), _) => drive_relay(options, addr, cpu).await,
                _ => drive(options, transport, &join, cpu).await,
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
