//! The broker's open connections: how many, which are idle (and since when), which to close
//! first when the cap is reached, and the counts of connections refused or closed.
//!
//! A connection is *busy* from the moment its request's headers are read until its response
//! body is written (or dropped); otherwise it is *idle*: waiting for the headers of its first
//! request (the header timeout runs from the connection), kept alive between requests (the
//! idle timeout runs), or reading the headers of the next one (the header timeout runs from
//! its first byte). Idle connections can be closed to make room; busy ones and WebSockets
//! are never.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The timeouts the connections are held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
}

/// Why the broker closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The request's headers did not arrive within the header timeout.
    HeaderTimeout,
    /// A kept-alive connection sent nothing within the idle timeout.
    IdleTimeout,
    /// Closed while idle to make room for a new connection (the cap, or no descriptor left).
    Evicted,
}

impl Closed {
    const ALL: [Self; 3] = [Self::HeaderTimeout, Self::IdleTimeout, Self::Evicted];

    fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Evicted => "evicted",
        }
    }
}

/// Counters of the connections, for `/metrics` and the log.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) accepted: AtomicU64,
    /// Refused at the cap with no idle connection to close.
    pub(crate) refused: AtomicU64,
    closed: [AtomicU64; 3],
    /// `accept` failed for want of file descriptors (`EMFILE`, `ENFILE`) or memory.
    pub(crate) accept_exhausted: AtomicU64,
    /// `accept` failed otherwise.
    pub(crate) accept_other: AtomicU64,
}

impl Counts {
    /// How many counts [`snapshot`](Self::snapshot) gives.
    pub(crate) const KINDS: usize = 6;
    /// The index of the idle-timeout count in a snapshot.
    pub(crate) const IDLE_TIMEOUT: usize = 2;

    pub(crate) fn closed(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn closed_count(&self, why: Closed) -> u64 {
        self.closed[why as usize].load(Ordering::Relaxed)
    }

    /// The counts as `(name, value)`, in the order of the log line.
    pub(crate) fn snapshot(&self) -> [(&'static str, u64); Self::KINDS] {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("refused at the cap", load(&self.refused)),
            ("closed by the header timeout", self.closed_count(Closed::HeaderTimeout)),
            ("closed by the idle timeout", self.closed_count(Closed::IdleTimeout)),
            ("closed to make room", self.closed_count(Closed::Evicted)),
            ("accept failures for want of descriptors", load(&self.accept_exhausted)),
            ("other accept failures", load(&self.accept_other)),
        ]
    }
}

/// Every open connection of the broker.
pub(crate) struct Connections {
    pub(crate) max: usize,
    pub(crate) timeouts: Timeouts,
    open: AtomicUsize,
    next_id: AtomicU64,
    /// The idle connections, oldest first.
    idle: Mutex<BTreeMap<(Instant, u64), Arc<Conn>>>,
    pub(crate) counts: Counts,
    /// The counts as last logged.
    reported: Mutex<[u64; Counts::KINDS]>,
}

impl Connections {
    pub(crate) fn new(max: usize, timeouts: Timeouts) -> Self {
        Self {
            max,
            timeouts,
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            idle: Mutex::new(BTreeMap::new()),
            counts: Counts::default(),
            reported: Mutex::new([0; Counts::KINDS]),
        }
    }

    /// Logs, in one line, the counts that grew since the last call, with their totals: a
    /// warning when connections were refused, timed out reading headers, closed to make
    /// room or accepts failed; a debug line when only idle connections were closed.
    pub(crate) fn log_changes(&self) {
        let now = self.counts.snapshot();
        let mut last = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let grown: Vec<String> = now
            .iter()
            .zip(last.iter())
            .filter(|((_, n), before)| n > *before)
            .map(|((what, n), before)| format!("{} {what} (total {n})", n - before))
            .collect();
        if grown.is_empty() {
            return;
        }
        let routine = now
            .iter()
            .zip(last.iter())
            .enumerate()
            .all(|(i, ((_, n), before))| n == before || i == Counts::IDLE_TIMEOUT);
        for (slot, (_, n)) in last.iter_mut().zip(now) {
            *slot = n;
        }
        drop(last);
        let (open, max) = (self.open(), self.max);
        if routine {
            tracing::debug!(open, max, "API connections: {}", grown.join(", "));
        } else {
            tracing::warn!(open, max, "API connections: {}", grown.join(", "));
        }
    }

    /// How many are open (WebSockets included).
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Registers a new connection (idle, waiting for its first request).
    pub(crate) fn admit(self: &Arc<Self>) -> Arc<Conn> {
        let now = Instant::now();
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            connected: now,
            state: Mutex::new(State {
                busy: 0,
                idle_since: now,
                head_started: None,
                served: 0,
                retired: false,
            }),
            awaiting_head: AtomicBool::new(true),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            on_close: Notify::new(),
        });
        self.open.fetch_add(1, Ordering::Relaxed);
        self.counts.accepted.fetch_add(1, Ordering::Relaxed);
        self.idle_set().insert((now, conn.id), conn.clone());
        conn
    }

    /// Closes the connection idle the longest and waits (at most `wait`) until its socket is
    /// closed. `false` when no connection is idle.
    pub(crate) async fn make_room(&self, wait: Duration) -> bool {
        let Some((_, conn)) = self.idle_set().pop_first() else { return false };
        conn.evicted.store(true, Ordering::Release);
        conn.wake.notify_one();
        self.counts.closed(Closed::Evicted);
        let closed = conn.on_close.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        if !conn.closed.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(wait, closed).await;
        }
        true
    }

    fn idle_set(&self) -> MutexGuard<'_, BTreeMap<(Instant, u64), Arc<Conn>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The metrics of the connections, in the Prometheus text format.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        use crate::metrics::header;
        use std::fmt::Write as _;
        let c = &self.counts;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        header(out, "edri_api_connections", "gauge", "Open connections of the API broker.");
        let _ = writeln!(out, "edri_api_connections {}", self.open());
        header(
            out,
            "edri_api_connections_max",
            "gauge",
            "The cap on open connections of the API broker.",
        );
        let _ = writeln!(out, "edri_api_connections_max {}", self.max);
        header(out, "edri_api_connections_accepted_total", "counter", "Connections accepted.");
        let _ = writeln!(out, "edri_api_connections_accepted_total {}", load(&c.accepted));
        header(
            out,
            "edri_api_connections_refused_total",
            "counter",
            "Connections refused (answered 503 and closed): at the cap, none idle to close.",
        );
        let refused = load(&c.refused);
        let _ = writeln!(out, "edri_api_connections_refused_total{{reason=\"limit\"}} {refused}");
        header(
            out,
            "edri_api_connections_closed_total",
            "counter",
            "Connections the broker closed itself, by reason (header_timeout, idle_timeout, evicted: idle, closed to make room).",
        );
        for why in Closed::ALL {
            let _ = writeln!(
                out,
                "edri_api_connections_closed_total{{reason=\"{}\"}} {}",
                why.as_str(),
                c.closed_count(why)
            );
        }
        header(
            out,
            "edri_api_accept_errors_total",
            "counter",
            "Failed accepts of the API listener (descriptors: EMFILE, ENFILE, out of memory).",
        );
        let _ = writeln!(
            out,
            "edri_api_accept_errors_total{{kind=\"descriptors\"}} {}",
            load(&c.accept_exhausted)
        );
        let _ = writeln!(
            out,
            "edri_api_accept_errors_total{{kind=\"other\"}} {}",
            load(&c.accept_other)
        );
    }
}

/// One open connection.
pub(crate) struct Conn {
    id: u64,
    connected: Instant,
    state: Mutex<State>,
    /// Idle and no byte of the next request's headers read yet.
    awaiting_head: AtomicBool,
    evicted: AtomicBool,
    /// Wakes the connection's task when it is evicted. (Its deadline moves only while its
    /// task polls the HTTP connection, which reads it afterwards: no wake needed.)
    pub(crate) wake: Notify,
    closed: AtomicBool,
    on_close: Notify,
}

struct State {
    /// Requests being served (or whose response is being written).
    busy: u32,
    idle_since: Instant,
    /// When the first byte of the next request's headers arrived.
    head_started: Option<Instant>,
    /// Requests served.
    served: u64,
    /// No longer served over HTTP (a WebSocket, or the task ended): never idle again.
    retired: bool,
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether it was closed to make room.
    pub(crate) fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// When it times out if nothing happens, and why; `None` while busy.
    pub(crate) fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, Closed)> {
        let state = self.state();
        if state.busy > 0 || state.retired {
            return None;
        }
        // The first request's headers count from the connection: a byte now and then does
        // not buy a new period.
        Some(match state.head_started {
            _ if state.served == 0 => (self.connected + timeouts.header, Closed::HeaderTimeout),
            Some(at) => (at + timeouts.header, Closed::HeaderTimeout),
            None => (state.idle_since + timeouts.idle, Closed::IdleTimeout),
        })
    }

    /// A request's headers were read: busy until the returned guard drops. An upgrade
    /// (WebSocket) retires the connection from the idle set for good.
    pub(crate) fn begin(self: &Arc<Self>, conns: &Arc<Connections>, upgrade: bool) -> Busy {
        let mut state = self.state();
        if state.busy == 0 && !state.retired {
            conns.idle_set().remove(&(state.idle_since, self.id));
        }
        state.busy += 1;
        state.head_started = None;
        state.retired |= upgrade;
        self.awaiting_head.store(false, Ordering::Relaxed);
        Busy { conn: self.clone(), conns: conns.clone() }
    }

    fn end(self: &Arc<Self>, conns: &Connections) {
        let mut state = self.state();
        state.busy -= 1;
        state.served += 1;
        if state.busy == 0 && !state.retired {
            let now = Instant::now();
            state.idle_since = now;
            self.awaiting_head.store(true, Ordering::Relaxed);
            // Do not resurrect a connection chosen for eviction.
            if !self.evicted() {
                conns.idle_set().insert((now, self.id), self.clone());
            }
        }
    }

    /// Takes it out of the idle set for good (its HTTP serving ended).
    pub(crate) fn retire(&self, conns: &Connections) {
        let mut state = self.state();
        if state.busy == 0 && !state.retired {
            conns.idle_set().remove(&(state.idle_since, self.id));
        }
        state.retired = true;
    }

    /// The first bytes of a request's headers arrived.
    fn head_started(&self) {
        if self.awaiting_head.swap(false, Ordering::Relaxed) {
            let mut state = self.state();
            if state.busy == 0 {
                state.head_started = Some(Instant::now());
            }
        }
    }
}

/// Held while a request is served (it travels with the response body); its drop makes the
/// connection idle again.
pub(crate) struct Busy {
    conn: Arc<Conn>,
    conns: Arc<Connections>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn.end(&self.conns);
    }
}

/// A response body that keeps its connection busy until it is written or dropped.
pub(crate) struct BusyBody {
    pub(crate) body: axum::body::Body,
    pub(crate) _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket of a connection: notes the first bytes of each request's headers, and counts
/// the connection as open until it is closed (by the HTTP server or, after an upgrade, by
/// the WebSocket).
pub(crate) struct Tracked {
    io: tokio::net::TcpStream,
    conn: Arc<Conn>,
    conns: Arc<Connections>,
}

impl Tracked {
    pub(crate) fn new(io: tokio::net::TcpStream, conn: Arc<Conn>, conns: Arc<Connections>) -> Self {
        Self { io, conn, conns }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conn.retire(&self.conns);
        self.conns.open.fetch_sub(1, Ordering::Relaxed);
        self.conn.closed.store(true, Ordering::Release);
        self.conn.on_close.notify_waiters();
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.head_started();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
