#![allow(missing_docs)]
//! `Running::topology()` and `GET /edri/topology`: the managers with their live counters and
//! handlers, the events they handle, and the routers joined through a switch.

use edri::switch::{Server, Switch};
use edri::{RouterNode, Topology};
use std::time::{Duration, Instant};

use edri::prelude::*;

#[path = "support/shop.rs"]
mod shop;

use shop::{Audit, Billing, Charge, Ledger, Price};

const SECRET: &str = "topology-secret";

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} did not happen within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn manager<'a>(t: &'a Topology, name: &str) -> &'a edri::ManagerNode {
    t.managers.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name} in {t:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_shows_managers_handlers_events_and_joined_routers() {
    let server = Server::bind("127.0.0.1:0", SECRET).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let hub = tokio::spawn(server.run());

    let shop = Edri::builder()
        .only_explicit()
        .manager(Billing)
        .manager(Audit)
        .api("127.0.0.1:0")
        .switch(Switch::new(addr.clone()).secret(SECRET).id("shop"))
        .start()
        .await
        .unwrap();
    let pricing = Edri::builder()
        .only_explicit()
        .manager(Audit)
        .manager(Ledger)
        .without::<edri::store::StoreManager>()
        .switch(Switch::new(addr).secret(SECRET).id("pricing"))
        .start()
        .await
        .unwrap();

    wait_until("pricing joined", || {
        shop.topology()
            .routers
            .iter()
            .any(|r| r.id == "pricing" && r.subscribes.contains(&"Receipt".to_owned()))
    })
    .await;
    shop.ctx().notify(Charge { amount: 5 }).await.unwrap();
    shop.ctx().notify(Charge { amount: 500 }).await.unwrap();
    assert_eq!(shop.ctx().request(Price { item: "tea".into() }).await.unwrap().cents, 250);
    wait_until("both charges handled", || {
        let t = shop.topology();
        manager(&t, "Billing").processed >= 3 && manager(&t, "Audit").processed >= 2
    })
    .await;
    wait_until("the receipt handled on the other router", || {
        manager(&pricing.topology(), "Ledger").processed == 1
    })
    .await;

    let t = shop.topology();
    assert_eq!(t.pid, std::process::id());
    let billing = manager(&t, "Billing");
    assert_eq!((billing.queue.as_str(), billing.failed, billing.crashed), ("fifo", 1, 0));
    let modes: Vec<_> = billing
        .handlers
        .iter()
        .map(|h| (h.event.as_str(), h.method.as_str(), h.mode.as_str(), h.limit))
        .collect();
    assert_eq!(modes, [("Charge", "charge", "inline", 1), ("Price", "price", "thread", 3)]);
    let audit = manager(&t, "Audit");
    assert_eq!((audit.queue.as_str(), audit.capacity), ("priority", 64));
    let charge = t.events.iter().find(|e| e.name == "Charge").expect("Charge");
    assert_eq!(charge.kind, "notification");
    assert_eq!(charge.handlers, ["Audit::charge", "Billing::charge"]);
    let price = t.events.iter().find(|e| e.name == "Price").expect("Price");
    assert_eq!(
        (price.kind.as_str(), price.handlers.as_slice()),
        ("request", &["Billing::price".to_owned()][..])
    );
    // Who sent what: the charges from outside, the receipt from Billing (handled only on the
    // other router, where it arrives from "remote").
    let senders = |t: &Topology, event: &str| -> Vec<(String, u64, u64)> {
        let node = t.events.iter().find(|e| e.name == event).unwrap_or_else(|| panic!("{event}"));
        node.senders.iter().map(|s| (s.from.clone(), s.total, s.last_minute)).collect()
    };
    assert_eq!(senders(&t, "Charge"), [("outside".to_owned(), 2, 2)]);
    assert_eq!(senders(&t, "Price"), [("outside".to_owned(), 1, 1)]);
    assert_eq!(senders(&t, "Receipt"), [("Billing".to_owned(), 1, 1)]);
    let receipt = t.events.iter().find(|e| e.name == "Receipt").unwrap();
    assert!(receipt.handlers.is_empty(), "{receipt:?}");
    assert_eq!(senders(&pricing.topology(), "Receipt"), [("remote".to_owned(), 1, 1)]);
    let joined: &RouterNode = t.routers.iter().find(|r| r.id == "pricing").unwrap();
    assert_eq!(joined.via, "switch");
    assert!(joined.subscribes.contains(&"Charge".to_owned()), "{joined:?}");

    // The same document over HTTP.
    let url = format!("http://{}/edri/topology", shop.api_addr().unwrap());
    let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let names: Vec<&str> =
        body["managers"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Billing") && names.contains(&"Audit"), "{body}");
    assert_eq!(body["managers"][names.iter().position(|n| *n == "Billing").unwrap()]["failed"], 1);
    assert!(body["routers"].as_array().unwrap().iter().any(|r| r["id"] == "pricing"), "{body}");
    let charge = body["events"].as_array().unwrap().iter().find(|e| e["name"] == "Charge").unwrap();
    assert_eq!(
        charge["senders"],
        serde_json::json!([{ "from": "outside", "total": 2, "last_minute": 2 }])
    );
    let typed: Topology = serde_json::from_value(body).unwrap();
    assert_eq!(typed.managers.len(), t.managers.len());

    assert_eq!(samplers(), 2, "one sampling thread per router");
    pricing.shutdown().await.unwrap();
    shop.shutdown().await.unwrap();
    hub.abort();
    // Each router's sampling thread ends once the router is gone, not at its next sample.
    let since = Instant::now();
    while samplers() > 0 && since.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(samplers(), 0, "the sampling threads ended within 3 s (they sample every 5 s)");
}

/// The threads of this process named `edri-senders`.
fn samplers() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux");
    let comm = |t: std::fs::DirEntry| std::fs::read_to_string(t.path().join("comm")).ok();
    tasks.flatten().filter_map(comm).filter(|c| c.trim() == "edri-senders").count()
}
