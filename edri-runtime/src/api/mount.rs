//! The broker with routes and layers of your own ([`Api::merge`], [`Api::layer`]), or inside
//! your own server ([`Api::embedded`], [`Running::api_router`]).
//!
//! Which protections apply:
//!
//! | | broker's socket (`Api::new(addr)`) | your server (`Running::api_router`) |
//! |---|---|---|
//! | bearer tokens, [`Caller`](crate::Caller) | every route, merged ones too | the broker's routes and merged ones |
//! | body limit (`413`), body timeout (`408`), request timeout (`504`) | yes | yes |
//! | panics answered `500`, CORS, `/metrics` response counts | yes | yes |
//! | header and idle timeouts, connection cap, `EMFILE` backoff | yes | no: your server's own |
//! | unknown paths | `404` JSON error | your router's fallback |

use super::Api;
use crate::Running;
use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::Route;
use std::convert::Infallible;
use std::sync::Arc;
use tower_layer::Layer;
use tower_service::Service;

/// One layer given to [`Api::layer`], applied when the broker assembles its router.
pub(crate) type Layering = Arc<dyn Fn(Router) -> Router + Send + Sync>;

#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
impl Api {
    /// Serves the routes of `router` with the broker's own, behind the same bearer tokens,
    /// body limit and connection limits (a route of yours gets the body limit through
    /// [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit), so axum's `Json`, `String` or
    /// `Bytes` extractors answer `413` over it). A path that the broker serves or that a
    /// REST event declares is a start error ([`StartError::ApiRoutes`](crate::StartError)), as
    /// is a fallback in `router` (the broker has its own `404`).
    ///
    /// A handler of yours takes the authenticated [`Caller`](crate::Caller) as an extractor,
    /// and the router's [`Ctx`](crate::Ctx) as `Extension<Ctx>`; events it sends act for the
    /// caller ([`Ctx::caller`](crate::Ctx::caller) in their handlers).
    ///
    /// ```
    /// use edri::{Caller, Ctx};
    /// use edri::api::{Api, axum::{Extension, Router, routing::get}};
    /// async fn whoami(caller: Caller, Extension(_ctx): Extension<Ctx>) -> String {
    ///     format!("hello, {caller}")
    /// }
    /// let api = Api::new("127.0.0.1:8080")
    ///     .token_named("alice", "s3cret")
    ///     .merge(Router::new().route("/whoami", get(whoami)));
    /// ```
    pub fn merge(mut self, router: Router) -> Self {
        self.routes.push(router);
        self
    }

    /// Wraps every route of the broker (its own, the REST events', merged ones and the `404`)
    /// in `layer`, inside the token check: the layer sees only authenticated requests, with
    /// the [`Caller`](crate::Caller) among their extensions. Layers given later wrap those
    /// given earlier, as with axum's `Router::layer`.
    ///
    /// ```
    /// use edri::api::{Api, axum::{extract::Request, middleware::{self, Next}}};
    /// async fn tag(request: Request, next: Next) -> axum::response::Response {
    ///     let mut response = next.run(request).await;
    ///     response.headers_mut().insert("x-served-by", "edri".parse().unwrap());
    ///     response
    /// }
    /// # use edri::api::axum;
    /// let api = Api::new("127.0.0.1:8080").layer(middleware::from_fn(tag));
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(Arc::new(move |router: Router| router.layer(layer.clone())));
        self
    }

    /// A broker with no socket of its own, to serve from your own server: take its router
    /// with [`Running::api_router`] once started, and `merge` or `nest` it into yours.
    /// Everything but the connection protections (header and idle timeouts, the connection
    /// cap) applies, see the [module](crate::api) docs; those are your server's to set.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use edri::{Edri, api::{Api, axum}};
    /// let running = Edri::builder().api(Api::embedded().token("s3cret")).start().await?;
    /// let edri = running.api_router().expect("an API broker");
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "my own page" }))
    ///     .nest("/api", edri);
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let _ = (listener, app);
    /// // axum::serve(listener, app).await?;  (with axum's `tokio` feature)
    /// # Ok(()) }
    /// ```
    pub fn embedded() -> Self {
        Self { listen: false, ..Self::new("") }
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
impl Running {
    /// The broker's routes as an [`axum::Router`], to serve from your own server: its REST
    /// events, WebSocket, built-in and merged routes, with its tokens, body limit and
    /// timeout, panic guard and CORS; without its connection protections and without a
    /// fallback (unknown paths are your router's). `None` without [`EdriBuilder::api`].
    ///
    /// Works for a broker with a socket of its own too (the same routes, served twice).
    /// See [`Api::embedded`].
    ///
    /// [`EdriBuilder::api`]: crate::EdriBuilder::api
    pub fn api_router(&self) -> Option<Router> {
        super::attach::router(self)
    }
}

/// `router` with the user's `routes` merged in; a conflict (a path served twice, a second
/// fallback) is a start error saying what axum said.
pub(crate) fn merged<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    routes: &[Router],
) -> Result<Router<S>, crate::StartError> {
    let refused = |panic: Box<dyn std::any::Any + Send>| {
        crate::StartError::ApiRoutes(format!(
            "a router given to `Api::merge` cannot be served with the broker's routes: {}",
            crate::manager::panic_message(&*panic)
        ))
    };
    routes.iter().try_fold(router, |router, routes| {
        // The broker answers unknown paths itself (when it serves them): a fallback of the
        // user's would be replaced silently, so it is refused, as axum refuses two.
        let probe = || Router::new().fallback(|| async {}).merge(routes.clone());
        let _probed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(probe)).map_err(refused)?;
        let routes: Router<S> = routes.clone().with_state(());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| router.merge(routes)))
            .map_err(refused)
    })
}
