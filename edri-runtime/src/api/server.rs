//! Starting and stopping the broker's HTTP server, its shared state, authentication and the
//! built-in routes.

use super::Api;
use super::catalog::Catalog;
use super::conn::{Connections, Timeouts};
use super::guard::{GuardLayer, Responses};
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
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_layer::Layer as _;

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
    pub(crate) responses: Responses,
}

/// The broker, bound and checked but not serving yet: binding and route conflicts are start
/// errors, found before any manager runs.
pub(crate) struct Prepared {
    /// `None` for an embedded broker ([`Api::embedded`]).
    listener: Option<(tokio::net::TcpListener, SocketAddr)>,
    config: Api,
    catalog: Arc<Catalog>,
    router: Router<Arc<ApiState>>,
    hub: Arc<Hub>,
}

impl Prepared {
    /// Builds the routes and binds the listener.
    pub(crate) async fn new(config: Api) -> Result<Self, StartError> {
        let mut catalog = Catalog::build();
        catalog.openapi = super::openapi::document(&catalog, &config);
        let catalog = Arc::new(catalog);
        let router = rest::routes(&catalog)?
            .route("/edri/openapi.json", axum::routing::get(openapi))
            .route("/edri/health", axum::routing::get(health))
            .route("/edri/events", axum::routing::get(events))
            .route("/edri/topology", axum::routing::get(topology))
            .route("/metrics", axum::routing::get(metrics))
            .route("/edri/ws", axum::routing::get(ws::upgrade));
        let router = page::routes(router);
        let router = super::mount::merged(router, &config.routes)?;
        let listener = if config.listen { Some(bind(&config.addr).await?) } else { None };
        let hub = Arc::new(Hub::new(config.ws_queue));
        Ok(Self { listener, config, catalog, router, hub })
    }

    /// Where it listens; `None` when embedded.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(|(_, addr)| *addr)
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
            responses: Responses::new(),
        });
        let routes = self.router.with_state(state.clone());
        let embedded = assemble(routes.clone(), &state);
        let (stop, stopped) = watch::channel(Stop::Running);
        let task = self.listener.map(|(listener, addr)| {
            tracing::info!(%addr, max_connections = conns.max, "edri API listening");
            // The layers around the router as a whole, not around each of its routes.
            let app = user_layers(routes.fallback(not_found), &state);
            let app = GuardLayer { state: state.clone() }.layer(app);
            let app = DefaultBodyLimit::max(state.config.body_limit).layer(app);
            let conns = conns.clone();
            if state.config.cors.is_empty() {
                ctx.spawn(listen::serve(listener, app, conns, stopped))
            } else {
                let app = cors(&state.config.cors).layer(app);
                ctx.spawn(listen::serve(listener, app, conns, stopped))
            }
        });
        let abort = task.as_ref().map(JoinHandle::abort_handle);
        ApiServer { stop, abort, task: Mutex::new(task), state, embedded }
    }
}

async fn bind(addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let error = |error| StartError::ApiBind { addr: addr.to_owned(), error };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// `routes` with the user's layers, then the guard (tokens, early `413`, panics, counting),
/// the body limit and CORS around each route: the broker's router to serve from another
/// server.
fn assemble(routes: Router, state: &Arc<ApiState>) -> Router {
    let mut app = user_layers(routes, state)
        .layer(GuardLayer { state: state.clone() })
        .layer(DefaultBodyLimit::max(state.config.body_limit));
    if !state.config.cors.is_empty() {
        app = app.layer(cors(&state.config.cors));
    }
    app
}

/// `routes` with the layers given to [`Api::layer`].
fn user_layers(routes: Router, state: &ApiState) -> Router {
    state.config.layers.iter().fold(routes, |app, layer| layer(app))
}

/// The running broker, attached to a router ([`super::attach`]).
pub(crate) struct ApiServer {
    stop: watch::Sender<Stop>,
    /// Taken by the shutdown, which waits for it.
    task: Mutex<Option<JoinHandle<()>>>,
    abort: Option<tokio::task::AbortHandle>,
    state: Arc<ApiState>,
    /// The routes without a fallback, for [`Running::api_router`](crate::Running::api_router).
    embedded: Router,
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
        if let Some(abort) = &self.abort {
            abort.abort();
        }
    }

    /// The broker's routes, to serve from another server.
    pub(crate) fn router(&self) -> Router {
        self.embedded.clone()
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
    for (code, n) in state.responses.snapshot() {
        let _ = writeln!(out, "edri_api_http_responses_total{{code=\"{code}\"}} {n}");
    }
    state.conns.render_metrics(out);
    state.hub.render_metrics(out);
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

async fn not_found(request: Request) -> Response {
    if let Some(redirect) = page::root(&request) {
        return redirect;
    }
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

async fn openapi(State(state): State<Arc<ApiState>>) -> Response {
    json_response(StatusCode::OK, &state.catalog.openapi)
}

async fn topology(State(state): State<Arc<ApiState>>) -> Response {
    json_response(StatusCode::OK, &crate::router::topology::snapshot(state.ctx.shared()))
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let out = metrics_text(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
