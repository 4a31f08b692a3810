//! What is measured: the notify, request and tunnel workloads, and how each is reported.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `q` quantile of sorted samples.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn rate(count: u64, elapsed: Duration) -> String {
    let per_sec = count as f64 / elapsed.as_secs_f64().max(1e-9);
    if per_sec >= 1e6 {
        format!("{:.3} M/s", per_sec / 1e6)
    } else {
        format!("{:.1} k/s", per_sec / 1e3)
    }
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A workload's figures, for the summary and the ratios.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) transport: Transport,
    pub(crate) workload: &'static str,
    /// Per second: notifications received, or requests answered.
    pub(crate) rate: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Lossless (notifications), or no failure (requests).
    pub(crate) ok: bool,
    /// CPU microseconds per operation of every process it ran through (`NaN`: unknown).
    pub(crate) cpu_us: f64,
}

/// A router's link counters (switch or NATS), for the report.
pub(crate) struct Counters {
    pub(crate) link: &'static str,
    pub(crate) values: [(&'static str, u64); 4],
}

impl Counters {
    pub(crate) fn of(running: &Running) -> Self {
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
    pub(crate) fn since(&self, before: &Self) -> String {
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
pub(crate) fn receiver_ready<'a>(
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
pub(crate) async fn wait_for_receiver(running: &Running) {
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
pub(crate) enum Target {
    Edri(Ctx),
    Raw(Box<raw::RawTarget>),
    Relay(relay::RelayTarget),
}

impl Target {
    /// Forgets the receiver's counts.
    pub(crate) async fn reset(&self) -> Result<(), String> {
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
    pub(crate) async fn count(&self) -> Result<Count, String> {
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
    pub(crate) async fn send_stream(
        self,
        stream: u32,
        count: u64,
        stop_at: Instant,
    ) -> (u64, Option<String>) {
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
    pub(crate) async fn echo(&self, pad: &Bytes) -> Result<Duration, String> {
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
pub(crate) async fn prepare_notify(target: &Target) {
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
pub(crate) async fn notify_workload(
    side: &Side<'_>,
    name: &'static str,
    streams: u32,
    total: u64,
) -> Outcome {
    let target = &side.target;
    prepare_notify(target).await;
    let before = side.running.map(Counters::of);
    let cpu_before = side.cpu.take();
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
    let (cpu, cpu_us) = side.cpu.per_op(&cpu_before, received);
    println!("  {cpu}");
    Outcome {
        transport: side.transport,
        workload: name,
        rate: received as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        ok: lossless,
        cpu_us,
    }
}

pub(crate) fn report_requests(
    side: &Side<'_>,
    cpu_before: &cpu::Taken,
    name: &'static str,
    mut samples: Vec<Duration>,
    elapsed: Duration,
    errors: &[String],
) -> Outcome {
    let transport = side.transport;
    let (cpu, cpu_us) = side.cpu.per_op(cpu_before, samples.len() as u64);
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
    println!("  {cpu}");
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
        cpu_us,
    }
}

/// Untimed round trips before a request workload.
pub(crate) async fn warm_up(target: &Target, pad: &Bytes) {
    for _ in 0..WARM_UP {
        target.echo(pad).await.expect("warm-up echo");
    }
}

/// `SEQ_REQUESTS` round trips, each awaited before the next.
pub(crate) async fn request_seq(side: &Side<'_>) -> Outcome {
    let pad = Bytes::from(vec![0x5A; PAD]);
    warm_up(&side.target, &pad).await;
    let mut samples = Vec::with_capacity(SEQ_REQUESTS);
    let mut errors = Vec::new();
    let cpu_before = side.cpu.take();
    let begin = Instant::now();
    while samples.len() + errors.len() < SEQ_REQUESTS && begin.elapsed() < REQUEST_LIMIT {
        match side.target.echo(&pad).await {
            Ok(took) => samples.push(took),
            Err(e) => errors.push(e),
        }
    }
    report_requests(side, &cpu_before, "request_seq", samples, begin.elapsed(), &errors)
}

/// `IN_FLIGHT` tasks looping round trips until `CONCURRENT_REQUESTS` in all.
pub(crate) async fn request_64(side: &Side<'_>) -> Outcome {
    let pad = Bytes::from(vec![0x5A; PAD]);
    warm_up(&side.target, &pad).await;
    let tickets = Arc::new(AtomicU64::new(0));
    let cpu_before = side.cpu.take();
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
    report_requests(side, &cpu_before, "request_64", samples, begin.elapsed(), &errors)
}

/// One transport's driver side: where the workloads go, and its router if it has one.
pub(crate) struct Side<'a> {
    pub(crate) transport: Transport,
    pub(crate) target: Target,
    pub(crate) running: Option<&'a Running>,
    /// The processes its workloads run through.
    pub(crate) cpu: cpu::Parts,
}

/// The notify and request workloads (as `--only` selects) through `side`.
pub(crate) async fn workloads(options: &Options, side: &Side<'_>) -> Vec<Outcome> {
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
pub(crate) const CHUNK: usize = 64 << 10;

/// Sends `bytes` through a [`CrossStream`] tunnel opened from `ctx`; the time until the
/// acceptor's total came back.
pub(crate) async fn tunnel_stream(ctx: &Ctx, bytes: u64) -> Duration {
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
pub(crate) async fn raw_tcp(bytes: u64) -> Duration {
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
pub(crate) async fn raw_channel(bytes: u64) -> Duration {
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

pub(crate) fn report_stream(name: &str, bytes: u64, edri: Duration, baseline: &str, raw: Duration) {
    let mib = bytes as f64 / f64::from(1 << 20);
    let (ours, theirs) = (mib / edri.as_secs_f64(), mib / raw.as_secs_f64());
    println!(
        "{name}: {mib:.0} MiB in {edri:.2?} = {ours:.0} MiB/s; {baseline} {theirs:.0} MiB/s; \
         ratio {:.2}",
        ours / theirs
    );
}
