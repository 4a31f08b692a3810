#![allow(missing_docs)]
//! `Running::metrics()`: counting switched on without the API, inline and thread handlers
//! timed, and the text in the Prometheus format; with the `api` feature, the application's own
//! metrics in `GET /metrics`.

use edri::prelude::*;
use std::time::Duration;

#[event(request)]
#[derive(Debug, Clone)]
pub struct Square {
    pub n: u64,
    #[response]
    pub square: u64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Slow {
    pub ms: u64,
}

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Seen;

#[derive(Default)]
pub struct Counter;

#[manager]
impl Counter {
    #[solve]
    fn square(&self, ev: &Square) -> Result<SquareResponse, Failure> {
        if ev.n == 0 {
            return Err(Failure::invalid("zero"));
        }
        Ok(SquareResponse { square: ev.n * ev.n })
    }

    #[solve(thread, limit = 2)]
    fn slow(ev: Slow) -> SlowResponse {
        std::thread::sleep(Duration::from_millis(ev.ms));
        SlowResponse
    }

    #[solve]
    fn seen(&mut self, _: &Seen) {}
}

/// The value of the one sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "one sample `{prefix}` in:\n{text}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_are_counted_and_timed() {
    let running =
        Edri::builder().only_explicit().manager(Counter).metrics(true).start().await.unwrap();
    let ctx = running.ctx();
    for n in 1..=10 {
        assert_eq!(ctx.request(Square { n }).await.unwrap().square, n * n);
    }
    assert!(ctx.request(Square { n: 0 }).await.is_err());
    ctx.request(Slow { ms: 30 }).await.unwrap();
    for _ in 0..5 {
        ctx.notify(Seen).await.unwrap();
    }
    // The notifications are handled asynchronously: a request after them in the same
    // mailbox is answered only once they were handled.
    ctx.request(Square { n: 1 }).await.unwrap();

    // A call is recorded right after its answer is sent: wait (bounded) for the last one.
    let handler = r#"manager="Counter",event="Square",method="square",mode="inline""#;
    let handled = format!("edri_events_handled_total{{{handler}}}");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while sample(&running.metrics(), &handled) < 12.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let text = running.metrics();
    assert_eq!(sample(&text, &format!("edri_events_handled_total{{{handler}}}")), 12.0);
    assert_eq!(sample(&text, &format!("edri_handler_duration_seconds_count{{{handler}}}")), 12.0);
    assert_eq!(
        sample(&text, &format!("edri_handler_duration_seconds_bucket{{{handler},le=\"+Inf\"}}")),
        12.0
    );
    assert_eq!(
        sample(&text, r#"edri_events_delivered_total{event="Square",kind="request"}"#),
        12.0
    );
    assert_eq!(
        sample(&text, r#"edri_events_delivered_total{event="Seen",kind="notification"}"#),
        5.0
    );
    assert_eq!(sample(&text, r#"edri_handler_failures_total{manager="Counter"}"#), 1.0);

    // The thread handler is timed from its start to its answer: at least the 30 ms it slept.
    let slow = r#"manager="Counter",event="Slow",method="slow",mode="thread""#;
    assert_eq!(sample(&text, &format!("edri_handler_duration_seconds_count{{{slow}}}")), 1.0);
    assert!(sample(&text, &format!("edri_handler_duration_seconds_sum{{{slow}}}")) >= 0.03);
    assert_eq!(
        sample(&text, &format!("edri_handler_duration_seconds_bucket{{{slow},le=\"0.01\"}}")),
        0.0
    );

    // Every sample line is `name{labels} value` or `name value`; every family has HELP and TYPE.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(series.starts_with("edri_"), "{line}");
    }
    assert!(text.contains("# TYPE edri_handler_duration_seconds histogram"));
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn counting_is_off_by_default() {
    let running = Edri::builder().only_explicit().manager(Counter).start().await.unwrap();
    running.ctx().request(Square { n: 3 }).await.unwrap();
    let text = running.metrics();
    assert_eq!(sample(&text, r#"edri_events_delivered_total{event="Square",kind="request"}"#), 0.0);
    running.shutdown().await.unwrap();
}

#[cfg(feature = "api")]
/// Counts what the handler sees, in the application's own metrics.
pub struct Shop {
    orders: edri::prometheus_client::metrics::counter::Counter,
    basket: edri::prometheus_client::metrics::gauge::Gauge,
    sizes: edri::prometheus_client::metrics::histogram::Histogram,
}

#[cfg(feature = "api")]
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Order {
    pub items: u32,
}

#[cfg(feature = "api")]
#[manager]
impl Shop {
    #[solve]
    fn order(&mut self, ev: &Order) {
        self.orders.inc();
        self.basket.set(i64::from(ev.items));
        self.sizes.observe(f64::from(ev.items));
    }
}

#[cfg(feature = "api")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_metrics_come_after_edris() {
    use edri::prometheus_client::metrics::histogram::{Histogram, linear_buckets};
    use edri::prometheus_client::registry::Registry;
    let shop = Shop {
        orders: Default::default(),
        basket: Default::default(),
        sizes: Histogram::new(linear_buckets(1.0, 1.0, 5)),
    };
    let mut registry = Registry::default();
    registry.register("shop_orders", "Orders placed", shop.orders.clone());
    registry.register("shop_basket_items", "Items in the last basket", shop.basket.clone());
    registry.register("shop_order_items", "Items per order", shop.sizes.clone());
    let running = Edri::builder()
        .only_explicit()
        .manager(shop)
        .metrics_registry(registry)
        .api("127.0.0.1:0")
        .start()
        .await
        .unwrap();
    for items in [1, 3, 4] {
        running.ctx().notify(Order { items }).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let url = format!("http://{}/metrics", running.api_addr().unwrap());
    let text = loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if text.contains("shop_orders_total 3") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "orders not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sample(&text, "shop_basket_items "), 4.0);
    assert_eq!(sample(&text, "shop_order_items_count "), 3.0);
    assert_eq!(sample(&text, "shop_order_items_sum "), 8.0);
    assert_eq!(sample(&text, "shop_order_items_bucket{le=\"3.0\"}"), 2.0);
    // EDRI's own lines are there too, with who sent what; the whole text parses.
    assert_eq!(sample(&text, "edri_events_sent_total{event=\"Order\",from=\"outside\"}"), 3.0);
    assert!(text.find("edri_uptime_seconds") < text.find("shop_orders_total"), "{text}");
    assert!(!text.contains("# EOF"), "{text}");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(parsed.samples.iter().any(|s| s.metric == "shop_orders_total"), "{text}");
    running.shutdown().await.unwrap();
}
