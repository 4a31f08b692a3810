//! The broker's accept loop and connections: HTTP/1.1 served by hyper, held to the header
//! and idle timeouts and to the connection cap ([`Api`](super::Api)); accept failures
//! (`EMFILE` …) back off instead of spinning; everything refused or closed is counted and
//! logged at most once per [`REPORT_EVERY`].

use super::conn::{BusyBody, Conn, Connections, Tracked};
use axum::http::{StatusCode, header};
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How often, at most, refused and closed connections are logged (with their counts).
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long making room waits for the closed connection's socket to be released.
const ROOM_WAIT: Duration = Duration::from_secs(1);
/// Backoff after a failed `accept` that no eviction can help: from 5 ms, doubling, to 1 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the server serves: the broker's router with the layers around it.
pub(crate) trait App:
    tower_service::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower_service::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// What the server's connections are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Running,
    /// Finish the requests in flight, then close.
    Graceful,
    /// Close now.
    Abort,
}

/// Accepts and serves until `stop` leaves [`Stop::Running`]; then waits until every
/// connection served over HTTP has ended (upgraded WebSockets are closed by their hub).
pub(crate) async fn serve<S: App>(
    listener: TcpListener,
    app: S,
    conns: Arc<Connections>,
    mut stop: watch::Receiver<Stop>,
) {
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let reporter = tokio::spawn(report(conns.clone()));
    let mut backoff = BACKOFF_FIRST;
    loop {
        // (A change may have been seen while backing off, below.)
        if *stop.borrow() != Stop::Running {
            break;
        }
        let accepted = tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = BACKOFF_FIRST;
                if conns.open() >= conns.max && !conns.make_room(ROOM_WAIT).await {
                    refuse(stream, conns.max);
                    conns.counts.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let conn = conns.admit();
                let io = Tracked::new(stream, conn.clone(), conns.clone());
                let task =
                    connection(io, conn, conns.clone(), app.clone(), stop.clone(), alive.clone());
                tokio::spawn(task);
            }
            Err(e) if per_connection(&e) => {
                conns.counts.accept_other.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                let exhausted = out_of_descriptors(&e);
                let counter = if exhausted {
                    &conns.counts.accept_exhausted
                } else {
                    &conns.counts.accept_other
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Closing an idle connection gives a descriptor back at once; otherwise wait,
                // longer each time, instead of spinning on the same error.
                if !(exhausted && conns.make_room(ROOM_WAIT).await) {
                    tracing::debug!(error = %e, ?backoff, "the API listener cannot accept");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
    drop(listener);
    drop(alive);
    let _ = all_done.recv().await;
    reporter.abort();
    conns.log_changes();
}

/// Serves one connection until it ends, times out, is evicted or the server stops.
async fn connection<S: App>(
    io: Tracked,
    conn: Arc<Conn>,
    conns: Arc<Connections>,
    app: S,
    mut stop: watch::Receiver<Stop>,
    _alive: mpsc::Sender<()>,
) {
    let service = {
        let (conn, conns) = (conn.clone(), conns.clone());
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let upgrade = request.headers().contains_key(header::UPGRADE);
            let busy = conn.begin(&conns, upgrade);
            let mut app = app.clone();
            async move {
                let response =
                    tower_service::Service::call(&mut app, request.map(axum::body::Body::new))
                        .await?;
                Ok::<_, Infallible>(response.map(|body| BusyBody { body, _busy: busy }))
            }
        })
    };
    let http = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    let mut http = std::pin::pin!(http);
    let timeouts = conns.timeouts;
    // The first change of `stop` away from `Running` (`None`: the server is gone).
    let mut stop = std::pin::pin!(async move {
        loop {
            let now = *stop.borrow_and_update();
            if now != Stop::Running {
                return Some(now);
            }
            if stop.changed().await.is_err() {
                return None;
            }
        }
    });
    let mut stopping = false;
    let mut evicted = std::pin::pin!(conn.wake.notified());
    // The timer is armed no later than the connection's deadline, and moved only when the
    // deadline comes earlier (a request's first bytes): every request moves the deadline,
    // and re-arming a timer for each would cost more than the request's own work. When it
    // fires early, the deadline is read again and the timer set to it.
    let first = conn.deadline(timeouts).map_or_else(Instant::now, |(at, _)| at);
    let mut timer = std::pin::pin!(tokio::time::sleep_until(first));
    let mut armed = Some(first);
    std::future::poll_fn(|cx| {
        loop {
            // The request's headers, its end and the idle time all change while `http` is
            // polled, on this task: the deadline is read after it.
            if let Poll::Ready(ended) = http.as_mut().poll(cx) {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "an API connection ended with an error");
                }
                return Poll::Ready(());
            }
            if !stopping && let Poll::Ready(now) = stop.as_mut().poll(cx) {
                // Idle (no request being served): nothing to finish.
                if now != Some(Stop::Graceful) || conn.deadline(timeouts).is_some() {
                    return Poll::Ready(());
                }
                stopping = true;
                http.as_mut().graceful_shutdown();
                continue;
            }
            if evicted.as_mut().poll(cx).is_ready() {
                if conn.evicted() {
                    return Poll::Ready(());
                }
                evicted.set(conn.wake.notified());
                continue;
            }
            if let Some((at, _)) = conn.deadline(timeouts)
                && armed.is_none_or(|armed| at < armed)
            {
                timer.as_mut().reset(at);
                armed = Some(at);
            }
            if armed.is_some() && timer.as_mut().poll(cx).is_ready() {
                armed = None;
                if let Some((at, why)) = conn.deadline(timeouts)
                    && at <= Instant::now()
                {
                    conns.counts.closed(why);
                    return Poll::Ready(());
                }
                // Early (the deadline moved on, or the connection is busy): read it again.
                continue;
            }
            return Poll::Pending;
        }
    })
    .await;
    conn.retire(&conns);
}

/// Answers `503` without reading the request, and closes.
fn refuse(stream: TcpStream, max: usize) {
    let message = format!("the server has reached its limit of {max} connections; try again later");
    let body = serde_json::json!({
        "error": super::rest::error_object(crate::Status::Unavailable, &message, None)
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 {}\r\n{}: application/json\r\n{}: {}\r\n{}: close\r\n\r\n",
        StatusCode::SERVICE_UNAVAILABLE,
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        body.len(),
        header::CONNECTION,
    );
    // Best effort: a fresh socket's send buffer takes it whole, and nothing waits on it.
    let _ = stream.try_write(format!("{head}{body}").as_bytes());
}

/// An accept error that concerns one connection only (it went away before being accepted).
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`: no descriptor or memory for a new socket.
fn out_of_descriptors(e: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return matches!(code, libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM);
    }
    e.kind() == io::ErrorKind::OutOfMemory
}

/// Logs what changed in the counts, at most once per [`REPORT_EVERY`].
async fn report(conns: Arc<Connections>) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        conns.log_changes();
    }
}
