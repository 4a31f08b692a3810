#![allow(missing_docs)]
//! Traces across events: a chain PlaceOrder (inline) → PriceOrder (thread) → TaxRate (worker
//! process), then OrderPlaced (inline), is one trace: every handling span records the same
//! `trace_id`, and each one's `parent_span_id` is the `span_id` of the handler that sent its
//! event. In one router, and with the chain split over two router processes joined through a
//! switch. Each program runs this binary again (`harness = false`) with a capturing layer
//! that prints every closed `edri.deliver` span and every log line as JSON on stdout.

use edri::prelude::*;
use edri::switch::{Server, Switch};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

const ROLE: &str = "EDRI_TRACES_TEST_ROLE";
const SWITCH: &str = "EDRI_TRACES_TEST_SWITCH";
const SECRET: &str = "traces-secret";
const LIMIT: Duration = Duration::from_secs(60);

#[event(request)]
pub struct PlaceOrder {
    pub item: String,
    #[response]
    pub cents: u64,
}

#[event(request)]
pub struct PriceOrder {
    pub item: String,
    #[response]
    pub cents: u64,
}

#[event(request)]
pub struct TaxRate {
    pub cents: u64,
    #[response]
    pub tax: u64,
}

#[event(notification)]
pub struct OrderPlaced {
    pub cents: u64,
}

pub struct Shop;

#[manager]
impl Shop {
    #[solve]
    async fn place(&mut self, ev: &PlaceOrder, ctx: &Ctx) -> Result<PlaceOrderResponse, Failure> {
        let price = ctx.request(PriceOrder { item: ev.item.clone() }).await?;
        ctx.notify(OrderPlaced { cents: price.cents }).await?;
        Ok(PlaceOrderResponse { cents: price.cents })
    }
}

pub struct Pricing;

#[manager]
impl Pricing {
    #[solve(thread, limit = 2)]
    fn price(_ev: PriceOrder, ctx: Ctx) -> Result<PriceOrderResponse, Failure> {
        let tax = ctx.blocking_request(TaxRate { cents: 1_000 })?;
        Ok(PriceOrderResponse { cents: 1_000 + tax.tax })
    }
}

pub struct Tax;

#[manager]
impl Tax {
    #[solve(process)]
    fn rate(ev: TaxRate) -> TaxRateResponse {
        tracing::info!("tax computed in the worker");
        TaxRateResponse { tax: ev.cents / 5 }
    }
}

pub struct Mail;

#[manager]
impl Mail {
    #[solve]
    async fn placed(&mut self, _ev: &OrderPlaced) {}
}

// ----- the capturing layer -----------------------------------------------------------------

#[path = "support/span_fields.rs"]
mod span_fields;
use span_fields::{Fields, KeepFields};

/// Prints `SPAN {fields}` for every closed `edri.deliver` span and `LOG {fields}` for every
/// event, on stdout (the spans' fields kept by [`KeepFields`]).
struct Capture;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        println!("LOG {}", serde_json::to_string(&fields.0).unwrap());
    }

    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if span.name() != "edri.deliver" {
            return;
        }
        let mut fields = span.extensions().get::<Fields>().map(|f| f.0.clone()).unwrap_or_default();
        let parent =
            span.parent().and_then(|p| p.extensions().get::<Fields>()?.0.get("span_id").cloned());
        fields.insert("in_process_parent".into(), parent.unwrap_or_default());
        println!("SPAN {}", serde_json::to_string(&fields).unwrap());
    }
}

fn capture() {
    tracing_subscriber::registry()
        .with(KeepFields)
        .with(Capture)
        .with(tracing_subscriber::EnvFilter::new("edri_runtime=debug,edri::worker=info,info"))
        .init();
}

// ----- the programs ------------------------------------------------------------------------

async fn one_router() -> edri::Result<()> {
    let running = Edri::builder()
        .only_explicit()
        .manager(Shop)
        .manager(Pricing)
        .manager(Tax)
        .manager(Mail)
        .start()
        .await?;
    let placed = running.ctx().request(PlaceOrder { item: "tea".into() }).await?;
    assert_eq!(placed.cents, 1_200);
    running.shutdown().await?;
    println!("DONE");
    Ok(())
}

async fn front() -> edri::Result<()> {
    let addr = std::env::var(SWITCH).expect("the switch's address");
    let running = Edri::builder()
        .only_explicit()
        .manager(Shop)
        .switch(Switch::new(addr).secret(SECRET).id("front"))
        .start()
        .await?;
    let deadline = Instant::now() + LIMIT;
    while !running
        .topology()
        .routers
        .iter()
        .any(|r| r.id == "back" && r.connected && r.responds.iter().any(|e| e == "PriceOrder"))
    {
        assert!(Instant::now() < deadline, "the back router did not join");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let placed = running.ctx().request(PlaceOrder { item: "tea".into() }).await?;
    assert_eq!(placed.cents, 1_200);
    running.shutdown().await?;
    println!("DONE");
    Ok(())
}

async fn back() -> edri::Result<()> {
    let addr = std::env::var(SWITCH).expect("the switch's address");
    let running = Edri::builder()
        .only_explicit()
        .manager(Pricing)
        .manager(Tax)
        .manager(Mail)
        .switch(Switch::new(addr).secret(SECRET).id("back"))
        .start()
        .await?;
    println!("READY");
    // Runs until the test closes stdin.
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await.ok();
    running.shutdown().await
}

// ----- the test side -----------------------------------------------------------------------

/// A program of this binary: its stdout lines arrive on a channel; killed when dropped.
struct Program {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Program {
    fn start(role: &str, switch: Option<&str>) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env(ROLE, role).env("RUST_LOG", "edri_runtime=debug,info").env("NO_COLOR", "1");
        if let Some(addr) = switch {
            command.env(SWITCH, addr);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Reads lines until `done` holds for what was read (bounded).
    fn until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "{what} did not happen within {LIMIT:?}; read:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn spans(&self) -> Vec<BTreeMap<String, String>> {
        let spans = self.seen.iter().filter_map(|l| l.strip_prefix("SPAN "));
        spans.map(|s| serde_json::from_str(s).unwrap()).collect()
    }

    fn logs(&self) -> Vec<BTreeMap<String, String>> {
        let logs = self.seen.iter().filter_map(|l| l.strip_prefix("LOG "));
        logs.map(|s| serde_json::from_str(s).unwrap()).collect()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn span<'a>(spans: &'a [BTreeMap<String, String>], manager: &str) -> &'a BTreeMap<String, String> {
    spans
        .iter()
        .find(|s| s.get("manager").map(String::as_str) == Some(manager))
        .unwrap_or_else(|| panic!("no span of {manager} in {spans:#?}"))
}

/// The worker's log line of the `TaxRate` call: its handling span's fields are in the text
/// that the parent logged.
fn worker_line(logs: &[BTreeMap<String, String>]) -> String {
    logs.iter()
        .filter_map(|l| l.get("message"))
        .find(|m| m.contains("tax computed in the worker"))
        .unwrap_or_else(|| panic!("the worker's line is not in the log: {logs:#?}"))
        .clone()
}

/// Checks the chain: `shop` sent to `pricing` and `mail`, `pricing` to `tax` (the process
/// handler's span in the router), which ran the call in the worker (`worker`'s line).
fn check_chain(
    shop: &BTreeMap<String, String>,
    [pricing, tax, mail]: [&BTreeMap<String, String>; 3],
    worker: &str,
) {
    let trace = &shop["trace_id"];
    assert_eq!(trace.len(), 32, "{shop:?}");
    assert!(!shop.contains_key("parent_span_id"), "the chain starts at Shop: {shop:?}");
    for (s, parent) in [(pricing, shop), (mail, shop), (tax, pricing)] {
        assert_eq!(&s["trace_id"], trace, "another trace: {s:?}");
        assert_eq!(s["parent_span_id"], parent["span_id"], "{s:?} was sent by {parent:?}");
    }
    assert!(worker.contains(&format!("trace_id={trace}")), "worker not in the trace: {worker}");
    let parent = format!("parent_span_id={}", tax["span_id"]);
    assert!(worker.contains(&parent), "the worker's call is not the Tax handler's: {worker}");
}

fn has_spans(lines: &[String], managers: &[&str]) -> bool {
    managers.iter().all(|m| {
        lines.iter().any(|l| l.starts_with("SPAN ") && l.contains(&format!("\"manager\":\"{m}\"")))
    })
}

fn one_trace_in_one_router() {
    let mut program = Program::start("one", None);
    program.until("the chain", |lines| {
        lines.iter().any(|l| l == "DONE") && has_spans(lines, &["Shop", "Pricing", "Tax", "Mail"])
    });
    let spans = program.spans();
    let [shop, pricing, tax, mail] = ["Shop", "Pricing", "Tax", "Mail"].map(|m| span(&spans, m));
    check_chain(shop, [pricing, tax, mail], &worker_line(&program.logs()));
    // In one process each handling span is the child of its sender's span.
    assert_eq!(pricing["in_process_parent"], shop["span_id"], "{pricing:?}");
    assert_eq!(mail["in_process_parent"], shop["span_id"], "{mail:?}");
    assert_eq!(tax["in_process_parent"], pricing["span_id"], "{tax:?}");
}

fn one_trace_across_two_routers() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = runtime.block_on(Server::bind("127.0.0.1:0", SECRET)).unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let hub = runtime.spawn(server.run());
    let mut back = Program::start("back", Some(&addr));
    back.until("the back router's start", |lines| lines.iter().any(|l| l == "READY"));
    let mut front = Program::start("front", Some(&addr));
    front.until("the order", |lines| {
        lines.iter().any(|l| l == "DONE") && has_spans(lines, &["Shop"])
    });
    back.until("the back router's spans", |lines| has_spans(lines, &["Pricing", "Tax", "Mail"]));
    back.until("the worker's line", |lines| {
        lines.iter().any(|l| l.contains("tax computed in the worker"))
    });
    let (front_spans, back_spans) = (front.spans(), back.spans());
    let back_chain = ["Pricing", "Tax", "Mail"].map(|m| span(&back_spans, m));
    check_chain(span(&front_spans, "Shop"), back_chain, &worker_line(&back.logs()));
    hub.abort();
}

#[edri::main]
async fn main() -> edri::Result<()> {
    match std::env::var(ROLE).as_deref() {
        Ok("one") => {
            capture();
            return one_router().await;
        }
        Ok("front") => {
            capture();
            return front().await;
        }
        Ok("back") => {
            capture();
            return back().await;
        }
        _ => {}
    }
    let cases: [(&str, fn()); 2] = [
        ("one_trace_in_one_router", one_trace_in_one_router),
        ("one_trace_across_two_routers", one_trace_across_two_routers),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        // On a thread of its own: outside the runtime of `main`.
        match std::thread::spawn(case).join() {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("traces: {} passed, {failed} failed", cases.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
