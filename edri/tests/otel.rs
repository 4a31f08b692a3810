#![allow(missing_docs)]
//! The `otel` feature: a chain PlaceOrder (inline request) → OrderPlaced (notification to a
//! thread handler) → Record (inline request) is exported as one OpenTelemetry trace whose
//! span ids are EDRI's own: each exported span's parent is the span of the handler that sent
//! its event, and its ids are the ones the `edri.deliver` span recorded. In one router, and
//! with the chain split over two routers joined through a switch (the sender's span then is a
//! remote parent).

use edri::otel::opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use edri::prelude::*;
use edri::switch::{Server, Switch};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[event(request)]
pub struct PlaceOrder {
    pub item: String,
    #[response]
    pub cents: u64,
}

#[event(notification)]
pub struct OrderPlaced {
    pub cents: u64,
}

#[event(request)]
pub struct Record {
    pub cents: u64,
}

pub struct Shop;

#[manager]
impl Shop {
    #[solve]
    async fn place(&mut self, _ev: &PlaceOrder, ctx: &Ctx) -> Result<PlaceOrderResponse, Failure> {
        ctx.notify(OrderPlaced { cents: 1_200 }).await?;
        Ok(PlaceOrderResponse { cents: 1_200 })
    }
}

pub struct Mail;

#[manager]
impl Mail {
    #[solve(thread)]
    fn placed(ev: OrderPlaced, ctx: Ctx) -> Result<(), Failure> {
        ctx.blocking_request(Record { cents: ev.cents })?;
        Ok(())
    }
}

pub struct Ledger;

#[manager]
impl Ledger {
    #[solve]
    async fn record(&mut self, _ev: &Record) -> Result<RecordResponse, Failure> {
        Ok(RecordResponse {})
    }
}

#[path = "support/span_fields.rs"]
mod span_fields;
use span_fields::{Fields, KeepFields};

/// The manager of each closed `edri.deliver` span, by the `span_id` it recorded: the ids EDRI
/// gave (the spans' fields kept by [`KeepFields`]).
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<BTreeMap<String, String>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Recorded {
    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(fields) = extensions.get::<Fields>() else { return };
        if span.name() == "edri.deliver"
            && let (Some(manager), Some(id)) = (fields.0.get("manager"), fields.0.get("span_id"))
        {
            self.0.lock().unwrap().insert(id.clone(), manager.clone());
        }
    }
}

/// The process's subscriber: the `otel` layer into an in-memory exporter, and [`Recorded`].
struct Export {
    exporter: InMemorySpanExporter,
    recorded: Recorded,
    _provider: SdkTracerProvider,
}

/// Installs the subscriber once for the tests of this binary.
fn export() -> &'static Export {
    static EXPORT: OnceLock<Export> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let recorded = Recorded::default();
        let deliveries = Targets::new().with_target("edri_runtime", LevelFilter::DEBUG);
        let subscriber = tracing_subscriber::registry()
            .with(edri::otel::layer(provider.tracer("otel-test")).with_filter(deliveries.clone()))
            .with(KeepFields.and_then(recorded.clone()).with_filter(deliveries));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        Export { exporter, recorded, _provider: provider }
    })
}

/// The tests share the exporter: one chain at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn attribute(span: &SpanData, key: &str) -> String {
    let value = span.attributes.iter().find(|kv| kv.key.as_str() == key);
    value.map(|kv| kv.value.to_string()).unwrap_or_else(|| panic!("no `{key}` on {span:?}"))
}

/// Waits (bounded) for the spans of Shop, Mail and Ledger, checks that they are the whole
/// trace of the chain and what each says of itself, and returns them.
async fn chain(export: &Export) -> [SpanData; 3] {
    // The notification's handlers finish after the request was answered (and the routers'
    // own managers have spans of their own, in traces of their own).
    let deadline = Instant::now() + Duration::from_secs(20);
    let all = loop {
        let all = export.exporter.get_finished_spans().unwrap();
        let managers = all.iter().map(|s| attribute(s, "manager")).collect::<Vec<_>>();
        if ["Shop", "Mail", "Ledger"].iter().all(|m| managers.iter().any(|n| n == m)) {
            break all;
        }
        assert!(Instant::now() < deadline, "the chain's spans were not exported: {all:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let [shop, mail, ledger] = ["Shop", "Mail", "Ledger"].map(|m| {
        let mut spans = all.iter().filter(|s| attribute(s, "manager") == m);
        let span = spans.next().unwrap().clone();
        assert!(spans.next().is_none(), "two spans of {m}: {all:#?}");
        span
    });
    let trace = shop.span_context.trace_id();
    assert_ne!(trace, TraceId::INVALID);
    let spans: Vec<_> = all.iter().filter(|s| s.span_context.trace_id() == trace).collect();
    assert_eq!(spans.len(), 3, "the chain's trace has three spans: {spans:#?}");
    let ids: std::collections::HashSet<_> =
        spans.iter().map(|s| s.span_context.span_id()).collect();
    assert_eq!(ids.len(), 3, "{spans:#?}");
    for (span, event, method, mode) in [
        (&shop, "PlaceOrder", "place", "inline"),
        (&mail, "OrderPlaced", "placed", "thread"),
        (&ledger, "Record", "record", "inline"),
    ] {
        let manager = attribute(span, "manager");
        assert_eq!(span.name, format!("edri.deliver {manager}/{event}"), "{span:?}");
        assert_eq!(attribute(span, "event"), event, "{span:?}");
        assert_eq!(attribute(span, "method"), method, "{span:?}");
        assert_eq!(attribute(span, "mode"), mode, "{span:?}");
        assert_eq!(span.span_context.trace_id(), trace, "another trace: {span:?}");
        assert!(span.start_time <= span.end_time, "{span:?}");
        // The exported span id is the one EDRI recorded on the handling span.
        let id = format!("{:016x}", span.span_context.span_id());
        let recorded = export.recorded.0.lock().unwrap().get(&id).cloned();
        assert_eq!(recorded, Some(manager), "not an id EDRI gave: {span:?}");
    }
    assert_eq!(shop.parent_span_id, SpanId::INVALID, "the chain starts at Shop: {shop:?}");
    for (span, sender) in [(&mail, &shop), (&ledger, &mail)] {
        assert_eq!(span.parent_span_id, sender.span_context.span_id(), "{span:?} from {sender:?}");
    }
    [shop, mail, ledger]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chain_in_one_router_is_one_otel_trace_with_edris_ids() -> edri::Result<()> {
    let export = export();
    let _one = ONE_AT_A_TIME.lock().await;
    export.exporter.reset();

    let running =
        Edri::builder().only_explicit().manager(Shop).manager(Mail).manager(Ledger).start().await?;
    let placed = running.ctx().request(PlaceOrder { item: "tea".into() }).await?;
    assert_eq!(placed.cents, 1_200);
    let [_, mail, ledger] = chain(export).await;
    running.shutdown().await?;
    for span in [mail, ledger] {
        assert!(!span.parent_span_is_remote, "the sender ran in this router: {span:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chain_across_two_routers_is_one_otel_trace() -> edri::Result<()> {
    const SECRET: &str = "otel-secret";
    let export = export();
    let _one = ONE_AT_A_TIME.lock().await;
    export.exporter.reset();

    let server = Server::bind("127.0.0.1:0", SECRET).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let hub = tokio::spawn(server.run());
    let front = Edri::builder()
        .only_explicit()
        .manager(Shop)
        .switch(Switch::new(addr.clone()).secret(SECRET).id("front"))
        .start()
        .await?;
    let back = Edri::builder()
        .only_explicit()
        .manager(Mail)
        .manager(Ledger)
        .without::<edri::store::StoreManager>()
        .switch(Switch::new(addr).secret(SECRET).id("back"))
        .start()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !front
        .topology()
        .routers
        .iter()
        .any(|r| r.id == "back" && r.connected && r.subscribes.iter().any(|e| e == "OrderPlaced"))
    {
        assert!(Instant::now() < deadline, "the back router did not join");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let placed = front.ctx().request(PlaceOrder { item: "tea".into() }).await?;
    assert_eq!(placed.cents, 1_200);
    let [_, mail, ledger] = chain(export).await;
    back.shutdown().await?;
    front.shutdown().await?;
    hub.abort();
    // Mail's event came through the switch: its sender's span is in the other router.
    assert!(mail.parent_span_is_remote, "the sender ran in the front router: {mail:?}");
    assert!(!ledger.parent_span_is_remote, "the sender ran in this router: {ledger:?}");
    Ok(())
}
