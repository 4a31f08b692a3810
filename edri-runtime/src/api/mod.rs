//! The API broker: REST routes and a WebSocket endpoint made from events, with health,
//! metrics and an event catalog (DESIGN §6). Started by [`EdriBuilder::api`].
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
//!   `{"event": name, "data": {..}}`.
//! * **Built in.** `GET /edri/health` ([`HealthCheck`](crate::HealthCheck)), `GET /edri/events`
//!   (the catalog, with JSON schemas), `GET /metrics` (Prometheus text).
//!
//! Configuration ([`Api`]): bearer-token auth, CORS origins (closed unless given), the body
//! size limit, the per-request timeout and the WebSocket queue bound.
//!
//! [`EdriBuilder::api`]: crate::EdriBuilder::api

pub mod hooks;
pub mod schema;

#[cfg(feature = "api")]
mod catalog;
#[cfg(feature = "api")]
mod rest;
#[cfg(feature = "api")]
mod server;
#[cfg(feature = "api")]
mod ws;

pub use hooks::{ApiHooks, FieldError};
#[cfg(feature = "api")]
pub use rest::http_status;
#[cfg(feature = "api")]
pub(crate) use server::{ApiServer, Prepared};

use std::time::Duration;

/// Default limit of a request body (and of one WebSocket message): 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Default bound of a WebSocket client's outgoing queue, in messages.
pub const DEFAULT_WS_QUEUE: usize = 1024;
/// Default number of requests one WebSocket client may have in flight.
pub const DEFAULT_WS_IN_FLIGHT: usize = 64;

/// Configuration of the API broker: `Edri::builder().api(Api::new("127.0.0.1:8080").token(..))`,
/// or just `.api("127.0.0.1:8080")`.
#[derive(Clone)]
pub struct Api {
    pub(crate) addr: String,
    pub(crate) token: Option<String>,
    pub(crate) cors: Vec<String>,
    pub(crate) body_limit: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) ws_queue: usize,
    pub(crate) ws_in_flight: usize,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("cors", &self.cors)
            .field("body_limit", &self.body_limit)
            .field("timeout", &self.timeout)
            .field("ws_queue", &self.ws_queue)
            .field("ws_in_flight", &self.ws_in_flight)
            .finish()
    }
}

impl Api {
    /// Listens on `addr` (`"127.0.0.1:8080"`; port 0 picks a free port, see
    /// [`Running::api_addr`](crate::Running::api_addr)).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            token: None,
            cors: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            timeout: None,
            ws_queue: DEFAULT_WS_QUEUE,
            ws_in_flight: DEFAULT_WS_IN_FLIGHT,
        }
    }

    /// Requires `Authorization: Bearer <token>` on every route (`401` otherwise). Browsers
    /// cannot set headers on a WebSocket: `/edri/ws?access_token=<token>` is accepted too.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
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
    /// larger bodies get `413`.
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
