//! The transport conformance suite: what routers in different processes must see of each
//! other, whatever joins them. Each router is a real process on 127.0.0.1 (plus this
//! process's own router, `ctl`).
//!
//! Every case is written once against [`Transport`] and runs for every transport listed in
//! `main`, as `<transport>::<case>`. To add a transport:
//!
//! 1. implement [`Transport`] in `tests/support/<name>.rs`, declared in `support/mod.rs`
//!    (start its hub on an address, join an `EdriBuilder` to it from a [`Join`], read a
//!    router's [`Link`] status);
//! 2. add it to the list in `main` below.
//!
//! Child routers are this binary started again: they rebuild their [`Join`] from the
//! environment and join with the transport of the same name.
//!
//! `cargo test -p edri-switch --test conformance [-- FILTER...]` runs the cases whose name
//! contains a filter (`switch::`, `tunnel`, `switch::receiver_killed`).

#![allow(missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod crashes;
mod outages;
mod routing;
mod tunnels;

use edri::Running;
use support::nats::NatsTransport;
use support::switch::SwitchTransport;
use support::transport::Hub;
use support::*;

/// The cases, in the order they run.
const CASES: &[(&str, Case)] = &[
    ("notify_fan_out", |t| Box::pin(routing::notify_fan_out(t))),
    ("request_one_responder", |t| Box::pin(routing::request_one_responder(t))),
    ("request_all_one_answer_per_router", |t| Box::pin(routing::request_all(t))),
    ("no_responder_unavailable", |t| Box::pin(routing::no_responder(t))),
    ("request_timeout", |t| Box::pin(routing::request_timeout(t))),
    ("wrong_secret_refused", |t| Box::pin(routing::wrong_secret(t))),
    ("fingerprint_mismatch_refused", |t| Box::pin(routing::fingerprint_mismatch(t))),
    ("tunnels", |t| Box::pin(tunnels::tunnels(t))),
    ("tunnel_outage", |t| Box::pin(tunnels::tunnel_outage(t))),
    ("tunnel_outage_beyond_window", |t| Box::pin(tunnels::tunnel_outage_beyond_window(t))),
    ("outage_link_cut", |t| Box::pin(outages::outage(t, outages::Outage::LinkCut))),
    ("outage_hub_killed", |t| Box::pin(outages::outage(t, outages::Outage::HubKilled))),
    ("bounded_buffer_and_outage_window", |t| Box::pin(outages::bounded_buffer(t))),
    ("healthy_link_while_another_router_is_away", |t| Box::pin(outages::healthy_link(t))),
    ("receiver_killed", |t| Box::pin(crashes::receiver_killed(t))),
    ("leave_on_shutdown", |t| Box::pin(crashes::leave_on_shutdown(t))),
];

/// Starts router processes (`(id, managers)`) joined to `addr`, and checks each is ready.
fn routers(transport: &dyn Transport, addr: &str, routers: &[(&str, &str)]) -> Vec<Proc> {
    let mut procs = Vec::new();
    for &(id, managers) in routers {
        let (proc, ready) = router(transport, &Join::new(addr, id), managers);
        assert_eq!(ready, "ready", "router {id}");
        procs.push(proc);
    }
    procs
}

/// A hub, router processes (`(id, managers)`) joined to it, and this process's router `ctl`
/// once it sees them all.
async fn cluster(
    transport: &'static dyn Transport,
    ids: &[(&str, &str)],
) -> (Hub, Vec<Proc>, Running) {
    let hub = transport.start_hub("127.0.0.1:0");
    let procs = routers(transport, &hub.addr, ids);
    let running = ctl(transport, &hub.addr).await;
    let ids: Vec<&str> = ids.iter().map(|&(id, _)| id).collect();
    wait_for_peers(transport, &running, &ids).await;
    (hub, procs, running)
}

fn main() {
    support::run(&[&SwitchTransport, &NatsTransport], CASES);
}
