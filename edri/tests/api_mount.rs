#![allow(missing_docs)]
//! The broker opened up, over real HTTP on 127.0.0.1: routes and layers of the user's own
//! served by the broker (`Api::merge`, `Api::layer`) behind its tokens; named tokens whose
//! caller reaches handlers (`Ctx::caller`, along the chain, in a thread handler too) and
//! merged routes (the `Caller` extractor); the broker's router served by the user's own
//! axum server (`Api::embedded`, `Running::api_router`); and `?` on common error types in
//! handlers (`std::io::Error`, `anyhow::Error`, `Box<dyn Error>`).

use edri::api::Api;
use edri::api::axum::{self, Extension, Router, extract::Request, middleware, routing::get};
use edri::prelude::*;
use edri::{Caller, StartError};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Who is asking: answered by the handler's own caller and by the one a request it sends
/// reaches.
#[event(request, http = "POST /mount/whoami", ws)]
#[derive(Debug, Clone)]
pub struct MountWhoAmI {
    pub tag: u32,
    #[response]
    pub caller: Option<String>,
    #[response]
    pub chained: Option<String>,
}

/// Sent on by `MountWhoAmI`'s handler; answered in a thread.
#[event(request)]
#[derive(Debug, Clone)]
pub struct MountInner {
    #[response]
    pub caller: Option<String>,
}

/// Reads a file: `?` on `std::io::Error`.
#[event(request, http = "GET /mount/file")]
#[derive(Debug, Clone)]
pub struct MountReadFile {
    pub path: String,
    #[response]
    pub bytes: u64,
}

/// `?` on `anyhow::Error` (with context) and on `Box<dyn Error + Send + Sync>`.
#[event(request, http = "GET /mount/parse")]
#[derive(Debug, Clone)]
pub struct MountParse {
    pub text: String,
    pub boxed: bool,
    #[response]
    pub value: u32,
}

/// A handler returning `anyhow::Result` itself.
#[event(request, http = "GET /mount/anyhow")]
#[derive(Debug, Clone)]
pub struct MountAnyhow {
    pub fail: bool,
}

#[derive(Default)]
pub struct MountSvc;

fn parse_boxed(text: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Ok(text.parse::<u32>()?)
}

#[manager]
impl MountSvc {
    #[solve]
    async fn whoami(
        &mut self,
        ev: &MountWhoAmI,
        ctx: &Ctx,
    ) -> Result<MountWhoAmIResponse, Failure> {
        let caller = ctx.caller().map(|c| c.to_string());
        let inner = ctx.request(MountInner {}).await?;
        let _ = ev.tag;
        Ok(MountWhoAmIResponse { caller, chained: inner.caller })
    }

    #[solve]
    fn read_file(&self, ev: &MountReadFile) -> Result<MountReadFileResponse, Failure> {
        let bytes = std::fs::metadata(&ev.path)?.len();
        Ok(MountReadFileResponse { bytes })
    }

    #[solve]
    fn parse(&self, ev: &MountParse) -> Result<MountParseResponse, Failure> {
        use anyhow::Context as _;
        let value = if ev.boxed {
            parse_boxed(&ev.text)?
        } else {
            let parsed: anyhow::Result<u32> =
                ev.text.parse::<u32>().with_context(|| format!("reading `{}`", ev.text));
            parsed?
        };
        Ok(MountParseResponse { value })
    }

    #[solve]
    fn anyhow(&self, ev: &MountAnyhow) -> anyhow::Result<MountAnyhowResponse> {
        anyhow::ensure!(!ev.fail, "asked to fail");
        Ok(MountAnyhowResponse)
    }
}

/// Answers `MountInner` in a thread, for another manager's handler.
#[derive(Default)]
pub struct MountInnerSvc;

#[manager]
impl MountInnerSvc {
    #[solve(thread)]
    fn inner(_: MountInner, ctx: Ctx) -> MountInnerResponse {
        MountInnerResponse { caller: ctx.caller().map(|c| c.name().to_owned()) }
    }
}

const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {LIMIT:?}: {what}"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(LIMIT).build().unwrap()
}

/// Status, body (JSON when it is, else a string) and the `x-mine` header.
async fn call(request: reqwest::RequestBuilder) -> (u16, Value, Option<String>) {
    let response = within("a request", request.send()).await.expect("answered");
    let code = response.status().as_u16();
    let mine = response.headers().get("x-mine").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = within("a body", response.text()).await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, body, mine)
}

/// A route of the user's own: the caller and the router's context as axum extractors.
async fn me(caller: Caller, Extension(ctx): Extension<Ctx>) -> String {
    let health = ctx.request(edri::HealthCheck::default()).await.is_ok();
    format!("{caller} {health}")
}

async fn maybe_me(caller: Option<Caller>) -> String {
    caller.map_or_else(|| "nobody".to_owned(), |c| c.to_string())
}

/// A layer of the user's own: tags every response, and sees the caller.
async fn tag(request: Request, next: middleware::Next) -> axum::response::Response {
    let who = request.extensions().get::<Caller>().map_or("-".to_owned(), ToString::to_string);
    let mut response = next.run(request).await;
    response.headers_mut().insert("x-mine", who.parse().unwrap());
    response
}

fn mine() -> Router {
    Router::new().route("/mine/me", get(me)).route("/mine/maybe", get(maybe_me))
}

/// Asks `MountWhoAmI` (id 7) over a WebSocket opened at `url`; the reply.
async fn ws_whoami(url: &str) -> Value {
    let (mut socket, _) =
        within("connect", tokio_tungstenite::connect_async(url)).await.expect("upgrades");
    let message = json!({"event": "MountWhoAmI", "id": 7, "data": {"tag": 3}}).to_string();
    within("send", socket.send(message.into())).await.expect("sent");
    let reply = within("reply", socket.next()).await.expect("a reply").expect("a message");
    serde_json::from_str(reply.to_text().unwrap()).unwrap()
}

async fn start(api: Api) -> edri::Running {
    within("start", Edri::builder().api(api).start()).await.expect("starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_routes_and_layers_sit_behind_named_tokens() {
    let api = Api::new("127.0.0.1:0")
        .token_named("alice", "alice-secret")
        .token_named("bob", "bob-secret")
        .token("old-single-token")
        .merge(mine())
        .layer(middleware::from_fn(tag));
    let running = start(api).await;
    let addr = running.api_addr().expect("listening");
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");

    // Without a token: 401, the user's route included, and the layer does not run.
    let (code, body, tagged) = call(c.get(url("/mine/me"))).await;
    assert_eq!((code, &body["error"]["status"], tagged), (401, &json!("unauthorized"), None));
    let (code, _, _) = call(c.get(url("/mine/me")).bearer_auth("wrong")).await;
    assert_eq!(code, 401);

    // Each token is its caller, in the user's route, its layer and the event's handlers.
    let (code, body, tagged) = call(c.get(url("/mine/me")).bearer_auth("alice-secret")).await;
    assert_eq!((code, body, tagged.as_deref()), (200, json!("alice true"), Some("alice")));
    let (code, body, _) = call(c.get(url("/mine/maybe")).bearer_auth("bob-secret")).await;
    assert_eq!((code, body), (200, json!("bob")));
    let whoami =
        |token: &str| c.post(url("/mount/whoami")).bearer_auth(token).json(&json!({"tag": 1}));
    let (code, body, tagged) = call(whoami("bob-secret")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"caller": "bob", "chained": "bob"}));
    assert_eq!(tagged.as_deref(), Some("bob"), "the layer wraps the broker's routes too");
    let (_, body, _) = call(whoami("old-single-token")).await;
    assert_eq!(body, json!({"caller": "default", "chained": "default"}));

    // The broker's own 404 is inside the layers too; a merged route keeps its 405.
    let (code, _, tagged) = call(c.get(url("/nowhere")).bearer_auth("alice-secret")).await;
    assert_eq!((code, tagged.as_deref()), (404, Some("alice")));
    let (code, _, _) = call(c.post(url("/mine/me")).bearer_auth("alice-secret")).await;
    assert_eq!(code, 405);

    // Outside the API, nobody calls.
    let direct = running.ctx().request(MountWhoAmI { tag: 2 }).await.expect("answers");
    assert_eq!((direct.caller, direct.chained), (None, None));
    within("shutdown", running.shutdown()).await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_acts_for_the_caller_that_opened_it() {
    let running = start(Api::new("127.0.0.1:0").token_named("carol", "carol-secret")).await;
    let addr = running.api_addr().expect("listening");
    let reply = ws_whoami(&format!("ws://{addr}/edri/ws?access_token=carol-secret")).await;
    assert_eq!(reply, json!({"id": 7, "ok": {"caller": "carol", "chained": "carol"}}));
    within("shutdown", running.shutdown()).await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_nobody_calls() {
    let running = start(Api::new("127.0.0.1:0").merge(mine())).await;
    let addr = running.api_addr().expect("listening");
    let c = client();
    let (code, body, _) = call(c.get(format!("http://{addr}/mine/maybe"))).await;
    assert_eq!((code, body), (200, json!("nobody")));
    // `Caller` itself is required: 401 with the broker's error object.
    let (code, body, _) = call(c.get(format!("http://{addr}/mine/me"))).await;
    assert_eq!((code, &body["error"]["status"]), (401, &json!("unauthorized")), "{body}");
    let request = c.post(format!("http://{addr}/mount/whoami")).json(&json!({"tag": 1}));
    let (_, body, _) = call(request).await;
    assert_eq!(body, json!({"caller": null, "chained": null}));
    within("shutdown", running.shutdown()).await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_router_serves_from_the_users_own_server() {
    let api = Api::embedded().token_named("dave", "dave-secret").body_limit(64).merge(mine());
    let running = start(api).await;
    assert_eq!(running.api_addr(), None, "an embedded broker has no socket");
    let edri = running.api_router().expect("the broker's router");
    let app = Router::new().route("/", get(|| async { "my own page" })).nest("/api", edri);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");

    let (code, body, _) = call(c.get(url("/"))).await;
    assert_eq!((code, body), (200, json!("my own page")), "the user's routes are open");
    let (code, _, _) = call(c.get(url("/api/edri/events"))).await;
    assert_eq!(code, 401, "the broker's keep its token");
    let request =
        c.post(url("/api/mount/whoami")).bearer_auth("dave-secret").json(&json!({"tag": 1}));
    let (code, body, _) = call(request).await;
    assert_eq!((code, body), (200, json!({"caller": "dave", "chained": "dave"})));
    let (code, body, _) = call(c.get(url("/api/mine/me")).bearer_auth("dave-secret")).await;
    assert_eq!((code, body), (200, json!("dave true")));
    // The body limit holds in the user's server too.
    let big = c.post(url("/api/mount/whoami")).bearer_auth("dave-secret").body(" ".repeat(65));
    let (code, body, _) = call(big).await;
    assert_eq!((code, &body["error"]["status"]), (413, &json!("too_large")), "{body}");
    // And the WebSocket, under the prefix.
    let reply = ws_whoami(&format!("ws://{addr}/api/edri/ws?access_token=dave-secret")).await;
    assert_eq!(reply["ok"]["caller"], "dave", "{reply}");

    server.abort();
    within("shutdown", running.shutdown()).await.expect("stops");
}

/// The message of the start error of a broker merged with `router`.
async fn refused(router: Router) -> String {
    let api = Api::new("127.0.0.1:0").merge(router);
    match within("start", Edri::builder().api(api).start()).await {
        Err(edri::Error::Start(StartError::ApiRoutes(message))) => message,
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started with a router that clashes with the broker's"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_route_on_a_broker_path_is_a_start_error() {
    let message = refused(Router::new().route("/edri/events", get(|| async { "mine" }))).await;
    assert!(message.contains("Api::merge") && message.contains("/edri/events"), "{message}");
    let message = refused(Router::new().fallback(|| async { "mine" })).await;
    assert!(message.contains("fallback"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_use_the_question_mark_on_common_errors() {
    let running = start(Api::new("127.0.0.1:0")).await;
    let addr = running.api_addr().expect("listening");
    let c = client();
    let get = |p: &str| c.get(format!("http://{addr}{p}"));

    let (code, body, _) = call(get("/mount/file?path=/no/such/file")).await;
    assert_eq!((code, &body["error"]["status"]), (500, &json!("failed")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("No such file"), "{body}");
    let (code, body, _) = call(get("/mount/file?path=/")).await;
    assert_eq!(code, 200, "{body}");

    let (code, body, _) = call(get("/mount/parse?text=x1&boxed=false")).await;
    assert_eq!((code, &body["error"]["status"]), (500, &json!("failed")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "reading `x1`: invalid digit found in string", "anyhow's chain");
    let (code, body, _) = call(get("/mount/parse?text=x2&boxed=true")).await;
    assert_eq!((code, &body["error"]["message"]), (500, &json!("invalid digit found in string")));
    let (code, body, _) = call(get("/mount/parse?text=42&boxed=true")).await;
    assert_eq!((code, body), (200, json!({"value": 42})));

    let (code, body, _) = call(get("/mount/anyhow?fail=true")).await;
    assert_eq!((code, &body["error"]["message"]), (500, &json!("asked to fail")), "{body}");
    let (code, _, _) = call(get("/mount/anyhow?fail=false")).await;
    assert_eq!(code, 200);
    within("shutdown", running.shutdown()).await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_root_route_wins_over_the_redirect_to_the_page() {
    let home = Router::new().route("/", get(|| async { "home" }));
    let running = start(Api::new("127.0.0.1:0").merge(home)).await;
    let addr = running.api_addr().expect("listening");
    let (code, body, _) = call(client().get(format!("http://{addr}/"))).await;
    assert_eq!((code, body), (200, json!("home")));
    running.shutdown().await.unwrap();
}
