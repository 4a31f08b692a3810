#![allow(missing_docs)]
//! The API broker with real clients over 127.0.0.1: REST binding and status mapping, auth,
//! CORS, body limit, robustness against malformed input, the WebSocket protocol (correlated
//! requests, subscriptions with filters, slow clients), `/metrics`, `/edri/events`,
//! `/edri/health` and shutdown.
//!
//! Every test starts its own router on port 0; every await that could hang is bounded.

use edri::Running;
use edri::api::Api;
use edri::prelude::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Path, query (number, bool, Option, repeated into a Vec) binding; also on the WebSocket.
#[event(request, http = "GET /echo/{text}", ws)]
#[derive(Debug, Clone)]
pub struct Echo {
    pub text: String,
    pub count: Option<u32>,
    pub loud: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[response]
    pub said: String,
    #[response]
    pub times: Option<u32>,
    #[response]
    pub shouted: Option<bool>,
    #[response]
    pub labels: Vec<String>,
}

/// A path number and a body number.
#[event(request, http = "POST /add/{a}")]
#[derive(Debug, Clone)]
pub struct Add {
    pub a: i64,
    pub b: i64,
    #[response]
    pub sum: i64,
}

/// Fails with the status named by `kind` (or panics for `"panic"`).
#[event(request, http = "POST /fail")]
#[derive(Debug, Clone)]
pub struct Fail {
    pub kind: String,
}

/// A unit request: its response is `{}`.
#[event(request, http = "GET /ping")]
#[derive(Debug, Clone)]
pub struct Ping;

/// A second method on `/ping` (for the `Allow` header).
#[event(request, http = "PUT /ping")]
#[derive(Debug, Clone)]
pub struct Pong;

/// Handled by `AbsentSvc`, left out of the status test's router: no responder.
#[event(request, http = "GET /orphan")]
#[derive(Debug, Clone)]
pub struct Orphan;

/// Sleeps (for the API timeout).
#[event(request, http = "GET /sleepy")]
#[derive(Debug, Clone)]
pub struct Sleepy {
    pub millis: u64,
}

/// Sleeps on a thread; WebSocket only (answers arrive out of order).
#[event(request, ws)]
#[derive(Debug, Clone)]
pub struct Nap {
    pub tag: u32,
    pub millis: u64,
    #[response]
    pub woke: u32,
}

/// Posts a message; the handler raises `Said`.
#[event(request, http = "POST /rooms/{room}/messages", ws)]
#[derive(Debug, Clone)]
pub struct PostMessage {
    pub room: String,
    pub text: String,
    #[response]
    pub posted: bool,
}

/// Pushed to WebSocket subscribers.
#[event(notification, ws)]
#[derive(Debug, Clone)]
pub struct Said {
    pub room: String,
    pub text: String,
}

/// Neither `http` nor `ws`: not in the catalog, not reachable from outside.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Unexposed {
    pub x: u32,
}

/// Neither `http` nor `ws`.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Quiet;

// ---------------------------------------------------------------------------------------------
// Managers
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct ApiSvc;

/// Serde field attributes shape the JSON form: the API follows them.
#[event(request, http = "POST /renamed", ws)]
#[derive(Debug, Clone)]
pub struct Renamed {
    #[serde(rename = "userName")]
    pub user_name: String,
    #[serde(skip)]
    pub cache: u32,
    #[serde(default = "seven")]
    pub level: u32,
    #[response]
    pub greeting: String,
}

fn seven() -> u32 {
    7
}

#[manager]
impl ApiSvc {
    #[solve]
    fn echo(&self, ev: Echo) -> EchoResponse {
        EchoResponse { said: ev.text, times: ev.count, shouted: ev.loud, labels: ev.tags }
    }

    #[solve]
    fn renamed(&self, ev: &Renamed) -> RenamedResponse {
        RenamedResponse { greeting: format!("{} {} {}", ev.user_name, ev.level, ev.cache) }
    }

    #[solve]
    fn add(&self, ev: &Add) -> AddResponse {
        AddResponse { sum: ev.a + ev.b }
    }

    #[solve]
    fn fail(&self, ev: &Fail) -> Result<FailResponse, Failure> {
        let message = format!("{} on purpose", ev.kind);
        Err(match ev.kind.as_str() {
            "invalid" => Failure::invalid(message),
            "unauthorized" => Failure::unauthorized(message),
            "forbidden" => Failure::forbidden(message),
            "not_found" => Failure::not_found(message),
            "conflict" => Failure::conflict(message),
            "failed" => Failure::failed(message),
            "panic" => panic!("the Fail handler panics on purpose"),
            "ok" => return Ok(FailResponse),
            _ => Failure::invalid(format!("unknown kind {}", ev.kind)),
        })
    }

    #[solve]
    fn ping(&self, _: &Ping) -> PingResponse {
        PingResponse
    }

    #[solve]
    fn pong(&self, _: &Pong) -> PongResponse {
        PongResponse
    }

    #[solve(thread, limit = 8)]
    fn nap(ev: Nap) -> NapResponse {
        std::thread::sleep(Duration::from_millis(ev.millis));
        NapResponse { woke: ev.tag }
    }

    #[solve]
    async fn post(&self, ev: PostMessage, ctx: &Ctx) -> Result<PostMessageResponse, Failure> {
        ctx.notify(Said { room: ev.room, text: ev.text }).await?;
        Ok(PostMessageResponse { posted: true })
    }

    #[solve]
    fn unexposed(&self, _: &Unexposed) -> UnexposedResponse {
        UnexposedResponse
    }

    #[solve]
    fn quiet(&self, _: &Quiet) {}
}

#[derive(Default)]
pub struct SlowSvc;

#[manager]
impl SlowSvc {
    #[solve]
    async fn sleepy(&self, ev: &Sleepy) -> SleepyResponse {
        tokio::time::sleep(Duration::from_millis(ev.millis)).await;
        SleepyResponse
    }
}

#[derive(Default)]
pub struct AbsentSvc;

#[manager]
impl AbsentSvc {
    #[solve]
    fn orphan(&self, _: &Orphan) -> OrphanResponse {
        OrphanResponse
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The bound of any single await in these tests.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {LIMIT:?}: {what}"),
    }
}

fn local() -> Api {
    Api::new("127.0.0.1:0")
}

async fn start_with(builder: edri::EdriBuilder, api: Api) -> (Running, SocketAddr) {
    let running = within("start", builder.api(api).start()).await.expect("the router starts");
    let addr = running.api_addr().expect("the API runs");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    (running, addr)
}

async fn start(api: Api) -> (Running, SocketAddr) {
    start_with(Edri::builder(), api).await
}

async fn stop(running: Running) {
    within("shutdown", running.shutdown()).await.expect("shutdown");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(LIMIT).build().expect("a reqwest client")
}

/// A response: status, headers and the body as JSON (a JSON string of the text otherwise).
struct Reply {
    code: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn error_status(&self) -> &str {
        self.body["error"]["status"]
            .as_str()
            .unwrap_or_else(|| panic!("no error status in a {} response: {}", self.code, self.body))
    }

    fn error_field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    fn assert_error(&self, code: u16, status: &str) {
        assert_eq!(self.code, code, "body: {}", self.body);
        assert_eq!(self.error_status(), status, "body: {}", self.body);
        assert!(
            self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {}",
            self.body
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "errors are JSON: {}",
            self.body
        );
    }

    #[track_caller]
    fn assert_invalid_field(&self, field: &str) {
        self.assert_error(400, "invalid");
        assert_eq!(self.error_field(), Some(field), "body: {}", self.body);
    }

    #[track_caller]
    fn assert_ok(&self) -> &Value {
        assert_eq!(self.code, 200, "body: {}", self.body);
        &self.body
    }
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response =
        within("an HTTP request", request.send()).await.expect("the request is answered");
    let code = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = within("an HTTP body", response.bytes()).await.expect("a body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply { code, headers, body }
}

async fn get(c: &reqwest::Client, addr: SocketAddr, path: &str) -> Reply {
    send(c.get(format!("http://{addr}{path}"))).await
}

async fn post(
    c: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> Reply {
    send(c.post(format!("http://{addr}{path}")).body(body)).await
}

async fn get_text(c: &reqwest::Client, addr: SocketAddr, path: &str) -> String {
    let response = within("GET", c.get(format!("http://{addr}{path}")).send()).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    within("a text body", response.text()).await.unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: SocketAddr) -> Ws {
    let (ws, response) =
        within("ws connect", tokio_tungstenite::connect_async(format!("ws://{addr}/edri/ws")))
            .await
            .expect("the WebSocket handshake succeeds");
    assert_eq!(response.status().as_u16(), 101);
    ws
}

async fn ws_send(ws: &mut Ws, message: Value) {
    within("ws send", ws.send(Message::Text(message.to_string().into()))).await.expect("ws send");
}

/// The next JSON text message (pings skipped); panics on a close, an end or a timeout.
async fn ws_recv(ws: &mut Ws) -> Value {
    for _ in 0..100 {
        let message = within("ws recv", ws.next()).await;
        match message {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
    panic!("only pings")
}

/// Reads messages until one has `"id": id`; the ones without it are returned too, in order.
async fn ws_until_id(ws: &mut Ws, id: &Value) -> (Value, Vec<Value>) {
    let mut others = Vec::new();
    for _ in 0..1000 {
        let message = ws_recv(ws).await;
        if message.get("id") == Some(id) {
            return (message, others);
        }
        others.push(message);
    }
    panic!("no reply with id {id}; got {others:?}")
}

/// A request over the WebSocket and its reply (pushes in between are returned too).
async fn ws_call(ws: &mut Ws, id: Value, event: &str, data: Value) -> (Value, Vec<Value>) {
    ws_send(ws, json!({ "event": event, "id": id, "data": data })).await;
    ws_until_id(ws, &id).await
}

/// The value of a sample without labels (or the first one), by metric name.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        let bare = key.split('{').next()?;
        (bare == name).then(|| value.parse().ok()).flatten()
    })
}

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the metrics parse")
}

/// A small deterministic generator (xorshift), for garbage bytes.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 24) as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Status mapping
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_maps_to_its_http_status() {
    // The default request timeout here: a panic printing a backtrace may take a while.
    let (running, addr) = start_with(Edri::builder().without::<AbsentSvc>(), local()).await;
    // And one with a short API timeout.
    let (hasty, hasty_addr) = start(local().request_timeout(Duration::from_millis(300))).await;
    let c = client();

    let cases = [
        ("invalid", 400, "invalid"),
        ("unauthorized", 401, "unauthorized"),
        ("forbidden", 403, "forbidden"),
        ("not_found", 404, "not_found"),
        ("conflict", 409, "conflict"),
        ("failed", 500, "failed"),
    ];
    for (kind, code, status) in cases {
        let r = post(&c, addr, "/fail", json!({ "kind": kind }).to_string()).await;
        r.assert_error(code, status);
        assert_eq!(r.body["error"]["message"], format!("{kind} on purpose"), "{kind}");
        assert!(r.error_field().is_none(), "a handler failure names no field: {}", r.body);
    }
    // The same handler succeeding, as an empty response object.
    assert_eq!(post(&c, addr, "/fail", r#"{"kind": "ok"}"#).await.assert_ok(), &json!({}));

    // A panicking handler: 500 "crashed", and the server (and the manager) go on.
    let r = post(&c, addr, "/fail", r#"{"kind": "panic"}"#).await;
    r.assert_error(500, "crashed");
    assert_eq!(get(&c, addr, "/ping").await.assert_ok(), &json!({}));
    post(&c, addr, "/fail", r#"{"kind": "conflict"}"#).await.assert_error(409, "conflict");

    // No responder: AbsentSvc is left out.
    get(&c, addr, "/orphan").await.assert_error(503, "unavailable");

    // Slower than the API's request timeout.
    let started = Instant::now();
    let r = get(&c, hasty_addr, "/sleepy?millis=1000").await;
    let took = started.elapsed();
    r.assert_error(504, "timeout");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(950),
        "took {took:?}"
    );
    assert!(hasty.metrics().contains("edri_api_http_responses_total{code=\"504\"} 1"));
    // Within it, fine.
    assert_eq!(get(&c, addr, "/sleepy?millis=1").await.assert_ok(), &json!({}));

    // Every one was counted by code.
    let metrics = running.metrics();
    for code in [400, 401, 403, 404, 409, 500, 503, 200] {
        let line = format!("edri_api_http_responses_total{{code=\"{code}\"}}");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    stop(running).await;
    stop(hasty).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Binding
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_query_and_body_bind_to_fields() {
    let (running, addr) = start(local()).await;
    let c = client();

    // A path value keeps its case; percent-escapes are decoded.
    let r = get(&c, addr, "/echo/MiXeD").await;
    assert_eq!(
        r.assert_ok(),
        &json!({"said": "MiXeD", "times": null, "shouted": null, "labels": []})
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = get(&c, addr, "/echo/Hello%20W%C3%B6rld").await;
    assert_eq!(r.assert_ok()["said"], "Hello Wörld");

    // Query: a number, a bool, a repeated parameter into a Vec; a single one is a Vec too.
    let r = get(&c, addr, "/echo/q?count=3&loud=true&tags=x&tags=y&tags=x").await;
    assert_eq!(
        r.assert_ok(),
        &json!({"said": "q", "times": 3, "shouted": true, "labels": ["x", "y", "x"]})
    );
    let r = get(&c, addr, "/echo/q?tags=only&loud=false").await;
    assert_eq!(
        r.assert_ok(),
        &json!({"said": "q", "times": null, "shouted": false, "labels": ["only"]})
    );

    // An empty value of a non-string field is "not given".
    let r = get(&c, addr, "/echo/q?count=&loud=").await;
    assert_eq!(r.assert_ok()["times"], Value::Null);

    // Mistyped query values name their field.
    get(&c, addr, "/echo/q?count=abc").await.assert_invalid_field("count");
    get(&c, addr, "/echo/q?count=-1").await.assert_invalid_field("count");
    get(&c, addr, "/echo/q?count=1.5").await.assert_invalid_field("count");
    get(&c, addr, "/echo/q?loud=yes").await.assert_invalid_field("loud");
    // A scalar given twice, an unknown parameter, a field both in the path and the query.
    get(&c, addr, "/echo/q?count=1&count=2").await.assert_invalid_field("count");
    let r = get(&c, addr, "/echo/q?bogus=1").await;
    r.assert_invalid_field("bogus");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("bogus"), "{}", r.body);
    get(&c, addr, "/echo/q?text=other").await.assert_invalid_field("text");

    // A JSON body with a path number (negative too).
    assert_eq!(post(&c, addr, "/add/5", r#"{"b": 2}"#).await.assert_ok(), &json!({"sum": 7}));
    assert_eq!(post(&c, addr, "/add/-5", r#"{"b": 2}"#).await.assert_ok(), &json!({"sum": -3}));
    // A field in both the body and the path.
    post(&c, addr, "/add/5", r#"{"a": 1, "b": 2}"#).await.assert_invalid_field("a");
    // A field the event does not have (a misspelling) is refused, not ignored.
    let r = post(&c, addr, "/add/5", r#"{"b": 2, "c": 3}"#).await;
    r.assert_invalid_field("c");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("unknown field"), "{}", r.body);
    // Missing field, by body and by an empty body.
    let r = post(&c, addr, "/add/5", "{}").await;
    r.assert_invalid_field("b");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("missing"), "{}", r.body);
    post(&c, addr, "/add/5", "").await.assert_invalid_field("b");
    // Mistyped: a string in the body is not read as a number; a word in a numeric path.
    post(&c, addr, "/add/5", r#"{"b": "2"}"#).await.assert_invalid_field("b");
    post(&c, addr, "/add/5", r#"{"b": 2.5}"#).await.assert_invalid_field("b");
    post(&c, addr, "/add/five", r#"{"b": 2}"#).await.assert_invalid_field("a");
    // Bodies that are not a JSON object.
    for body in ["[1, 2]", "\"b\"", "42", "null", "{\"b\": 2", "b=2"] {
        let r = post(&c, addr, "/add/5", body).await;
        r.assert_error(400, "invalid");
        assert!(r.error_field().is_none(), "{body}: {}", r.body);
    }
    // A path parameter of a nested route, the rest from the body.
    let r = post(&c, addr, "/rooms/Lobby/messages", r#"{"text": "hi"}"#).await;
    assert_eq!(r.assert_ok(), &json!({"posted": true}));
    post(&c, addr, "/rooms/Lobby/messages", r#"{"text": "hi", "room": "x"}"#)
        .await
        .assert_invalid_field("room");

    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Unknown path, wrong method
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let (running, addr) = start(local()).await;
    let c = client();

    get(&c, addr, "/nowhere").await.assert_error(404, "not_found");
    get(&c, addr, "/echo").await.assert_error(404, "not_found");
    get(&c, addr, "/echo/a/b").await.assert_error(404, "not_found");

    let r = send(c.delete(format!("http://{addr}/ping"))).await;
    r.assert_error(405, "method_not_allowed");
    let allow = r.header("allow").expect("an Allow header").to_owned();
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "PUT"], "Allow: {allow}");
    // Both declared methods answer.
    assert_eq!(send(c.put(format!("http://{addr}/ping"))).await.assert_ok(), &json!({}));

    let r = post(&c, addr, "/echo/x", "{}").await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = get(&c, addr, "/add/1").await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));

    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Auth
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_guards_every_route_and_the_websocket() {
    let (running, addr) = start(local().token("s3cret")).await;
    let c = client();
    let url = |path: &str| format!("http://{addr}{path}");

    for path in ["/ping", "/edri/health", "/edri/events", "/metrics", "/edri/ws", "/nowhere"] {
        for auth in
            [None, Some("Bearer wrong"), Some("Bearer s3cre"), Some("Basic s3cret"), Some("s3cret")]
        {
            let mut request = c.get(url(path));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let r = send(request).await;
            r.assert_error(401, "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{path} {auth:?}");
        }
    }
    // The query token is for the WebSocket only.
    send(c.get(url("/ping?access_token=s3cret"))).await.assert_error(401, "unauthorized");

    let ok = |path: &str| c.get(url(path)).bearer_auth("s3cret");
    assert_eq!(send(ok("/ping")).await.assert_ok(), &json!({}));
    assert!(send(ok("/edri/health")).await.assert_ok()["managers"].is_array());
    assert!(send(ok("/edri/events")).await.assert_ok()["events"].is_array());
    let metrics = send(ok("/metrics")).await;
    assert_eq!(metrics.code, 200);
    assert!(metrics.body.as_str().is_some_and(|t| t.contains("edri_uptime_seconds")));
    send(ok("/nowhere")).await.assert_error(404, "not_found");
    // The scheme is case-insensitive.
    let r = send(c.get(url("/ping")).header("authorization", "bearer s3cret")).await;
    assert_eq!(r.assert_ok(), &json!({}));

    // WebSocket: refused without a token or with a wrong one, at the handshake.
    for path in ["/edri/ws", "/edri/ws?access_token=wrong", "/edri/ws?access_token="] {
        let attempt =
            within("ws connect", tokio_tungstenite::connect_async(format!("ws://{addr}{path}")))
                .await;
        match attempt {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{path}");
            }
            other => panic!("{path}: expected a 401 handshake failure, got {other:?}"),
        }
    }
    // With the query token, and with the header.
    let (mut ws, _) = within(
        "ws connect",
        tokio_tungstenite::connect_async(format!("ws://{addr}/edri/ws?access_token=s3cret")),
    )
    .await
    .expect("the access_token is accepted");
    let (reply, _) = ws_call(&mut ws, json!(1), "Echo", json!({"text": "via query"})).await;
    assert_eq!(reply["ok"]["said"], "via query", "{reply}");

    let mut request = format!("ws://{addr}/edri/ws").into_client_request().unwrap();
    request.headers_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws2, _) = within("ws connect", tokio_tungstenite::connect_async(request))
        .await
        .expect("the header is accepted");
    let (reply, _) = ws_call(&mut ws2, json!(2), "Echo", json!({"text": "via header"})).await;
    assert_eq!(reply["ok"]["said"], "via header", "{reply}");

    drop((ws, ws2));
    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 5. CORS
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_closed_by_default_and_open_for_configured_origins() {
    let (closed, closed_addr) = start(local()).await;
    let (open, open_addr) = start(local().cors_origin("https://app.example")).await;
    let c = client();
    let acao = "access-control-allow-origin";

    let r =
        send(c.get(format!("http://{closed_addr}/ping")).header("origin", "https://app.example"))
            .await;
    assert_eq!(r.assert_ok(), &json!({}));
    assert_eq!(r.header(acao), None, "closed by default");
    let preflight = send(
        c.request(reqwest::Method::OPTIONS, format!("http://{closed_addr}/ping"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET"),
    )
    .await;
    assert_eq!(preflight.header(acao), None, "closed by default (preflight)");

    let r = send(c.get(format!("http://{open_addr}/ping")).header("origin", "https://app.example"))
        .await;
    assert_eq!(r.assert_ok(), &json!({}));
    assert_eq!(r.header(acao), Some("https://app.example"));
    let preflight = send(
        c.request(reqwest::Method::OPTIONS, format!("http://{open_addr}/add/1"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type"),
    )
    .await;
    assert!(
        (200..300).contains(&preflight.code),
        "preflight: {} {}",
        preflight.code,
        preflight.body
    );
    assert_eq!(preflight.header(acao), Some("https://app.example"));
    // Another origin is not allowed.
    let r =
        send(c.get(format!("http://{open_addr}/ping")).header("origin", "https://evil.example"))
            .await;
    assert_eq!(r.header(acao), None, "only the configured origin");

    stop(closed).await;
    stop(open).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Body limit
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413_and_the_server_goes_on() {
    let (running, addr) = start(local().body_limit(1024)).await;
    let c = client();

    // Exactly at the limit: fine; one byte more is not.
    let body = format!("{{\"b\": 2}}{}", " ".repeat(1024 - 8));
    assert_eq!(body.len(), 1024);
    assert_eq!(post(&c, addr, "/add/1", body).await.assert_ok(), &json!({"sum": 3}));
    let body = format!("{{\"b\": 2}}{}", " ".repeat(1024 - 7));
    assert_eq!(post(&c, addr, "/add/1", body).await.code, 413, "1025 bytes");
    // Over it.
    let body = format!("{{\"b\": 2}}{}", " ".repeat(1100));
    let r = post(&c, addr, "/add/1", body).await;
    assert_eq!(r.code, 413, "body: {}", r.body);
    assert!(r.body["error"]["status"].is_string(), "a JSON error: {}", r.body);
    // A chunked body (no Content-Length) over the limit too, written by hand.
    let mut tcp = within("tcp connect", tokio::net::TcpStream::connect(addr)).await.unwrap();
    let mut request =
        b"POST /add/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..8 {
        request.extend_from_slice(b"200\r\n");
        request.extend_from_slice(&[b' '; 0x200]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading it all.
    let _ = within("tcp write", tcp.write_all(&request)).await;
    let mut answer = Vec::new();
    let _ = within("the answer to a chunked body", tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "chunked body: {answer:?}");
    // And the next request is answered.
    assert_eq!(post(&c, addr, "/add/1", r#"{"b": 41}"#).await.assert_ok(), &json!({"sum": 42}));
    assert!(
        running.metrics().contains("edri_api_http_responses_total{code=\"413\"} 3"),
        "{}",
        running.metrics()
    );
    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Robustness
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_malformed_requests_then_a_valid_one() {
    let (running, addr) = start(local().body_limit(1024)).await;
    let c = client();
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u64 {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let c = c.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut garbage = Garbage(0x9E37_79B9_7F4A_7C15 ^ (i + 1));
            let url = |path: &str| format!("http://{addr}{path}");
            // (expected code, reply) or None for a raw TCP connection.
            let outcome: Option<(u16, Reply)> = match i % 10 {
                0 => Some((400, post(&c, addr, "/add/1", "{\"b\": 2,,}").await)),
                1 => Some((400, post(&c, addr, "/add/1", r#"{"b": "two"}"#).await)),
                2 => Some((413, post(&c, addr, "/add/1", garbage.bytes(2048)).await)),
                3 => {
                    let mut bytes = garbage.bytes(64 + (i as usize % 512));
                    bytes[0] = 0xFF; // never valid UTF-8, never JSON
                    Some((400, post(&c, addr, "/add/1", bytes).await))
                }
                4 => Some((400, get(&c, addr, "/echo/%FF%FE%80").await)),
                5 => Some((400, get(&c, addr, "/echo/x?count=%FF").await)),
                6 => Some((400, get(&c, addr, &format!("/echo/x?k{i}=1")).await)),
                7 => Some((400, send(c.post(url("/rooms/r/messages")).body("[\"text\"]")).await)),
                8 => {
                    let mut tcp =
                        within("tcp connect", tokio::net::TcpStream::connect(addr)).await.unwrap();
                    let mut bytes = garbage.bytes(200);
                    bytes.extend_from_slice(b"\r\n\r\n");
                    // The server may close before all is written: that is fine.
                    let _ = within("tcp write", tcp.write_all(&bytes)).await;
                    let _ = tcp.shutdown().await;
                    let mut answer = Vec::new();
                    // The server must end the connection (EOF or reset), not hang.
                    let _ = within(
                        "the server closes a garbage connection",
                        tcp.read_to_end(&mut answer),
                    )
                    .await;
                    if !answer.is_empty() {
                        let text = String::from_utf8_lossy(&answer);
                        assert!(text.starts_with("HTTP/1.1 4"), "answer to garbage: {text:?}");
                    }
                    None
                }
                _ => Some((400, post(&c, addr, "/fail", r#"{"kind": 5}"#).await)),
            };
            if let Some((code, reply)) = outcome {
                assert_eq!(reply.code, code, "request #{i}: {}", reply.body);
                assert!(reply.body["error"]["status"].is_string(), "request #{i}: {}", reply.body);
            }
            i % 10
        });
    }
    let mut by_kind = [0u32; 10];
    while let Some(done) = within("the malformed requests", tasks.join_next()).await {
        by_kind[done.expect("no task panicked") as usize] += 1;
    }
    assert_eq!(by_kind, [100; 10]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // Still serving, correctly.
    assert_eq!(post(&c, addr, "/add/40", r#"{"b": 2}"#).await.assert_ok(), &json!({"sum": 42}));
    let r = get(&c, addr, "/echo/fine?count=2").await;
    assert_eq!(r.assert_ok()["times"], 2);
    let metrics = running.metrics();
    assert!(metric(&metrics, "edri_api_http_responses_total").is_some());
    let s = scrape(&metrics);
    let count = |code: &str| {
        s.samples
            .iter()
            .find(|x| {
                x.metric == "edri_api_http_responses_total" && x.labels.get("code") == Some(code)
            })
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("{other:?}"),
            })
            .unwrap_or(0.0)
    };
    assert!(count("400") >= 800.0, "400s: {}", count("400"));
    assert!(count("413") >= 100.0, "413s: {}", count("413"));
    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 8. WebSocket
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_requests_are_answered_by_id_in_any_order() {
    let (running, addr) = start(local()).await;
    let mut ws = ws_connect(addr).await;

    // Five naps sent together, the first one the longest: answers come back out of order.
    for tag in 1..=5u32 {
        let millis = u64::from(5 - tag) * 100;
        ws_send(
            &mut ws,
            json!({"event": "Nap", "id": tag, "data": {"tag": tag, "millis": millis}}),
        )
        .await;
    }
    ws_send(&mut ws, json!({"event": "Echo", "id": "e", "data": {"text": "hello", "tags": ["a"]}}))
        .await;
    let mut replies: HashMap<String, Value> = HashMap::new();
    let mut order = Vec::new();
    for _ in 0..6 {
        let reply = ws_recv(&mut ws).await;
        let id = reply["id"].to_string();
        order.push(id.clone());
        assert!(replies.insert(id, reply).is_none(), "one reply per id");
    }
    for tag in 1..=5u32 {
        let reply = &replies[&tag.to_string()];
        assert_eq!(reply, &json!({"id": tag, "ok": {"woke": tag}}));
    }
    assert_eq!(
        replies["\"e\""],
        json!({"id": "e", "ok": {"said": "hello", "times": null, "shouted": null, "labels": ["a"]}})
    );
    let position = |id: &str| order.iter().position(|x| x == id).unwrap();
    assert!(position("5") < position("1"), "the shortest nap answers first: {order:?}");

    // A notification from the client: `ok: null` once delivered.
    let (reply, _) = ws_call(&mut ws, json!(7), "Said", json!({"room": "r", "text": "t"})).await;
    assert_eq!(reply, json!({"id": 7, "ok": null}));
    // A request answering with a failure.
    let (reply, _) = ws_call(&mut ws, json!(8), "Nap", json!({"tag": 1})).await;
    assert_eq!(reply["error"]["status"], "invalid", "{reply}");
    assert_eq!(reply["error"]["field"], "millis", "{reply}");

    drop(ws);
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_subscriptions_filter_and_unsubscribe() {
    let (running, addr) = start(local()).await;
    let mut ws = ws_connect(addr).await;

    ws_send(&mut ws, json!({"subscribe": "Said", "filter": {"room": "a"}, "id": 1})).await;
    assert_eq!(ws_recv(&mut ws).await, json!({"id": 1, "subscribed": "Said"}));

    // Raised by a manager's handler: first room "b", then room "a". "b" would arrive first.
    let (reply, pushes) =
        ws_call(&mut ws, json!(2), "PostMessage", json!({"room": "b", "text": "for b"})).await;
    assert_eq!(reply, json!({"id": 2, "ok": {"posted": true}}));
    assert!(pushes.is_empty(), "nothing for room b: {pushes:?}");
    ws_send(
        &mut ws,
        json!({"event": "PostMessage", "id": 3, "data": {"room": "a", "text": "for a"}}),
    )
    .await;
    let mut got_reply = false;
    let mut got_push = false;
    for _ in 0..2 {
        let message = ws_recv(&mut ws).await;
        if message.get("id") == Some(&json!(3)) {
            assert_eq!(message, json!({"id": 3, "ok": {"posted": true}}));
            got_reply = true;
        } else {
            assert_eq!(message, json!({"event": "Said", "data": {"room": "a", "text": "for a"}}));
            got_push = true;
        }
    }
    assert!(got_reply && got_push);

    // Raised from outside any manager, through the router's context.
    running.ctx().notify(Said { room: "b".into(), text: "direct b".into() }).await.unwrap();
    running.ctx().notify(Said { room: "a".into(), text: "direct a".into() }).await.unwrap();
    assert_eq!(
        ws_recv(&mut ws).await,
        json!({"event": "Said", "data": {"room": "a", "text": "direct a"}})
    );

    // A REST call raising it reaches the WebSocket subscriber too.
    let r = post(&client(), addr, "/rooms/a/messages", r#"{"text": "from rest"}"#).await;
    assert_eq!(r.assert_ok(), &json!({"posted": true}));
    assert_eq!(
        ws_recv(&mut ws).await,
        json!({"event": "Said", "data": {"room": "a", "text": "from rest"}})
    );

    // Unsubscribe: no more pushes for "a". Resubscribing for "z" then proves the order.
    ws_send(&mut ws, json!({"unsubscribe": "Said", "id": 4})).await;
    assert_eq!(
        ws_recv(&mut ws).await,
        json!({"id": 4, "unsubscribed": "Said", "was_subscribed": true})
    );
    ws_send(&mut ws, json!({"unsubscribe": "Said", "id": 5})).await;
    assert_eq!(
        ws_recv(&mut ws).await,
        json!({"id": 5, "unsubscribed": "Said", "was_subscribed": false})
    );
    running.ctx().notify(Said { room: "a".into(), text: "after".into() }).await.unwrap();
    ws_send(&mut ws, json!({"subscribe": "Said", "filter": {"room": "z", "text": "marker"}})).await;
    assert_eq!(ws_recv(&mut ws).await, json!({"id": null, "subscribed": "Said"}));
    running.ctx().notify(Said { room: "a".into(), text: "after 2".into() }).await.unwrap();
    running.ctx().notify(Said { room: "z".into(), text: "not the marker".into() }).await.unwrap();
    running.ctx().notify(Said { room: "z".into(), text: "marker".into() }).await.unwrap();
    assert_eq!(
        ws_recv(&mut ws).await,
        json!({"event": "Said", "data": {"room": "z", "text": "marker"}}),
        "every filter value must match, and nothing after the unsubscribe"
    );

    // A second client without a subscription gets nothing; an unfiltered one gets everything.
    let mut all = ws_connect(addr).await;
    ws_send(&mut all, json!({"subscribe": "Said", "id": "all"})).await;
    assert_eq!(ws_recv(&mut all).await, json!({"id": "all", "subscribed": "Said"}));
    running.ctx().notify(Said { room: "q".into(), text: "anything".into() }).await.unwrap();
    assert_eq!(
        ws_recv(&mut all).await,
        json!({"event": "Said", "data": {"room": "q", "text": "anything"}})
    );

    drop((ws, all));
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_malformed_messages_are_answered_and_the_socket_stays_open() {
    let (running, addr) = start(local()).await;
    let mut ws = ws_connect(addr).await;

    // (message, expected id, status, field)
    let cases: [(Message, Value, &str, Option<&str>); 11] = [
        (Message::Text("not json".into()), Value::Null, "invalid", None),
        (Message::Text("[1, 2]".into()), Value::Null, "invalid", None),
        (Message::Text("{\"id\": 9".into()), Value::Null, "invalid", None),
        (Message::Binary(vec![0xFF, 0x00, 0x7B].into()), Value::Null, "invalid", None),
        (Message::Text(r#"{"id": 1}"#.into()), json!(1), "invalid", None),
        (
            Message::Text(r#"{"event": "Nope", "id": 2}"#.into()),
            json!(2),
            "not_found",
            Some("event"),
        ),
        (
            Message::Text(r#"{"event": "Add", "id": 3, "data": {"a": 1, "b": 2}}"#.into()),
            json!(3),
            "not_found",
            Some("event"),
        ),
        (
            Message::Text(r#"{"event": "Echo", "id": 4, "data": {"text": 5}}"#.into()),
            json!(4),
            "invalid",
            Some("text"),
        ),
        (
            Message::Text(r#"{"event": "Echo", "id": 5, "data": [1]}"#.into()),
            json!(5),
            "invalid",
            Some("data"),
        ),
        (
            Message::Text(r#"{"subscribe": "Echo", "id": 6}"#.into()),
            json!(6),
            "not_found",
            Some("subscribe"),
        ),
        (
            Message::Text(r#"{"subscribe": "Said", "id": 7, "filter": 3}"#.into()),
            json!(7),
            "invalid",
            Some("filter"),
        ),
    ];
    for (message, id, status, field) in cases {
        let shown = format!("{message:?}");
        within("ws send", ws.send(message)).await.unwrap();
        let reply = ws_recv(&mut ws).await;
        assert_eq!(reply["id"], id, "{shown}: {reply}");
        assert_eq!(reply["error"]["status"], status, "{shown}: {reply}");
        assert!(reply["error"]["message"].is_string(), "{shown}: {reply}");
        assert_eq!(reply["error"]["field"].as_str(), field, "{shown}: {reply}");
        // And a valid one on the same socket right after.
        let (ok, _) = ws_call(&mut ws, json!("after"), "Echo", json!({"text": "still here"})).await;
        assert_eq!(ok["ok"]["said"], "still here", "after {shown}: {ok}");
    }
    drop(ws);
    stop(running).await;
}

/// Messages of an unknown kind, with values of the wrong type, or with fields the event does
/// not have: each gets an error reply naming the key at fault (or none, for the message as a
/// whole); the socket keeps answering calls and pushing to its subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_bad_messages_name_the_key_at_fault_and_the_socket_keeps_working() {
    let (running, addr) = start(local()).await;
    let mut ws = ws_connect(addr).await;
    ws_send(&mut ws, json!({"subscribe": "Said", "id": "sub", "filter": {"room": "k"}})).await;
    assert_eq!(ws_recv(&mut ws).await, json!({"id": "sub", "subscribed": "Said"}));

    // (message, status, field, words the message must contain)
    let cases: [(Value, &str, Option<&str>, &[&str]); 10] = [
        (json!({"id": 1, "type": "call", "name": "Echo"}), "invalid", None, &["`event`"]),
        (json!({"id": 2, "Event": "Echo"}), "invalid", None, &["`subscribe`"]),
        (json!({"id": 3, "event": 5}), "invalid", Some("event"), &["`event`", "string"]),
        (json!({"id": 4, "event": null}), "invalid", Some("event"), &["`event`", "string"]),
        (json!({"id": 5, "event": "Echo", "data": "text"}), "invalid", Some("data"), &["object"]),
        (
            json!({"id": 6, "event": "Echo", "data": {"text": "x", "colour": "red"}}),
            "invalid",
            Some("colour"),
            &["`colour`", "text"],
        ),
        (json!({"id": 7, "event": "Echo", "data": null}), "invalid", Some("text"), &["`text`"]),
        (json!({"id": 8, "subscribe": "Nope"}), "not_found", Some("subscribe"), &["`Nope`"]),
        (
            json!({"id": 9, "subscribe": "Said", "filter": ["room"]}),
            "invalid",
            Some("filter"),
            &["`filter`", "an array"],
        ),
        (json!({"id": 10, "unsubscribe": 1}), "invalid", Some("unsubscribe"), &["string"]),
    ];
    for (message, status, field, words) in cases {
        let id = message["id"].clone();
        ws_send(&mut ws, message.clone()).await;
        let (reply, pushes) = ws_until_id(&mut ws, &id).await;
        assert!(pushes.is_empty(), "{message}: {pushes:?}");
        assert_eq!(reply["error"]["status"], status, "{message}: {reply}");
        assert_eq!(reply["error"]["field"].as_str(), field, "{message}: {reply}");
        let text = reply["error"]["message"].as_str().unwrap_or_default();
        for word in words {
            assert!(text.contains(word), "{message}: `{word}` missing from {reply}");
        }
        let (ok, _) = ws_call(&mut ws, json!("after"), "Echo", json!({"text": "still here"})).await;
        assert_eq!(ok["ok"]["said"], "still here", "after {message}: {ok}");
    }

    // Keys a message does not use are ignored, as they always were.
    let extra = json!({"event": "Echo", "id": 11, "data": {"text": "hi"}, "trace": "t-1"});
    ws_send(&mut ws, extra).await;
    let (reply, _) = ws_until_id(&mut ws, &json!(11)).await;
    assert_eq!(reply["ok"]["said"], "hi", "{reply}");

    // The subscription made before the bad messages still pushes.
    running.ctx().notify(Said { room: "k".into(), text: "still pushed".into() }).await.unwrap();
    assert_eq!(
        ws_recv(&mut ws).await,
        json!({"event": "Said", "data": {"room": "k", "text": "still pushed"}})
    );
    drop(ws);
    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 9. Slow client
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_websocket_client_is_disconnected() {
    let (running, addr) = start(local().ws_queue(8)).await;
    let c = client();
    let mut slow = ws_connect(addr).await;
    ws_send(&mut slow, json!({"subscribe": "Said", "filter": {"room": "flood"}, "id": 1})).await;
    assert_eq!(ws_recv(&mut slow).await, json!({"id": 1, "subscribed": "Said"}));

    // Never read again; flood until the broker gives up on the client.
    let big = "x".repeat(16 * 1024);
    let flood = async {
        for i in 0..5_000u32 {
            running.ctx().notify(Said { room: "flood".into(), text: big.clone() }).await.unwrap();
            if i % 32 == 0 && metric(&running.metrics(), "edri_api_ws_dropped_total") >= Some(1.0) {
                return i;
            }
        }
        5_000
    };
    let sent = within("the flood", flood).await;
    // The bridge may still be pushing the last ones: wait (bounded) for the drop.
    let mut dropped = 0.0;
    for _ in 0..100 {
        dropped = metric(&running.metrics(), "edri_api_ws_dropped_total").unwrap_or(0.0);
        if dropped >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dropped >= 1.0, "the slow client was not dropped after {sent} notifications");
    let over_http = get_text(&c, addr, "/metrics").await;
    let s = scrape(&over_http);
    let sample =
        s.samples.iter().find(|x| x.metric == "edri_api_ws_dropped_total").expect("the metric");
    assert!(
        matches!(sample.value, prometheus_parse::Value::Counter(v) if v >= 1.0),
        "{:?}",
        sample.value
    );

    // Reading now: buffered pushes, then a close with 1008, or the end of the stream.
    let mut pushes = 0u32;
    let mut ending = None;
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline && pushes < 100_000 {
        match within("reading the slow client", slow.next()).await {
            Some(Ok(Message::Text(text))) => {
                let push: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(
                    (&push["event"], &push["data"]["room"]),
                    (&json!("Said"), &json!("flood"))
                );
                pushes += 1;
            }
            Some(Ok(Message::Close(frame))) => {
                ending = Some(format!("close {frame:?}"));
                if let Some(frame) = frame {
                    assert_eq!(frame.code, CloseCode::Policy, "{frame:?}");
                    assert!(!frame.reason.is_empty(), "a reason is given");
                }
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                ending = Some(format!("error {e}"));
                break;
            }
            None => {
                ending = Some("end of stream".to_owned());
                break;
            }
        }
    }
    let ending = ending.expect("the slow client's stream ends");
    assert!(pushes <= sent, "{pushes} pushes for {sent} sent");
    eprintln!("slow client: {sent} notifications sent, {pushes} read, then {ending}");

    // A new client is served.
    let mut fresh = ws_connect(addr).await;
    let (reply, _) = ws_call(&mut fresh, json!(1), "Echo", json!({"text": "fresh"})).await;
    assert_eq!(reply["ok"]["said"], "fresh");
    ws_send(&mut fresh, json!({"subscribe": "Said", "filter": {"room": "flood"}, "id": 2})).await;
    assert_eq!(ws_recv(&mut fresh).await, json!({"id": 2, "subscribed": "Said"}));
    // Paced, a client that reads is never dropped, even with a queue of 8.
    for i in 0..50 {
        let text = format!("small {i}");
        running.ctx().notify(Said { room: "flood".into(), text: text.clone() }).await.unwrap();
        assert_eq!(
            ws_recv(&mut fresh).await,
            json!({"event": "Said", "data": {"room": "flood", "text": text}})
        );
    }
    let metrics = running.metrics();
    assert_eq!(metric(&metrics, "edri_api_ws_dropped_total"), Some(dropped), "no other drop");
    assert_eq!(metric(&metrics, "edri_api_ws_clients"), Some(1.0), "only the fresh client is left");
    assert!(metric(&metrics, "edri_api_ws_pushed_total") >= Some(1.0));

    drop(fresh);
    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 10. Metrics, catalog, health
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_catalog_and_health() {
    let (running, addr) = start(local()).await;
    let c = client();
    // `rename`, `skip` and `default` are followed by binding and by the catalog.
    let r = post(&c, addr, "/renamed", r#"{"userName": "ada"}"#).await;
    assert_eq!(r.assert_ok()["greeting"], "ada 7 0");
    post(&c, addr, "/renamed", r#"{"user_name": "ada"}"#).await.assert_invalid_field("user_name");
    post(&c, addr, "/renamed", r#"{"userName": "ada", "cache": 1}"#)
        .await
        .assert_invalid_field("cache");
    let catalog = c.get(format!("http://{addr}/edri/events")).send().await.unwrap();
    let catalog: Value = catalog.json().await.unwrap();
    let renamed = catalog["events"].as_array().unwrap().iter().find(|e| e["name"] == "Renamed");
    let fields = &renamed.expect("Renamed is listed")["fields"];
    assert_eq!(fields["required"], json!(["userName"]), "{fields}");
    assert!(fields["properties"].get("cache").is_none(), "{fields}");
    assert!(fields["properties"].get("level").is_some(), "{fields}");
    // Four calls: a call is recorded right after its answer is sent, so the first three are
    // surely recorded once the fourth is answered.
    for i in 0..4 {
        assert_eq!(
            get(&c, addr, &format!("/echo/m{i}")).await.assert_ok()["said"],
            format!("m{i}")
        );
    }

    // /metrics
    let text = get_text(&c, addr, "/metrics").await;
    let s = scrape(&text);
    let handled = s
        .samples
        .iter()
        .find(|x| {
            x.metric == "edri_events_handled_total"
                && x.labels.get("event") == Some("Echo")
                && x.labels.get("manager") == Some("ApiSvc")
        })
        .unwrap_or_else(|| panic!("no edri_events_handled_total for Echo:\n{text}"));
    assert!(
        matches!(handled.value, prometheus_parse::Value::Counter(v) if v >= 3.0),
        "{:?}",
        handled.value
    );
    assert_eq!(handled.labels.get("mode"), Some("inline"));
    let histogram = s
        .samples
        .iter()
        .find(|x| {
            x.metric == "edri_handler_duration_seconds" && x.labels.get("event") == Some("Echo")
        })
        .unwrap_or_else(|| panic!("no histogram for Echo:\n{text}"));
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.len() > 1, "{buckets:?}");
            let inf = buckets.iter().find(|b| b.less_than.is_infinite()).expect("a +Inf bucket");
            assert!(inf.count >= 3.0, "{buckets:?}");
            assert!(
                buckets.windows(2).all(|w| w[0].count <= w[1].count),
                "cumulative: {buckets:?}"
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
    for name in ["edri_handler_duration_seconds_sum", "edri_handler_duration_seconds_count"] {
        assert!(
            s.samples.iter().any(|x| x.metric == name && x.labels.get("event") == Some("Echo")),
            "{name}"
        );
    }
    let sent = s
        .samples
        .iter()
        .find(|x| {
            x.metric == "edri_events_delivered_total" && x.labels.get("event") == Some("Echo")
        })
        .expect("edri_events_delivered_total for Echo");
    assert_eq!(sent.labels.get("kind"), Some("request"));
    for name in [
        "edri_uptime_seconds",
        "edri_mailbox_depth",
        "edri_mailbox_capacity",
        "edri_manager_busy",
        "edri_handler_failures_total",
        "edri_handler_panics_total",
        "edri_workers",
        "edri_workers_idle",
        "edri_thread_calls_refused_total",
        "edri_api_http_responses_total",
        "edri_api_ws_clients",
        "edri_api_ws_pushed_total",
        "edri_api_ws_dropped_total",
    ] {
        assert!(s.samples.iter().any(|x| x.metric == name), "{name} missing:\n{text}");
    }
    assert!(
        running.metrics().contains("edri_events_handled_total{manager=\"ApiSvc\",event=\"Echo\"")
    );

    // /edri/events
    let catalog = get(&c, addr, "/edri/events").await;
    let catalog = catalog.assert_ok();
    let events = catalog["events"].as_array().expect("events");
    let by_name: HashMap<&str, &Value> =
        events.iter().map(|e| (e["name"].as_str().expect("a name"), e)).collect();
    assert_eq!(by_name.len(), events.len(), "names are unique");
    for name in
        ["Echo", "Add", "Fail", "Ping", "Pong", "Orphan", "Sleepy", "Nap", "PostMessage", "Said"]
    {
        assert!(by_name.contains_key(name), "{name} missing from {catalog}");
    }
    for name in ["Unexposed", "Quiet", "edri.HealthCheck"] {
        assert!(!by_name.contains_key(name), "{name} has neither http nor ws: {catalog}");
    }
    let defs = catalog["$defs"].as_object().expect("$defs");
    let resolve = |schema: &Value| -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => defs[r.rsplit('/').next().unwrap()].clone(),
            None => schema.clone(),
        }
    };
    let echo = by_name["Echo"];
    assert_eq!(echo["kind"], "request");
    assert_eq!(echo["http"], json!({"method": "GET", "path": "/echo/{text}"}));
    assert_eq!(echo["ws"], true);
    assert!(echo["rust_name"].as_str().unwrap().ends_with("Echo"), "{echo}");
    let fields = resolve(&echo["fields"]);
    assert_eq!(
        fields["required"],
        json!(["text"]),
        "Option and #[serde(default)] are optional: {fields}"
    );
    assert_eq!(fields["properties"]["text"]["type"], "string");
    assert_eq!(fields["properties"]["tags"]["type"], "array");
    let response = resolve(&echo["response"]);
    assert!(response["properties"]["said"].is_object(), "{response}");

    let nap = by_name["Nap"];
    assert_eq!(nap["http"], Value::Null);
    assert_eq!(nap["ws"], true);
    let fields = resolve(&nap["fields"]);
    assert_eq!(fields["properties"]["tag"]["type"], "integer", "u32: {fields}");
    assert_eq!(fields["properties"]["millis"]["type"], "integer", "u64: {fields}");
    let response = resolve(&nap["response"]);
    assert_eq!(response["properties"]["woke"]["type"], "integer", "{response}");

    let add = by_name["Add"];
    assert_eq!(add["http"], json!({"method": "POST", "path": "/add/{a}"}));
    assert_eq!(add["ws"], false);
    let add_fields = resolve(&add["fields"]);
    let mut required: Vec<&str> =
        add_fields["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    required.sort_unstable();
    assert_eq!(required, ["a", "b"]);

    let said = by_name["Said"];
    assert_eq!(said["kind"], "notification");
    assert_eq!(said["http"], Value::Null);
    assert_eq!(said["ws"], true);
    assert_eq!(said["response"], Value::Null);
    assert_eq!(resolve(&said["fields"])["properties"]["room"]["type"], "string");

    // /edri/health
    let health = get(&c, addr, "/edri/health").await;
    let health = health.assert_ok();
    assert_eq!(health["pid"], std::process::id());
    assert!(health["uptime_ms"].is_u64());
    let managers = health["managers"].as_array().expect("managers");
    let names: Vec<&str> = managers.iter().map(|m| m["name"].as_str().unwrap()).collect();
    for name in [
        "ApiSvc",
        "SlowSvc",
        "AbsentSvc",
        "edri.health",
        "edri.store",
        "edri.scheduler",
        "edri.api",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let api_svc = managers.iter().find(|m| m["name"] == "ApiSvc").unwrap();
    for key in
        ["queued", "capacity", "processed", "failed", "crashed", "busy", "workers", "workers_idle"]
    {
        assert!(api_svc.get(key).is_some(), "{key} missing from {api_svc}");
    }
    assert!(api_svc["processed"].as_u64().unwrap() >= 3, "{api_svc}");
    assert_eq!(api_svc["capacity"], 1024);

    stop(running).await;
}

// ---------------------------------------------------------------------------------------------
// 11. Shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_port_and_the_websockets() {
    let (running, addr) = start(local()).await;
    let c = client();
    assert_eq!(get(&c, addr, "/ping").await.assert_ok(), &json!({}));
    let mut ws = ws_connect(addr).await;
    let (reply, _) = ws_call(&mut ws, json!(1), "Echo", json!({"text": "before"})).await;
    assert_eq!(reply["ok"]["said"], "before");

    stop(running).await;

    let connect =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
    assert!(matches!(connect, Ok(Err(_))), "the port still accepts connections: {connect:?}");

    let mut ending = None;
    for _ in 0..10 {
        match within("the WebSocket ends", ws.next()).await {
            Some(Ok(Message::Close(frame))) => {
                if let Some(frame) = &frame {
                    assert_eq!(frame.code, CloseCode::Away, "{frame:?}");
                }
                ending = Some(format!("{frame:?}"));
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(e)) => {
                ending = Some(format!("error {e}"));
                break;
            }
            None => {
                ending = Some("end".to_owned());
                break;
            }
        }
    }
    let ending = ending.expect("the WebSocket ended");
    eprintln!("WebSocket at shutdown: {ending}");
    // A new request fails: nobody listens.
    let r =
        tokio::time::timeout(Duration::from_secs(5), c.get(format!("http://{addr}/ping")).send())
            .await;
    assert!(matches!(r, Ok(Err(_))), "still answering after shutdown: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_client_that_does_not_read_is_dropped() {
    // The default queue (1024): a burst fits, a client that never reads does not.
    let (running, addr) = start(local()).await;
    let mut sleeper = ws_connect(addr).await;
    let mut reader = ws_connect(addr).await;
    for ws in [&mut sleeper, &mut reader] {
        ws_send(ws, json!({"subscribe": "Said", "filter": {"room": "big"}, "id": 1})).await;
        assert_eq!(ws_recv(ws).await, json!({"id": 1, "subscribed": "Said"}));
    }
    const N: usize = 5_000;
    let reading = tokio::spawn(async move {
        let mut n = 0;
        while n < N {
            match within("the reader", reader.next()).await {
                Some(Ok(Message::Text(_))) => n += 1,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => return Err(format!("after {n}: {other:?}")),
            }
        }
        Ok(reader)
    });
    let big = "y".repeat(4 * 1024);
    let flood = async {
        for _ in 0..N {
            running.ctx().notify(Said { room: "big".into(), text: big.clone() }).await.unwrap();
        }
    };
    within("the flood", flood).await;
    let mut reader =
        within("the reader", reading).await.unwrap().expect("the reading client gets every push");
    let metrics = running.metrics();
    assert_eq!(
        metric(&metrics, "edri_api_ws_dropped_total"),
        Some(1.0),
        "only the sleeper is dropped"
    );
    assert_eq!(metric(&metrics, "edri_api_ws_clients"), Some(1.0));
    // The reader is still connected and served.
    let (reply, _) = ws_call(&mut reader, json!(2), "Echo", json!({"text": "awake"})).await;
    assert_eq!(reply["ok"]["said"], "awake");
    drop((sleeper, reader));
    stop(running).await;
}

/// A WebSocket message over the body limit ends that client only; other clients and new ones
/// are served. (What the client sees is reported, not asserted: today the connection is dropped
/// without a close frame; RFC 6455 would have close code 1009.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_over_the_limit_ends_only_that_client() {
    let (running, addr) = start(local().body_limit(1024)).await;
    let mut bystander = ws_connect(addr).await;
    let mut big = ws_connect(addr).await;
    // Just under the limit is fine.
    let text = "z".repeat(900);
    let (reply, _) = ws_call(&mut big, json!(1), "Echo", json!({ "text": text })).await;
    assert_eq!(reply["ok"]["said"], text);
    // Over it: never answered with `ok`.
    let message = json!({"event": "Echo", "id": 2, "data": {"text": "z".repeat(5_000)}});
    let _ = within("ws send", big.send(Message::Text(message.to_string().into()))).await;
    let mut ending = None;
    for _ in 0..10 {
        match within("the oversized message's outcome", big.next()).await {
            Some(Ok(Message::Text(text))) => {
                let reply: Value = serde_json::from_str(&text).unwrap();
                assert!(reply.get("ok").is_none(), "an oversized message was served: {reply}");
                assert!(reply["error"].is_object(), "{reply}");
                ending = Some(format!("error reply {reply}"));
                break;
            }
            Some(Ok(Message::Close(frame))) => {
                ending = Some(format!("close {frame:?}"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                ending = Some(format!("error {e}"));
                break;
            }
            None => {
                ending = Some("end of stream".to_owned());
                break;
            }
        }
    }
    // The client is told why: close code 1009 (message too big).
    let ending = ending.expect("an outcome");
    assert!(ending.starts_with("close") && ending.contains("code: Size"), "{ending}");
    // The other client and a new one are served.
    let (reply, _) = ws_call(&mut bystander, json!(3), "Echo", json!({"text": "still"})).await;
    assert_eq!(reply["ok"]["said"], "still");
    let mut fresh = ws_connect(addr).await;
    let (reply, _) = ws_call(&mut fresh, json!(4), "Echo", json!({"text": "new"})).await;
    assert_eq!(reply["ok"]["said"], "new");
    drop((bystander, big, fresh));
    stop(running).await;
}

/// `?access_token=` as browsers send it: `URLSearchParams` / `encodeURIComponent`
/// percent-encode `+`, `/` and `=`, which base64 tokens contain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_access_token_is_percent_decoded() {
    let (running, addr) = start(local().token("a+b/c=")).await;
    // Unencoded, `+` is a space in a query: that is another token.
    let raw = within(
        "ws connect",
        tokio_tungstenite::connect_async(format!("ws://{addr}/edri/ws?access_token=a+b/c=")),
    )
    .await;
    assert!(raw.is_err(), "`a b/c=` is not the token");
    drop(raw);
    // The encoded form is the same token.
    let encoded = within(
        "ws connect",
        tokio_tungstenite::connect_async(format!("ws://{addr}/edri/ws?access_token=a%2Bb%2Fc%3D")),
    )
    .await;
    let status = match &encoded {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 101, "a percent-encoded access_token is refused");
    drop(encoded);
    stop(running).await;
}
