//! `--metrics ADDR`: a small HTTP endpoint showing the switch's status, `GET /metrics`
//! (Prometheus text) and `GET /status` (JSON); anything else is a 404.

use bytes::Bytes;
use edri_runtime::switch::StatusHandle;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client has to send its request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the endpoint's listener.
pub(crate) async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the endpoint until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, status: StatusHandle) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "the metrics endpoint cannot accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = answer(&status, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "a metrics connection failed");
            }
        });
    }
}

/// The answer to one request.
fn answer<B>(status: &StatusHandle, request: &Request<B>) -> Response<Full<Bytes>> {
    let (code, kind, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            status.status().prometheus(),
        ),
        (&Method::GET, "/status") => match serde_json::to_string(&status.status()) {
            Ok(json) => (StatusCode::OK, "application/json", json),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e.to_string()),
        },
        (_, path) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no route for {path}: try GET /metrics or GET /status\n"),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    if let Ok(kind) = header::HeaderValue::from_str(kind) {
        response.headers_mut().insert(header::CONTENT_TYPE, kind);
    }
    response
}
