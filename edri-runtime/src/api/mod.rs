//! The API broker: REST routes and a WebSocket endpoint made from events, with health,
//! metrics and an event catalog. Started by [`EdriBuilder::api`].
//!
//! # Examples
//!
//! ```no_run
//! use edri::prelude::*;
//! use edri::api::Api;
//!
//! /// `POST /notes` with a JSON body `{"title": ..}`; answers `{"id": ..}`.
//! #[event(request, http = "POST /notes", ws)]
//! pub struct CreateNote { pub title: String, #[response] pub id: u64 }
//!
//! #[derive(Default)]
//! pub struct Notes { titles: Vec<String> }
//!
//! #[manager]
//! impl Notes {
//!     #[solve]
//!     fn create(&mut self, ev: CreateNote) -> Result<CreateNoteResponse, Failure> {
//!         if ev.title.is_empty() {
//!             return Err(Failure::invalid("a note needs a title")); // 400
//!         }
//!         self.titles.push(ev.title);
//!         Ok(CreateNoteResponse { id: self.titles.len() as u64 })
//!     }
//! }
//!
//! # #[cfg(feature = "api")]
//! #[edri::main]
//! async fn main() -> edri::Result<()> {
//!     Edri::builder().api(Api::new("127.0.0.1:8080").token_named("alice", "s3cret")).run().await
//! }
//! # #[cfg(not(feature = "api"))] fn main() {}
//! ```
//!
//! * **REST.** Every request declared with `#[event(request, http = "METHOD /path/{param}")]`
//!   is a route. Path parameters, query parameters and a JSON object body fill the event's
//!   fields (strings are read as numbers or booleans where the field's schema says so); the
//!   response is the request's response as JSON. Input that does not decode gives `400` with
//!   a JSON error naming the field; a [`Failure`](crate::Failure) gives the HTTP status of its
//!   [`Status`](crate::Status) (see [`http_status`]).
//! * **WebSocket** (`GET /edri/ws`). Clients send `{"event": name, "id": n, "data": {..}}`
//!   for events declared with `ws`, get `{"id": n, "ok": ..}` or
//!   `{"id": n, "error": {"status", "message"}}`, and `{"subscribe": name, "filter": {..}}` /
//!   `{"unsubscribe": name}` to `ws` notifications, which are pushed as
//!   `{"event": name, "data": {..}}`. A message that is none of these, or whose values have
//!   the wrong type, gets an error reply naming the key at fault; the socket stays open.
//! * **Built in.** `GET /edri/health` ([`HealthCheck`](crate::HealthCheck)), `GET /edri/events`
//!   (the catalog, with JSON schemas), `GET /edri/topology`, `GET /metrics` (Prometheus
//!   text), and `GET /edri`, a live HTML picture of the topology (`/` redirects there).
//!
//! * **OpenAPI.** `GET /edri/openapi.json`: an OpenAPI 3.1 document of the REST routes, made
//!   from the catalog's schemas.
//! * **Yours.** [`Api::merge`] serves routes of your own with the broker's, [`Api::layer`]
//!   wraps them all; [`Api::embedded`] and [`Running::api_router`](crate::Running::api_router)
//!   serve the broker's routes from your own server (which protections apply each way: see
//!   [`Api::embedded`]).
//! * **Who calls.** [`Api::token_named`]: each token names its caller, which handlers get from
//!   [`Ctx::caller`](crate::Ctx::caller) and your routes as the [`Caller`](crate::Caller)
//!   extractor.
//!
//! Configuration ([`Api`]): bearer-token auth, CORS origins (closed unless given), the body
//! size limit, the per-request timeout, the WebSocket queue bound, and the connection limits
//! (header, body and idle timeouts, the connection cap).
//!
//! Errors are `{"error": {"status", "message", "field"?}}` (`field` when one input field or
//! parameter is at fault). `status` is the name of a [`Status`](crate::Status)
//! ([`Status::as_str`](crate::Status::as_str)): a failure's (`invalid`, `unauthorized`,
//! `forbidden`, `not_found`, `conflict`, `failed`, `unavailable`, `timeout`, `crashed`) or
//! the broker's own `method_not_allowed` (405) and `too_large` (413); a request whose body
//! did not arrive in time gets `timeout` (408), a connection refused at the cap
//! `unavailable` (503).
//!
//! The catalog describes a field or response type fully when the type implements
//! [`schemars::JsonSchema`]; other types get an open schema naming them. Derive it on your
//! own types:
//!
//! ```
//! use edri::prelude::*;
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, edri::schemars::JsonSchema)]
//! #[schemars(crate = "edri::schemars")]
//! pub struct Point { pub x: f64, pub y: f64 }
//!
//! #[event(request, http = "POST /distance")]
//! pub struct Distance { pub from: Point, pub to: Point, #[response] pub meters: f64 }
//! ```
//!
//! [`EdriBuilder::api`]: crate::EdriBuilder::api

pub(crate) mod hooks;
pub(crate) mod schema;

#[cfg(feature = "api")]
mod attach;
#[cfg(feature = "api")]
mod catalog;
#[cfg(feature = "api")]
mod conn;
#[cfg(feature = "api")]
mod guard;
#[cfg(feature = "api")]
mod identity;
#[cfg(feature = "api")]
mod listen;
#[cfg(feature = "api")]
mod mount;
#[cfg(feature = "api")]
mod openapi;
#[cfg(feature = "api")]
mod page;
#[cfg(feature = "api")]
mod query;
#[cfg(feature = "api")]
mod rest;
#[cfg(feature = "api")]
mod server;
#[cfg(feature = "api")]
mod ws;

/// The axum the broker is built with, for routes and layers of your own
/// ([`Api::merge`], [`Api::layer`], [`Running::api_router`](crate::Running::api_router)).
#[cfg(feature = "api")]
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
pub use axum;
pub(crate) use hooks::ApiHooks;
#[cfg(feature = "api")]
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
pub use rest::http_status;

use std::time::Duration;

/// Default limit of a request body (and of one WebSocket message): 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Default bound of a WebSocket client's outgoing queue, in messages.
pub const DEFAULT_WS_QUEUE: usize = 1024;
/// Default number of requests one WebSocket client may have in flight.
pub const DEFAULT_WS_IN_FLIGHT: usize = 64;
/// Default time a client has to send a request's headers: 10 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send a request's body, once its headers arrived: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The name [`Api::token`] gives its token (the [`Caller`](crate::Caller) of requests that
/// present it).
pub const DEFAULT_TOKEN_NAME: &str = "default";
/// Default time a kept-alive connection may stay idle between requests: 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Configuration of the API broker: `Edri::builder().api(Api::new("127.0.0.1:8080").token(..))`,
/// or just `.api("127.0.0.1:8080")`.
///
/// # Examples
///
/// ```no_run
/// use edri::{Edri, api::Api};
/// use std::time::Duration;
///
/// # #[cfg(feature = "api")]
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     let api = Api::new("0.0.0.0:8080")
///         .token_named("alice", "s3cret") // every route needs a token; handlers see `alice`
///         .cors_origin("https://app.example.com") // CORS is closed unless given
///         .body_limit(256 * 1024) // 413 above (default 1 MiB)
///         .request_timeout(Duration::from_secs(5)) // 504 after
///         .max_connections(2048);
///     Edri::builder().api(api).run().await
/// }
/// # #[cfg(not(feature = "api"))] fn main() {}
/// ```
#[derive(Clone)]
pub struct Api {
    pub(crate) addr: String,
    /// `false` for [`Api::embedded`]: no socket of its own.
    pub(crate) listen: bool,
    pub(crate) tokens: Vec<NamedToken>,
    pub(crate) cors: Vec<String>,
    pub(crate) body_limit: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) ws_queue: usize,
    pub(crate) ws_in_flight: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: Option<usize>,
    /// Routers merged in ([`Api::merge`]).
    #[cfg(feature = "api")]
    pub(crate) routes: Vec<axum::Router>,
    /// Layers around every route ([`Api::layer`]), innermost first.
    #[cfg(feature = "api")]
    pub(crate) layers: Vec<mount::Layering>,
}

/// One accepted token and the name of whoever presents it.
#[derive(Clone)]
pub(crate) struct NamedToken {
    pub(crate) name: crate::Caller,
    #[cfg_attr(not(feature = "api"), allow(dead_code))]
    pub(crate) secret: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tokens: Vec<&str> = self.tokens.iter().map(|t| t.name.name()).collect();
        let mut f = f.debug_struct("Api");
        f.field("addr", &self.addr)
            .field("listen", &self.listen)
            .field("tokens", &tokens)
            .field("cors", &self.cors)
            .field("body_limit", &self.body_limit)
            .field("timeout", &self.timeout)
            .field("ws_queue", &self.ws_queue)
            .field("ws_in_flight", &self.ws_in_flight)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.cap_text());
        #[cfg(feature = "api")]
        f.field("routes", &self.routes.len()).field("layers", &self.layers.len());
        f.finish()
    }
}

impl Api {
    /// Listens on `addr` (`"127.0.0.1:8080"`; port 0 picks a free port, see
    /// [`Running::api_addr`](crate::Running::api_addr)).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            listen: true,
            tokens: Vec::new(),
            cors: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            timeout: None,
            ws_queue: DEFAULT_WS_QUEUE,
            ws_in_flight: DEFAULT_WS_IN_FLIGHT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            #[cfg(feature = "api")]
            routes: Vec::new(),
            #[cfg(feature = "api")]
            layers: Vec::new(),
        }
    }

    /// Requires `Authorization: Bearer <token>` on every route (`401` otherwise). Browsers
    /// cannot set headers on a WebSocket: `/edri/ws?access_token=<token>` is accepted too.
    ///
    /// The token is named [`DEFAULT_TOKEN_NAME`] (`"default"`), the name handlers see as
    /// their [`Caller`](crate::Caller); calling `token` again replaces it. For several
    /// callers, see [`token_named`](Self::token_named); both may be used together.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.tokens.retain(|t| t.name.name() != DEFAULT_TOKEN_NAME);
        self.token_named(DEFAULT_TOKEN_NAME, token)
    }

    /// Accepts the bearer token `token` as the caller `name`: every route then requires one
    /// of the configured tokens (`401` otherwise), and the events of a request made with this
    /// one reach their handlers with [`Ctx::caller`](crate::Ctx::caller) = `name`; routes of
    /// your own ([`merge`](Self::merge)) take it as an extractor
    /// ([`Caller`](crate::Caller)).
    ///
    /// Call it once per token; one name may have several tokens (to roll a secret over
    /// without downtime).
    ///
    /// ```
    /// use edri::api::Api;
    /// let api = Api::new("127.0.0.1:8080")
    ///     .token_named("alice", "a-long-random-secret")
    ///     .token_named("billing", "another-long-random-secret");
    /// assert!(format!("{api:?}").contains(r#"tokens: ["alice", "billing"]"#));
    /// ```
    pub fn token_named(mut self, name: impl Into<String>, token: impl Into<String>) -> Self {
        let name = crate::Caller::new(name.into());
        self.tokens.push(NamedToken { name, secret: token.into() });
        self
    }

    /// Allows cross-origin requests from `origin` (`"https://app.example.com"`); call once
    /// per origin. Without any, no CORS headers are sent and browsers refuse cross-origin
    /// calls.
    pub fn cors_origin(mut self, origin: impl Into<String>) -> Self {
        self.cors.push(origin.into());
        self
    }

    /// The largest request body, and the largest WebSocket message, in bytes (default 1 MiB);
    /// larger bodies get `413`, at once when their `Content-Length` says so (the body is not
    /// waited for, and the connection is closed).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long one API request may take before it gets `504` (default: the router's request
    /// timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many messages may wait for one WebSocket client (default 1024): answers and pushes
    /// not yet written to its socket. A client that lets more pile up (it does not read, or a
    /// burst outruns its connection) is disconnected with close code 1008 and a reason,
    /// rather than letting memory grow.
    ///
    /// # Panics
    /// If `messages` is 0.
    pub fn ws_queue(mut self, messages: usize) -> Self {
        assert!(messages > 0, "the WebSocket queue needs room for at least one message");
        self.ws_queue = messages;
        self
    }

    /// How many requests one WebSocket client may have in flight (default 64); further
    /// messages wait until one answers.
    ///
    /// # Panics
    /// If `requests` is 0.
    pub fn ws_in_flight(mut self, requests: usize) -> Self {
        assert!(requests > 0, "a WebSocket client needs at least one request in flight");
        self.ws_in_flight = requests;
        self
    }
}

impl Api {
    /// How long a client may take to send a request's headers (default 10 s), counted from
    /// the moment it connects or, on a kept-alive connection, from the first byte of the next
    /// request. A connection that takes longer is closed (slow or stalled clients must not
    /// hold a connection, see [`max_connections`](Self::max_connections)).
    ///
    /// # Panics
    /// If `timeout` is zero.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "the header timeout must not be zero");
        self.header_timeout = timeout;
        self
    }

    /// How long a client may take to send a request's body once its headers arrived
    /// (default 30 s); a request whose body is late gets `408` and its connection is closed.
    ///
    /// # Panics
    /// If `timeout` is zero.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "the body timeout must not be zero");
        self.body_timeout = timeout;
        self
    }

    /// How long a kept-alive connection may wait for its next request (default 60 s) before
    /// the broker closes it.
    ///
    /// # Panics
    /// If `timeout` is zero.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "the idle timeout must not be zero");
        self.idle_timeout = timeout;
        self
    }

    /// The most connections open at once (WebSockets included). Default: three quarters of
    /// the process's limit of open files (`ulimit -n`) when the broker starts, so that the
    /// router keeps descriptors for everything else (768 under a limit of 1024; at least 16,
    /// at most 65 536; 10 000 where the limit cannot be read).
    ///
    /// When a new connection arrives at the cap, the connection idle the longest (waiting
    /// for or reading a request's headers, or kept alive between requests) is closed to make
    /// room; when none is idle, the new one gets `503` and is closed. When the process runs
    /// out of descriptors anyway (`EMFILE`), the broker closes an idle connection too, or
    /// waits (5 ms, doubling up to 1 s) rather than spinning. All of it is counted in
    /// `/metrics` (`edri_api_connections_refused_total`, `edri_api_connections_closed_total`,
    /// `edri_api_accept_errors_total`) and logged with its counts, at most every 5 s.
    ///
    /// # Panics
    /// If `connections` is 0.
    pub fn max_connections(mut self, connections: usize) -> Self {
        assert!(connections > 0, "the API needs room for at least one connection");
        self.max_connections = Some(connections);
        self
    }

    /// The cap in effect: the configured one, or the default read off `RLIMIT_NOFILE`.
    #[cfg(feature = "api")]
    pub(crate) fn connection_cap(&self) -> usize {
        self.max_connections.unwrap_or_else(default_max_connections)
    }

    fn cap_text(&self) -> String {
        match self.max_connections {
            Some(n) => n.to_string(),
            None => format!("default ({})", default_max_connections()),
        }
    }
}

/// Three quarters of the soft limit of open files, within 16..=65 536.
fn default_max_connections() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `getrlimit` only writes the struct it is given, which lives on this stack.
        #[allow(unsafe_code)]
        let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } == 0;
        if read {
            let soft = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
            return (soft / 4 * 3).clamp(16, 65_536);
        }
    }
    10_000
}

impl From<&str> for Api {
    fn from(addr: &str) -> Self {
        Self::new(addr)
    }
}

impl From<String> for Api {
    fn from(addr: String) -> Self {
        Self::new(addr)
    }
}

impl From<std::net::SocketAddr> for Api {
    fn from(addr: std::net::SocketAddr) -> Self {
        Self::new(addr.to_string())
    }
}

#[cfg(not(feature = "api"))]
impl crate::Running {
    /// Where the API broker listens: always `None` in a build without the `api` feature.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        None
    }
}
