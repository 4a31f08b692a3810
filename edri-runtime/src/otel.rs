//! EDRI's traces exported through OpenTelemetry (feature `otel`), with EDRI's own ids.
//!
//! [`layer`] is a `tracing_subscriber` layer: when an `edri.deliver` span (one handler's
//! handling of one event) closes, it builds an OpenTelemetry span from it and ends it through
//! your tracer, so your exporter sends it on. The exported span keeps the ids EDRI gave the
//! handling span:
//!
//! - trace id: the chain's `trace_id`, the same from the first handler of a chain to the last,
//!   across threads, worker processes, the switch and NATS: one chain is one OpenTelemetry
//!   trace, whichever process exports each of its spans;
//! - span id: the handling span's `span_id`;
//! - parent: the `parent_span_id` of the handler that sent the event (marked remote when that
//!   handler ran in another process), none for the first handler of a chain;
//! - name `edri.deliver <manager>/<event>` (`edri.deliver Shop/PlaceOrder`: a slash, as event
//!   and manager names may hold dots); attributes `manager`, `event`, `method`, `mode`;
//!   start when the event was taken from the mailbox, end when its handler last ran.
//!
//! Other spans and events are not looked at: the layer sits next to `tracing-opentelemetry`,
//! fmt or any other layer.
//!
//! The layer sees `edri.deliver` spans only when they are enabled: they are at `debug` level
//! with target `edri_runtime`, so give the layer a filter of its own that lets them through
//! (`Targets::new().with_target("edri_runtime", Level::DEBUG)`) and keep your log output's
//! filter where it was. While no layer enables them, events carry no trace links and the
//! layer costs nothing.
//!
//! The sender's span is given to the tracer as a sampled parent (EDRI does not carry a sampling
//! decision), so a parent-based sampler keeps every span after the first handler's. To export
//! a share of the chains, sample with `TraceIdRatioBased` alone: its decision depends on the
//! trace id only, so it is the same for every span of a chain, in every process.
//!
//! A worker process (`#[solve(process)]`) exports its own handling spans only when the program
//! installs the layer before `edri::serve_if_worker()` (a plain `main`); under
//! `#[edri::main]` workers print theirs to the log. The router exports the span of the process
//! handler that called the worker either way.
//!
//! # Examples
//!
//! ```
//! # // `edri::otel` is there with `edri`'s `otel` feature, which this crate's tests leave off.
//! # use edri_runtime::otel;
//! use otel::opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//! use tracing_subscriber::filter::{LevelFilter, Targets};
//! use tracing_subscriber::prelude::*;
//!
//! // Your exporter here (OTLP, Jaeger, …); the in-memory one keeps what it is given.
//! let exporter = InMemorySpanExporter::default();
//! let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
//! let deliveries = Targets::new().with_target("edri_runtime", LevelFilter::DEBUG);
//! tracing_subscriber::registry()
//!     .with(otel::layer(provider.tracer("shop")).with_filter(deliveries))
//!     .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO))
//!     .init();
//! ```

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer,
};
use opentelemetry::{Context as OtelContext, KeyValue};
use std::time::SystemTime;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The OpenTelemetry API crate this module is built on (its tracers and ids), so that yours
/// is the same version.
pub use opentelemetry;

/// The name of EDRI's handling spans.
const DELIVER: &str = "edri.deliver";

/// A layer exporting every `edri.deliver` span through `tracer` when it closes, with EDRI's
/// trace id, span id and parent span id (see the [module](self)).
///
/// `tracer` is any OpenTelemetry tracer: `provider.tracer("my-app")` of an
/// `opentelemetry_sdk` `SdkTracerProvider`, or the global one.
pub fn layer<T>(tracer: T) -> Layer<T>
where
    T: Tracer + Send + Sync + 'static,
{
    Layer { tracer }
}

/// The layer of [`layer`].
#[derive(Debug, Clone)]
pub struct Layer<T> {
    tracer: T,
}

/// What the layer keeps of one open `edri.deliver` span (in the span's extensions).
#[derive(Debug)]
struct Delivery {
    start: SystemTime,
    /// When the handler last stopped running (it exits the span then); the span itself may
    /// close later, when the last event it sent has been handled.
    end: Option<SystemTime>,
    manager: String,
    event: String,
    method: String,
    mode: String,
    trace: Option<u128>,
    span: Option<u64>,
    parent: Option<u64>,
}

impl Visit for Delivery {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "manager" => value.clone_into(&mut self.manager),
            "event" => value.clone_into(&mut self.event),
            "method" => value.clone_into(&mut self.method),
            "mode" => value.clone_into(&mut self.mode),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // The ids are recorded as hex text (`trace::handling`).
        let hex = || format!("{value:?}");
        match field.name() {
            "trace_id" => self.trace = u128::from_str_radix(&hex(), 16).ok(),
            "span_id" => self.span = u64::from_str_radix(&hex(), 16).ok(),
            "parent_span_id" => self.parent = u64::from_str_radix(&hex(), 16).ok(),
            _ => {}
        }
    }
}

impl<S, T> tracing_subscriber::Layer<S> for Layer<T>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    T: Tracer + Send + Sync + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != DELIVER {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut delivery = Delivery {
            start: SystemTime::now(),
            end: None,
            manager: String::new(),
            event: String::new(),
            method: String::new(),
            mode: String::new(),
            trace: None,
            span: None,
            parent: None,
        };
        attrs.record(&mut delivery);
        span.extensions_mut().insert(delivery);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(delivery) = span.extensions_mut().get_mut::<Delivery>()
        {
            values.record(delivery);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(delivery) = span.extensions_mut().get_mut::<Delivery>()
        {
            delivery.end = Some(SystemTime::now());
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(delivery) = span.extensions_mut().remove::<Delivery>() else { return };
        // Without ids the span was not linked (`trace::handling` records them at once).
        let (Some(trace), Some(span_id)) = (delivery.trace, delivery.span) else { return };
        let parent = match delivery.parent {
            None => OtelContext::new(),
            Some(parent) => {
                // The sender's span is the tracing parent when it ran in this process.
                let local = span.parent().is_some_and(|p| {
                    p.extensions().get::<Delivery>().is_some_and(|d| d.span == Some(parent))
                });
                let sender = SpanContext::new(
                    TraceId::from(trace),
                    SpanId::from(parent),
                    TraceFlags::SAMPLED,
                    !local,
                    TraceState::default(),
                );
                OtelContext::new().with_remote_span_context(sender)
            }
        };
        let name = format!("{DELIVER} {}/{}", delivery.manager, delivery.event);
        let builder = SpanBuilder::from_name(name)
            .with_trace_id(TraceId::from(trace))
            .with_span_id(SpanId::from(span_id))
            .with_start_time(delivery.start)
            .with_attributes([
                KeyValue::new("manager", delivery.manager),
                KeyValue::new("event", delivery.event),
                KeyValue::new("method", delivery.method),
                KeyValue::new("mode", delivery.mode),
            ]);
        let end = delivery.end.unwrap_or_else(SystemTime::now);
        self.tracer.build_with_context(builder, &parent).end_with_timestamp(end);
    }
}
