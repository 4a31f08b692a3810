//! The child side of process-mode handlers.
//!
//! A parent router starts workers by re-executing its own binary with [`WORKER_ENV`] set. The
//! child's `main` — `#[edri::main]` does it, or [`serve_if_worker`] called first in a custom
//! main — notices the marker and, instead of running the application, serves handler calls
//! over its stdin/stdout as length-prefixed postcard frames ([`crate::wire`]) until its stdin
//! closes. A handler's `Ctx` in the child reaches the parent's router through the same pipe.

use super::protocol::{PROTOCOL, ToParent, ToWorker};
use super::turns::Turns;
use crate::router::{BoxFuture, Outbound, Uplink};
use crate::tunnel::remote::{Link, Message, RemoteEnd};
use crate::wire::{FrameError, read_frame_blocking, write_frame_blocking};
use crate::{Ctx, Failure};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// The environment variable that makes a process of this binary a worker.
pub const WORKER_ENV: &str = "EDRI_WORKER";

/// Whether this process was started as a worker.
///
/// # Examples
///
/// ```
/// // Work that only the application's own process does, not its process-mode workers:
/// if !edri::is_worker() {
///     println!("starting");
/// }
/// ```
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}

/// Serves as a process-mode worker when this process was started as one, then exits; returns
/// at once otherwise. `#[edri::main]` calls it first; call it first in any other `main` of a
/// binary whose managers have `#[solve(process)]` handlers (for tests: a test target with
/// `harness = false`, see the README).
///
/// # Examples
///
/// ```no_run
/// // First thing in a `main` that is not `#[edri::main]`:
/// edri::serve_if_worker(); // a worker serves its calls here and exits
/// assert!(!edri::is_worker());
/// // ... build a runtime, start the router ...
/// ```
pub fn serve_if_worker() {
    if !is_worker() {
        return;
    }
    // The parent logs what this process writes to stderr, line by line, with its pid.
    crate::logging::at_start();
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("edri worker {}: {e}", std::process::id());
            2
        }
    };
    std::process::exit(code);
}

/// Two threads serve the parent's frames, taking turns to read them ([`Turns`]): the thread
/// that reads a call runs it and writes its answer itself; the other one reads the parent's
/// frames meanwhile when the call needs them. The tokio runtime serves the handlers' `Ctx`
/// (timers, the uplink's waiting).
fn run() -> Result<(), FrameError> {
    let protocol_out = protocol_stdout()?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let link = Arc::new(ParentLink {
        out: Mutex::new(protocol_out),
        pending: Mutex::new(HashMap::new()),
        next: AtomicU64::new(0),
        tunnel: Mutex::new(None),
        in_call: AtomicBool::new(false),
        turns: Turns::new(std::io::stdin()),
    });
    let ctx =
        Ctx::with_uplink(runtime.handle().clone(), link.clone(), crate::router::DEFAULT_TIMEOUT);
    link.send(&ToParent::Ready { protocol: PROTOCOL })?;
    let (other_link, other_ctx) = (link.clone(), ctx.clone());
    let other = std::thread::Builder::new()
        .name("edri-worker-call".into())
        .spawn(move || serve(&other_link, &other_ctx))?;
    let outcome = serve(&link, &ctx);
    // The pipe closed: the other thread finishes its call (if any), then ends too.
    let other = other.join().unwrap_or(Ok(()));
    outcome.and(other)
}

/// Reads the parent's frames in this thread's turns and runs the calls it reads, until the
/// parent closes the pipe.
fn serve(link: &Arc<ParentLink>, ctx: &Ctx) -> Result<(), FrameError> {
    let mut held = None;
    loop {
        let Some(mut input) = held.take().or_else(|| link.turns.take()) else { return Ok(()) };
        match read_frame_blocking::<_, ToWorker>(&mut input) {
            Ok(ToWorker::Call { manager, method, payload, trace }) => {
                link.turns.begin(input, false);
                link.run(Job { manager, method, payload, tunnel: None, trace }, ctx);
            }
            Ok(ToWorker::Accept { manager, method, payload, window, call, trace }) => {
                let (tx, incoming) = tokio::sync::mpsc::unbounded_channel();
                *link.tunnel.lock().unwrap_or_else(PoisonError::into_inner) = Some((call, tx));
                let to_parent: Arc<dyn Link> = Arc::new(TunnelToParent(link.clone()));
                let end = RemoteEnd { incoming, link: to_parent };
                let window = usize::try_from(window).unwrap_or(usize::MAX).max(1);
                let tunnel = Some((window, end));
                link.turns.begin(input, true);
                link.run(Job { manager, method, payload, tunnel, trace }, ctx);
            }
            Ok(ToWorker::Tunnel { call, message }) => {
                let tunnel = link.tunnel.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((current, tx)) = &*tunnel
                    && *current == call
                {
                    let _ = tx.send(message);
                }
                held = Some(input);
            }
            Ok(ToWorker::Reply { id, result }) => {
                link.resolve(id, result);
                held = Some(input);
            }
            Err(e) => {
                link.turns.end();
                return if matches!(e, FrameError::Closed) { Ok(()) } else { Err(e) };
            }
        }
    }
}

/// The pipe to the parent, taken off fd 1; fd 1 then points at stderr so that a handler's
/// `println!` lands in the parent's log instead of corrupting the protocol.
#[cfg(unix)]
fn protocol_stdout() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: `dup`/`dup2` only duplicate file descriptors of this process; the new
    // descriptor from `dup` is owned by nobody else, so `File` may take ownership of it.
    #[allow(unsafe_code)]
    unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::fs::File::from_raw_fd(fd))
    }
}

#[cfg(not(unix))]
fn protocol_stdout() -> std::io::Result<std::fs::File> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "process workers need a unix system"))
}

/// Where the parent's answer to one notify/request of the worker goes: a task awaiting it,
/// or a thread blocked on it (`try_notify`, which is not async).
enum Waiter {
    Task(oneshot::Sender<Result<Vec<u8>, Failure>>),
    Thread(std::sync::mpsc::SyncSender<Result<Vec<u8>, Failure>>),
}

/// How long `try_notify` in a worker waits for the parent's verdict (the parent answers at
/// once during a call; only a parent busy relaying something slow makes it wait).
const TRY_NOTIFY_WAIT: Duration = Duration::from_secs(5);

/// The tunnel of an acceptor call: its window and its link to the parent.
type Tunnel = (usize, RemoteEnd);

/// The tunnel of the call running now, for [`take_tunnel`].
static CURRENT_TUNNEL: Mutex<Option<Tunnel>> = Mutex::new(None);

/// The tunnel of the acceptor call running now on this worker (once).
pub(crate) fn take_tunnel() -> Option<Tunnel> {
    CURRENT_TUNNEL.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// Sends the current call's tunnel messages to the parent.
struct TunnelToParent(Arc<ParentLink>);

impl Link for TunnelToParent {
    fn send(&self, message: Message) -> BoxFuture<Result<(), Failure>> {
        let sent = self
            .0
            .send(&ToParent::Tunnel { message })
            .map_err(|e| Failure::unavailable(format!("the parent router is gone: {e}")));
        Box::pin(std::future::ready(sent))
    }
}

/// The worker's end of the pipe, shared by the running call and its `Ctx`.
struct ParentLink {
    out: Mutex<std::fs::File>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next: AtomicU64,
    /// The current acceptor call's number and where its tunnel messages go.
    tunnel: Mutex<Option<(u64, tokio::sync::mpsc::UnboundedSender<Message>)>>,
    /// Whether a call runs: the parent reads this worker's frames only then.
    in_call: AtomicBool,
    /// Which serving thread reads the parent's frames.
    turns: Turns,
}

impl ParentLink {
    /// Runs one call on this thread (it read the call) and answers it.
    fn run(&self, Job { manager, method, payload, tunnel, trace }: Job, ctx: &Ctx) {
        *CURRENT_TUNNEL.lock().unwrap_or_else(PoisonError::into_inner) = tunnel;
        self.in_call.store(true, Ordering::Release);
        let result = call(&manager, &method, &payload, trace, ctx.clone());
        self.in_call.store(false, Ordering::Release);
        CURRENT_TUNNEL.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.tunnel.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.turns.finish();
        if let Err(e) = self.send(&ToParent::Done { result }) {
            eprintln!("edri worker {}: cannot answer the parent: {e}", std::process::id());
            std::process::exit(2);
        }
    }

    /// Writes one frame to the parent (a pipe write: immediate while the parent reads).
    fn send(&self, message: &ToParent) -> Result<(), FrameError> {
        write_frame_blocking(
            &mut *self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            message,
        )
    }

    /// Sends a notify/request frame and waits for the parent's reply.
    async fn ask(self: Arc<Self>, make: impl FnOnce(u64) -> ToParent) -> Result<Vec<u8>, Failure> {
        let (tx, rx) = oneshot::channel();
        self.post(Waiter::Task(tx), make)?;
        rx.await.unwrap_or_else(|_| Err(Failure::unavailable("the parent router is gone")))
    }

    /// Sends the frame `make(id)` whose answer goes to `waiter`.
    fn post(&self, waiter: Waiter, make: impl FnOnce(u64) -> ToParent) -> Result<u64, Failure> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, waiter);
        // The answer comes through the pipe: somebody must read it.
        self.turns.want();
        if let Err(e) = self.send(&make(id)) {
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            return Err(Failure::unavailable(format!("the parent router is gone: {e}")));
        }
        Ok(id)
    }

    fn resolve(&self, id: u64, result: Result<Vec<u8>, Failure>) {
        let waiter = self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        match waiter {
            Some(Waiter::Task(tx)) => drop(tx.send(result)),
            Some(Waiter::Thread(tx)) => drop(tx.try_send(result)),
            None => {}
        }
    }
}

/// Every event without a route in the worker (it has no managers) goes to the parent.
impl Uplink for ParentLink {
    fn wants(&self, _event: Outbound, local: bool) -> bool {
        !local
    }

    /// Asks the parent, which delivers the notification now (room in every subscriber's
    /// mailbox, and its switch buffer takes it) or refuses it. Outside a call the parent is
    /// not listening: refused at once.
    fn try_notify(&self, event: Outbound, payload: &[u8]) -> Result<(), Failure> {
        let event = event.name;
        if !self.in_call.load(Ordering::Acquire) {
            return Err(Failure::unavailable(
                "the parent router reads a worker's events only while a call runs",
            ));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let trace = crate::trace::context();
        let id = self.post(Waiter::Thread(tx), |id| ToParent::TryNotify {
            id,
            event: event.to_owned(),
            payload: payload.to_vec(),
            trace,
        })?;
        match rx.recv_timeout(TRY_NOTIFY_WAIT) {
            Ok(result) => result.map(drop),
            Err(_) => {
                self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                Err(Failure::timeout(format!(
                    "the parent router did not take `{event}` within {TRY_NOTIFY_WAIT:?}"
                )))
            }
        }
    }

    /// A worker's notification always asks the parent (an answer to wait for).
    fn offer(&self, _event: Outbound, _payload: &[u8]) -> Option<Result<(), Failure>> {
        None
    }

    fn notify(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
    ) -> BoxFuture<Result<(), Failure>> {
        let event = event.name;
        let trace = crate::trace::context();
        Box::pin(async move {
            let notify = |id| ToParent::Notify { id, event: event.to_owned(), payload, trace };
            self.ask(notify).await.map(drop)
        })
    }

    fn request(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<u8>, Failure>> {
        let event = event.name;
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let trace = crate::trace::context();
        Box::pin(async move {
            let event = event.to_owned();
            self.ask(|id| ToParent::Request { id, event, payload, timeout_ms, trace }).await
        })
    }

    /// The parent gathers its own responder's answer and those of its other routers.
    fn request_all(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Vec<Result<Vec<u8>, Failure>>> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let trace = crate::trace::context();
        Box::pin(async move {
            let name = event.to_owned();
            let answers = self
                .ask(|id| ToParent::RequestAll { id, event: name, payload, timeout_ms, trace })
                .await;
            match answers {
                Ok(bytes) => postcard::from_bytes(&bytes).unwrap_or_else(|e| {
                    vec![Err(Failure::invalid(format!(
                        "malformed answers to `{event}` from the parent router: {e}"
                    )))]
                }),
                Err(failure) => vec![Err(failure)],
            }
        })
    }

    fn open(
        self: Arc<Self>,
        event: &'static str,
        _payload: Vec<u8>,
        _window: usize,
        _timeout: Duration,
    ) -> BoxFuture<Result<RemoteEnd, Failure>> {
        Box::pin(std::future::ready(Err(Failure::unavailable(format!(
            "tunnel `{event}` cannot be opened from a process-mode worker (open it in the \
             parent and hand the work to the worker as requests)"
        )))))
    }
}

/// One call read from the parent.
struct Job {
    manager: String,
    method: String,
    payload: Vec<u8>,
    tunnel: Option<Tunnel>,
    trace: Option<crate::trace::TraceContext>,
}

/// Runs `manager::method` on `payload` in its own handling span, linked to the parent's
/// handler `trace`.
fn call(
    manager: &str,
    method: &str,
    payload: &[u8],
    trace: Option<crate::trace::TraceContext>,
    ctx: Ctx,
) -> Result<Vec<u8>, Failure> {
    let found = crate::registry::managers()
        .filter(|d| d.name == manager)
        .flat_map(|d| d.handlers.iter())
        .find(|h| h.method == method);
    let span = tracing::debug_span!(
        "edri.deliver",
        manager,
        event = found.map_or("?", |h| h.event.name),
        method,
        mode = "process",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    let from = trace.map(crate::trace::Link::remote);
    let link =
        if span.is_disabled() { from } else { Some(crate::trace::handling(&span, from.as_ref())) };
    let _span = span.enter();
    let _trace = crate::trace::enter(link);
    let handler = found.and_then(|h| h.process).ok_or_else(|| {
        Failure::failed(format!("this binary has no process handler `{manager}::{method}`"))
    })?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(payload, ctx))).unwrap_or_else(
        |panic| {
            Err(crate::manager::panicked(manager, method, crate::manager::panic_message(&*panic)))
        },
    )
}
