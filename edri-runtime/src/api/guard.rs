//! The guard around every route of the broker: authentication (when a token is configured),
//! an early `413` for a body announced over the limit, panics answered `500`, and the count
//! of responses by status code.
//!
//! One tower service rather than `axum::middleware::from_fn` and tower-http's `CatchPanic`:
//! those box the inner service, the request's future and the response body on every
//! request; this boxes its future once.

use super::identity;
use super::rest::error_response;
use super::server::ApiState;
use crate::Status;
use crate::manager::CatchUnwind;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Responses sent, by HTTP status code (100 to 999), without a lock: every request counts.
pub(crate) struct Responses {
    counts: Box<[AtomicU64]>,
}

/// The lowest status code.
const FIRST_CODE: u16 = 100;

impl Responses {
    pub(crate) fn new() -> Self {
        Self { counts: (FIRST_CODE..1000).map(|_| AtomicU64::new(0)).collect() }
    }

    fn count(&self, code: StatusCode) {
        if let Some(n) = self.counts.get(usize::from(code.as_u16().saturating_sub(FIRST_CODE))) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(code, responses)` for every code answered at least once, lowest first.
    pub(crate) fn snapshot(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        (FIRST_CODE..)
            .zip(self.counts.iter())
            .map(|(code, n)| (code, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Puts a [`Guard`] around a service.
#[derive(Clone)]
pub(crate) struct GuardLayer {
    pub(crate) state: Arc<ApiState>,
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, state: self.state.clone() }
    }
}

/// See the [module](self) docs. The request's handler runs as its caller
/// ([`crate::Caller::scope`]), with the caller and the router's `Ctx` among the request's
/// extensions.
#[derive(Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    state: Arc<ApiState>,
}

type Guarded = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarded;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Guarded {
        // The service that was made ready serves this request; its clone the next one.
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let state = self.state.clone();
        Box::pin(async move {
            let response = match (CatchUnwind { inner: guarded(&state, inner, request) }).await {
                Ok(response) => response,
                Err(panic) => panicked(&*panic),
            };
            state.responses.count(response.status());
            Ok(response)
        })
    }
}

/// The request through `inner` once it passes the token check and the announced length.
async fn guarded<S>(state: &ApiState, mut inner: S, mut request: Request) -> Response
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    let caller = match identity::authenticate(&request, &state.config.tokens) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let limit = state.config.body_limit;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(announced) = announced.filter(|n| *n > limit as u64) {
        let message = format!("the body is {announced} bytes; the limit is {limit}");
        let mut response = error_response(Status::TooLarge, &message, None);
        // The body is not read: the connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    request.extensions_mut().insert(state.ctx.clone());
    let served = match caller {
        Some(caller) => {
            request.extensions_mut().insert(caller.clone());
            caller.scope(async move { inner.call(request).await }).await
        }
        None => inner.call(request).await,
    };
    let Ok(served) = served;
    served.into_response()
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> Response {
    let message = crate::manager::panic_message(panic).to_owned();
    tracing::error!(panic = %message, "the API broker panicked while serving a request");
    error_response(Status::Crashed, "the server failed while serving this request", None)
}
