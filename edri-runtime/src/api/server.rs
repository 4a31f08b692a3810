//! Starting and stopping the broker's HTTP server, its shared state, authentication and the
//! built-in routes.

use super::Api;
use super::catalog::Catalog;
use super::conn::{Connections, Timeouts};
use super::listen::{self, Stop};
use super::page;
use super::rest::{self, error_response, failure_response, json_response};
use super::ws::{self, Hub};
use crate::error::StartError;
use crate::manager::ErasedManager;
use crate::{Ctx, HealthCheck, Status};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What every request handler of the broker reads.
pub(crate) struct ApiState {
    pub(crate) ctx: Ctx,
    pub(crate) config: Api,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) hub: Arc<Hub>,
    /// How long one request may take.
    pub(crate) timeout: Duration,
    /// The open connections.
    pub(crate) conns: Arc<Connections>,
    /// Responses sent, by HTTP status code.
    responses: Mutex<BTreeMap<u16, u64>>,
}

/// The broker, bound and checked but not serving yet: binding and route conflicts are start
/// errors, found before any manager runs.
pub(crate) struct Prepared {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    config: Api,
    catalog: Arc<Catalog>,
    router: Router<Arc<ApiState>>,
    hub: Arc<Hub>,
}

impl Prepared {
    /// Builds the routes and binds the listener.
    pub(crate) async fn new(config: Api) -> Result<Self, StartError> {
        let catalog = Arc::new(Catalog::build());
        let router = rest::routes(&catalog)?
            .route("/edri/health", axum::routing::get(health))
            .route("/edri/events", axum::routing::get(events))
            .route("/edri/topology", axum::routing::get(topology))
            .route("/metrics", axum::routing::get(metrics))
            .route("/edri/ws", axum::routing::get(ws::upgrade));
        let router = page::routes(router, &catalog);
        let listener = tokio::net::TcpListener::bind(&config.addr)
            .await
            .map_err(|error| StartError::ApiBind { addr: config.addr.clone(), error })?;
        let addr = listener
            .local_addr()
            .map_err(|error| StartError::ApiBind { addr: config.addr.clone(), error })?;
        let hub = Arc::new(Hub::new(config.ws_queue));
        Ok(Self { listener, addr, config, catalog, router, hub })
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The manager that receives `ws` notifications for pushing, if any event is one.
    pub(crate) fn bridge(&self) -> Option<Box<dyn ErasedManager>> {
        ws::Bridge::boxed(self.hub.clone())
    }

    /// Starts serving on the router's runtime.
    pub(crate) fn serve(self, ctx: Ctx) -> ApiServer {
        let timeout = self.config.timeout.unwrap_or(ctx.shared().default_timeout);
        let timeouts =
            Timeouts { header: self.config.header_timeout, idle: self.config.idle_timeout };
        let conns = Arc::new(Connections::new(self.config.connection_cap(), timeouts));
        let state = Arc::new(ApiState {
            ctx: ctx.clone(),
            timeout,
            conns: conns.clone(),
            config: self.config,
            catalog: self.catalog,
            hub: self.hub,
            responses: Mutex::new(BTreeMap::new()),
        });
        let mut app = self
            .router
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(state.clone(), guard))
            .layer(DefaultBodyLimit::max(state.config.body_limit))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
            .with_state(state.clone());
        if !state.config.cors.is_empty() {
            app = app.layer(cors(&state.config.cors));
        }
        let (stop, stopped) = watch::channel(Stop::Running);
        let task = ctx.spawn(listen::serve(self.listener, app, conns.clone(), stopped));
        tracing::info!(addr = %self.addr, max_connections = conns.max, "edri API listening");
        ApiServer { stop, abort: task.abort_handle(), task: Mutex::new(Some(task)), state }
    }
}

/// The running broker, attached to a router ([`super::attach`]).
pub(crate) struct ApiServer {
    stop: watch::Sender<Stop>,
    /// Taken by the shutdown, which waits for it.
    task: Mutex<Option<JoinHandle<()>>>,
    abort: tokio::task::AbortHandle,
    state: Arc<ApiState>,
}

impl ApiServer {
    /// Stops accepting connections, closes WebSocket clients (code 1001) and waits for the
    /// requests in flight.
    pub(crate) async fn shutdown(&self) {
        self.stop.send_if_modified(|stop| {
            let running = *stop == Stop::Running;
            if running {
                *stop = Stop::Graceful;
            }
            running
        });
        self.state.hub.close_all(1001, "the server is stopping");
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task
            && let Err(e) = task.await
            && !e.is_cancelled()
        {
            tracing::warn!(error = %e, "the API server task failed");
        }
    }

    /// Ends the server at once.
    pub(crate) fn abort(&self) {
        self.stop.send_replace(Stop::Abort);
        self.state.hub.close_all(1001, "the server is stopping");
        self.abort.abort();
    }

    /// The broker's own metrics, in the Prometheus text format.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        render_api_metrics(&self.state, out);
    }
}

/// What `GET /metrics` answers: the router's metrics, with those of its attachments (this
/// broker's among them).
fn metrics_text(state: &ApiState) -> String {
    let mut out = String::new();
    crate::metrics::render(state.ctx.shared(), &mut out);
    out
}

fn render_api_metrics(state: &ApiState, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP edri_api_http_responses_total HTTP responses of the API broker, by status code."
    );
    let _ = writeln!(out, "# TYPE edri_api_http_responses_total counter");
    let responses = state.responses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (code, n) in responses.iter() {
        let _ = writeln!(out, "edri_api_http_responses_total{{code=\"{code}\"}} {n}");
    }
    drop(responses);
    state.conns.render_metrics(out);
    state.hub.render_metrics(out);
}

/// Authentication (when a token is configured), an early `413` for a body announced over the
/// limit, and response counting, around every route.
async fn guard(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = state.config.body_limit;
    let response = match &state.config.token {
        Some(token) if !authorized(&request, token) => {
            let message = "a bearer token is required: `Authorization: Bearer <token>`";
            let mut response = error_response(Status::Unauthorized, message, None);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        _ if announced.is_some_and(|n| n > limit as u64) => {
            let message = format!(
                "the body is {} bytes; the limit is {limit}",
                announced.unwrap_or_default()
            );
            let mut response = error_response(Status::TooLarge, &message, None);
            // The body is not read: the connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        _ => next.run(request).await,
    };
    let mut responses = state.responses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *responses.entry(response.status().as_u16()).or_default() += 1;
    response
}

fn authorized(request: &Request, token: &str) -> bool {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| same(given.trim().as_bytes(), token.as_bytes()));
    // Browsers cannot set the header when opening a WebSocket or a page: those two take the
    // token from the query, form-decoded as browsers encode it (`encodeURIComponent`).
    let param = match request.uri().path() {
        "/edri/ws" => Some("access_token"),
        page::PATH => Some(page::TOKEN_PARAM),
        _ => None,
    };
    let from_query = param.is_some_and(|param| {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri()).is_ok_and(
            |query| {
                query
                    .0
                    .iter()
                    .any(|(key, given)| key == param && same(given.as_bytes(), token.as_bytes()))
            },
        )
    });
    from_header || from_query
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = crate::manager::panic_message(&*panic).to_owned();
    tracing::error!(panic = %message, "the API broker panicked while serving a request");
    error_response(Status::Crashed, "the server failed while serving this request", None)
}

async fn not_found(request: Request) -> Response {
    let message = format!("no route for {} {}", request.method(), request.uri().path());
    error_response(Status::NotFound, &message, None)
}

async fn health(State(state): State<Arc<ApiState>>) -> Response {
    match state.ctx.request(HealthCheck::default()).timeout(state.timeout).await {
        Ok(health) => json_response(StatusCode::OK, &health),
        Err(failure) => failure_response(&failure),
    }
}

async fn events(State(state): State<Arc<ApiState>>) -> Response {
    json_response(StatusCode::OK, &state.catalog.document)
}

async fn topology(State(state): State<Arc<ApiState>>) -> Response {
    json_response(StatusCode::OK, &crate::router::topology::snapshot(state.ctx.shared()))
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let out = metrics_text(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
