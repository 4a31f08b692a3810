#![allow(missing_docs)]
//! The API broker's error bodies over real HTTP: `{"error": {"status", "message", "field"?}}`
//! with the field named for bad path and query parameters (invalid UTF-8 included, never
//! replaced by U+FFFD), and the statuses of 404, 405 and 413.

use edri::api::Api;
use edri::prelude::*;
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Path and query parameters of several types.
#[event(request, http = "GET /errs/{name}")]
#[derive(Debug, Clone)]
pub struct ErrsLookup {
    pub name: String,
    pub note: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[response]
    pub echoed: String,
}

/// A number in the path.
#[event(request, http = "DELETE /errs/items/{id}")]
#[derive(Debug, Clone)]
pub struct ErrsRemove {
    pub id: u32,
}

#[derive(Default)]
pub struct ErrsSvc;

#[manager]
impl ErrsSvc {
    #[solve]
    fn lookup(&self, ev: ErrsLookup) -> ErrsLookupResponse {
        ErrsLookupResponse { echoed: format!("{}|{:?}|{:?}", ev.name, ev.note, ev.tags) }
    }

    #[solve]
    fn remove(&self, _: &ErrsRemove) -> ErrsRemoveResponse {
        ErrsRemoveResponse
    }
}

const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {LIMIT:?}: {what}"),
    }
}

/// Status code and JSON body.
async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = within("a request", request.send()).await.expect("answered");
    let code = response.status().as_u16();
    let body = within("a body", response.json::<Value>()).await.expect("a JSON body");
    (code, body)
}

/// Asserts the documented error shape: exactly `status`, `message` and (when given) `field`.
#[track_caller]
fn assert_error(code: u16, body: &Value, want_code: u16, status: &str, field: Option<&str>) {
    assert_eq!(code, want_code, "{body}");
    let error = body["error"].as_object().unwrap_or_else(|| panic!("no error object: {body}"));
    assert_eq!(error.get("status"), Some(&json!(status)), "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(error.get("field").and_then(Value::as_str), field, "{body}");
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let want: &[&str] =
        if field.is_some() { &["field", "message", "status"] } else { &["message", "status"] };
    assert_eq!(keys, want, "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only `error`: {body}");
}

async fn start() -> (edri::Running, SocketAddr, reqwest::Client) {
    let running =
        within("start", Edri::builder().api(Api::new("127.0.0.1:0").body_limit(64)).start())
            .await
            .expect("starts");
    let addr = running.api_addr().expect("the API");
    let client = reqwest::Client::builder().no_proxy().timeout(LIMIT).build().unwrap();
    (running, addr, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_query_value_is_400_naming_the_parameter() {
    let (running, addr, c) = start().await;
    let url = |q: &str| format!("http://{addr}/errs/x?{q}");

    let (code, body) = call(c.get(url("note=%FF"))).await;
    assert_error(code, &body, 400, "invalid", Some("note"));
    let (code, body) = call(c.get(url("tags=ok&tags=%C3"))).await;
    assert_error(code, &body, 400, "invalid", Some("tags"));
    // The name itself not UTF-8: named as best it can be.
    let (code, body) = call(c.get(url("n%FFte=1"))).await;
    assert_error(code, &body, 400, "invalid", Some("n\u{FFFD}te"));

    // Valid percent-encoded UTF-8 and `+` still decode.
    let (code, body) = call(c.get(url("note=caf%C3%A9+au+lait&tags=a%2Bb"))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["echoed"], r#"x|Some("café au lait")|["a+b"]"#);
    running.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_path_parameter_is_400_naming_the_parameter() {
    let (running, addr, c) = start().await;
    let (code, body) = call(c.get(format!("http://{addr}/errs/%FF%FE"))).await;
    assert_error(code, &body, 400, "invalid", Some("name"));
    let (code, body) = call(c.delete(format!("http://{addr}/errs/items/abc"))).await;
    assert_error(code, &body, 400, "invalid", Some("id"));
    let (code, body) = call(c.delete(format!("http://{addr}/errs/items/4294967296"))).await;
    assert_error(code, &body, 400, "invalid", Some("id"));
    let (code, body) = call(c.get(format!("http://{addr}/errs/caf%C3%A9"))).await;
    assert_eq!((code, &body["echoed"]), (200, &json!("café|None|[]")));
    running.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_method_not_allowed_and_too_large_say_what_they_are() {
    let (running, addr, c) = start().await;
    let (code, body) = call(c.get(format!("http://{addr}/errs"))).await;
    assert_error(code, &body, 404, "not_found", None);
    let response =
        within("405", c.post(format!("http://{addr}/errs/x")).send()).await.expect("answered");
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET"));
    let code = response.status().as_u16();
    let body: Value = within("a body", response.json()).await.unwrap();
    assert_error(code, &body, 405, "method_not_allowed", None);
    let (code, body) = call(c.get(format!("http://{addr}/errs/x")).body(" ".repeat(65))).await;
    assert_error(code, &body, 413, "too_large", None);
    running.shutdown().await.expect("stops");
}
