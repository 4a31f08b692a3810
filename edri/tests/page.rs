#![allow(missing_docs)]
//! `GET /edri`, the live topology page, loaded in a real headless Chromium driven over the
//! DevTools protocol: every manager appears, an edge for an event sent during the test
//! appears within a bound, a failing manager turns red, the page says when the router is
//! gone and recovers when it is back; behind a bearer token it takes `?token=`.
//!
//! Needs `chromium` (`apt-get install chromium`; `EDRI_CHROMIUM` names another binary). The
//! screenshot goes to `target/edri-page.png`.

#[path = "support/chrome.rs"]
mod chrome;
#[path = "support/shop.rs"]
mod shop;

use chrome::Chrome;
use edri::Running;
use edri::api::Api;
use edri::prelude::*;
use reqwest::StatusCode;
use shop::{Audit, Billing, Charge, Ledger};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SECRET: &str = "page-secret";
/// The hard bound for what the page should show within 2 s (a busy machine gets margin).
const BOUND: Duration = Duration::from_secs(5);

async fn start(api: Api) -> Running {
    Edri::builder()
        .only_explicit()
        .manager(Billing)
        .manager(Audit)
        .manager(Ledger)
        .api(api)
        .start()
        .await
        .unwrap()
}

/// A JavaScript test: the element with `attr="value"` exists (and matches `also`).
fn present(attr: &str, value: &str, also: &str) -> String {
    format!("document.querySelector('[{attr}=\"{value}\"]{also}') !== null")
}

/// `true` once every manager of `running` is drawn.
fn all_managers_drawn(running: &Running) -> String {
    let names: Vec<String> = running.topology().managers.into_iter().map(|m| m.name).collect();
    assert!(names.len() >= 3, "{names:?}");
    let names = serde_json::to_string(&names).unwrap();
    format!("{names}.every(n => document.querySelector(`[data-manager=\"${{n}}\"]`) !== null)")
}

/// Where cargo puts build output (`target/`, or `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(PathBuf::from).unwrap_or(tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_draws_the_app_live_and_recovers_when_the_router_comes_back() {
    let running = start(Api::new("127.0.0.1:0")).await;
    let addr = running.api_addr().unwrap();
    let mut chrome = Chrome::launch().await;
    chrome.navigate(&format!("http://{addr}/edri")).await;

    let took = chrome.wait_for("every manager drawn", &all_managers_drawn(&running), BOUND).await;
    eprintln!("every manager drawn {took:?} after navigating");
    let live = present("data-status", "connected", "");
    chrome.wait_for("the status says connected", &live, BOUND).await;
    let handled = present("data-edge", "Charge->Billing", "");
    assert_eq!(chrome.eval(&handled).await, true, "handler edges are drawn from the start");

    // Nothing sent Receipt yet: its edge from Billing appears once a charge goes through.
    let sent = present("data-edge", "Billing->Receipt", "");
    assert_eq!(chrome.eval(&sent).await, false);
    let at = Instant::now();
    running.ctx().notify(Charge { amount: 5 }).await.unwrap();
    let took = chrome.wait_for("the Billing->Receipt edge", &sent, BOUND).await;
    let latency = at.elapsed();
    eprintln!("edge Billing->Receipt drawn {latency:?} after the send (DOM polled for {took:?})");
    chrome
        .wait_for("the outside->Charge edge", &present("data-edge", "outside->Charge", ""), BOUND)
        .await;
    let total =
        "document.querySelector('[data-edge=\"Billing->Receipt\"]').getAttribute('data-total')";
    assert_eq!(chrome.eval(total).await, "1");

    // A failing handler turns its manager red.
    let red = present("data-manager", "Billing", ".failing");
    assert_eq!(chrome.eval(&red).await, false);
    running.ctx().notify(Charge { amount: 500 }).await.unwrap();
    chrome.wait_for("Billing drawn as failing", &red, BOUND).await;
    assert_eq!(chrome.eval(&present("data-manager", "Ledger", ".failing")).await, false);

    // The runtime's own managers can be left out; the app's stay.
    let internal = "document.querySelector('[data-manager^=\"edri.\"]') !== null";
    assert_eq!(chrome.eval(internal).await, true);
    chrome.eval("document.getElementById('internals').click()").await;
    assert_eq!(chrome.eval(internal).await, false);
    assert_eq!(chrome.eval(&red).await, true);
    chrome.eval("document.getElementById('internals').click()").await;

    // Hovering a manager brings out its edges.
    let hover = "(() => { const g = document.querySelector('[data-manager=\"Billing\"]'); \
                 g.dispatchEvent(new MouseEvent('mouseenter')); \
                 const hot = document.querySelector('[data-edge=\"Charge->Billing\"]').classList; \
                 const cold = document.querySelector('[data-edge=\"Receipt->Ledger\"]').classList; \
                 const lit = document.getElementById('graph').classList.contains('focus') \
                   && hot.contains('hot') && !cold.contains('hot'); \
                 g.dispatchEvent(new MouseEvent('mouseleave')); return lit; })()";
    assert_eq!(chrome.eval(hover).await, true);

    let png = chrome.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{} bytes", png.len());
    let path = target_dir().join("edri-page.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());

    // The router goes away: the page says so, and comes back with it.
    running.shutdown().await.unwrap();
    let gone = present("data-status", "disconnected", "");
    let took = chrome.wait_for("the status says disconnected", &gone, BOUND).await;
    eprintln!("disconnected shown {took:?} after the shutdown");
    let again = start(Api::new(addr.to_string())).await;
    chrome.wait_for("the status says connected again", &live, BOUND).await;
    chrome.wait_for("a fresh router drawn", &all_managers_drawn(&again), BOUND).await;
    again.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_token_the_page_takes_it_once_in_its_address() {
    let running = start(Api::new("127.0.0.1:0").token(SECRET)).await;
    let addr = running.api_addr().unwrap();
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |path: &str| http.get(format!("http://{addr}{path}")).send();
    let without = get("/edri").await.unwrap();
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    assert_eq!(get("/edri?token=wrong").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get("/").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // The token in the address opens the page only, not the data it reads.
    let query = format!("/edri/topology?token={SECRET}");
    assert_eq!(get(&query).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&format!("/edri?token={SECRET}")).await.unwrap().status(), StatusCode::OK);

    let mut chrome = Chrome::launch().await;
    chrome.navigate(&format!("http://{addr}/edri?token={SECRET}")).await;
    chrome.wait_for("every manager drawn", &all_managers_drawn(&running), BOUND).await;
    chrome.wait_for("connected", &present("data-status", "connected", ""), BOUND).await;
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_one_html_document_under_a_strict_policy() {
    let running = start(Api::new("127.0.0.1:0")).await;
    let addr = running.api_addr().unwrap();
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let page = http.get(format!("http://{addr}/edri")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let header = |name: &str| page.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let csp = header("content-security-policy");
    for part in
        ["default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'"]
    {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let body = page.text().await.unwrap();
    assert!(body.starts_with("<!doctype html>") && body.contains("/edri/topology"), "{body}");

    let root = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/edri");
    let post = http.post(format!("http://{addr}/edri")).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let odd = http.get(format!("http://{addr}/edri?token=%FF&x")).send().await.unwrap();
    assert_eq!(odd.status(), StatusCode::OK, "a query the page does not need is ignored");
    running.shutdown().await.unwrap();
}
