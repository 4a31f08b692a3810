//! `#[solve(process, limit = N)]`: handlers in child processes of this same binary.
//!
//! Each process handler has a pool of up to `limit` workers, started on first need and reused.
//! A call ships the event as postcard to an idle worker and waits for its answer, relaying the
//! worker's own `ctx.notify` / `ctx.request` to this router meanwhile. A worker that dies is
//! reaped and the call fails with `Crashed`; one that overruns the worker timeout is killed
//! and the call fails with `Timeout`. The next call starts a fresh worker.

use super::WorkerStart;
use crate::envelope::Envelope;
use crate::event::{Event, kind};
use crate::router::EventRegistration;
use crate::tunnel::remote::{Link, Message, RemoteEnd};
use crate::wire::{FrameError, FrameReader, write_frame};
use crate::worker::{PROTOCOL, ToParent, ToWorker, WORKER_ENV};
use crate::{Ctx, Failure};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;

/// How long a new worker may take to announce itself.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The workers of one process handler.
pub(crate) struct Pool {
    manager: &'static str,
    method: &'static str,
    idle: Mutex<Vec<Worker>>,
    /// Pids of every live worker, idle or busy.
    live: Mutex<Vec<u32>>,
    /// Numbers the calls (a worker tells its tunnels apart by them).
    calls: std::sync::atomic::AtomicU64,
}

struct Worker {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: FrameReader<ChildStdout>,
}

/// The tunnel of an acceptor call, as the call's loop sees it.
pub(crate) struct TunnelCall {
    /// Called once with the worker's acceptor's answer and the link to the worker.
    pub(crate) decided: Box<dyn FnOnce(Result<(), Failure>, RemoteEnd) + Send>,
    pub(crate) window: usize,
}

/// What the loop of one call does besides reading the worker: its tunnel, once decided.
struct Bridged {
    /// Messages from the worker, for the bridge.
    incoming: mpsc::UnboundedSender<Message>,
    /// Messages from the bridge, for the worker.
    outgoing: mpsc::UnboundedReceiver<Message>,
}

/// Sends a tunnel's messages to the loop of its call, which writes them to the worker.
struct ToCall(mpsc::UnboundedSender<Message>);

impl Link for ToCall {
    fn send(&self, message: Message) -> crate::router::BoxFuture<Result<(), Failure>> {
        let sent =
            self.0.send(message).map_err(|_| Failure::unavailable("the worker's call is over"));
        Box::pin(std::future::ready(sent))
    }
}

/// Ends the tunnel of a call that ended with `failure` (both directions, after what the worker
/// sent before).
fn end_tunnel(bridged: Option<Bridged>, failure: &Failure) {
    if let Some(b) = bridged {
        let _ = b.incoming.send(Message::Stop(failure.clone()));
        let _ = b.incoming.send(Message::End(Some(failure.clone())));
    }
}

/// The next message of the bridge for the worker; never, once there is none.
async fn outgoing(bridged: &mut Option<Bridged>) -> Message {
    match bridged {
        Some(b) => match b.outgoing.recv().await {
            Some(message) => message,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Pool {
    pub(crate) fn new(manager: &'static str, method: &'static str) -> Self {
        Self {
            manager,
            method,
            idle: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Pids of the live workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Number of idle workers.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Runs one call in a worker: the serialized output, or why not. With `tunnel`, the call
    /// is an acceptor's: `timeout` holds until it answered, then the call lasts as long as its
    /// tunnel, whose messages this loop carries both ways.
    async fn call(
        &self,
        ctx: &Ctx,
        payload: Vec<u8>,
        timeout: Duration,
        mut tunnel: Option<TunnelCall>,
    ) -> Result<Vec<u8>, Failure> {
        let mut deadline = Instant::now() + timeout;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut worker = match idle {
            Some(w) => w,
            None => self.spawn(deadline.min(Instant::now() + READY_TIMEOUT)).await?,
        };
        let (manager, method) = (self.manager.to_owned(), self.method.to_owned());
        let number = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call = match &tunnel {
            None => ToWorker::Call { manager, method, payload },
            Some(t) => ToWorker::Accept {
                manager,
                method,
                payload,
                window: u32::try_from(t.window).unwrap_or(u32::MAX),
                call: number,
            },
        };
        if let Err(e) = write_frame(&mut worker.stdin, &call).await {
            return Err(self.bury(worker, &e).await);
        }
        let mut bridged: Option<Bridged> = None;
        loop {
            let read = tokio::select! {
                message = outgoing(&mut bridged) => {
                    let frame = ToWorker::Tunnel { call: number, message };
                    if let Err(e) = write_frame(&mut worker.stdin, &frame).await {
                        let failure = self.bury(worker, &e).await;
                        end_tunnel(bridged, &failure);
                        return Err(failure);
                    }
                    continue;
                }
                read = tokio::time::timeout_at(deadline, worker.stdout.next::<ToParent>()) => read,
            };
            let frame = match read {
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => {
                    let failure = self.bury(worker, &e).await;
                    end_tunnel(bridged, &failure);
                    return Err(failure);
                }
                Err(_) => {
                    self.kill(worker).await;
                    return Err(Failure::timeout(format!(
                        "`{}::{}` ran past {timeout:?} in its worker process; the worker was killed",
                        self.manager, self.method
                    )));
                }
            };
            let (id, result) = match frame {
                ToParent::Done { result } => {
                    // A handler that failed (or panicked) with its tunnel open ends it with
                    // that failure, whatever of its own end arrived first.
                    if let Err(failure) = &result {
                        end_tunnel(bridged, failure);
                    }
                    self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(worker);
                    return result;
                }
                ToParent::Notify { id, event, payload } => {
                    (id, relay_notify(ctx, &event, payload).await.map(|()| Vec::new()))
                }
                ToParent::Request { id, event, payload, timeout_ms } => {
                    let wait = Duration::from_millis(timeout_ms);
                    (id, relay_request(ctx, &event, payload, wait).await)
                }
                ToParent::Ready { .. } => {
                    let e = FrameError::Io(std::io::Error::other("a second Ready frame"));
                    return Err(self.bury(worker, &e).await);
                }
                ToParent::Tunnel { message: Message::Verdict(answer) } => {
                    if let Some(t) = tunnel.take() {
                        let (in_tx, incoming) = mpsc::unbounded_channel();
                        let (out_tx, out_rx) = mpsc::unbounded_channel();
                        if answer.is_ok() {
                            // Accepted: the tunnel may last longer than any call.
                            deadline = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
                        }
                        let link: Arc<dyn Link> = Arc::new(ToCall(out_tx));
                        (t.decided)(answer, RemoteEnd { incoming, link });
                        bridged = Some(Bridged { incoming: in_tx, outgoing: out_rx });
                    }
                    continue;
                }
                ToParent::Tunnel { message } => {
                    if let Some(b) = &bridged {
                        let _ = b.incoming.send(message);
                    }
                    continue;
                }
            };
            if let Err(e) = write_frame(&mut worker.stdin, &ToWorker::Reply { id, result }).await {
                let failure = self.bury(worker, &e).await;
                end_tunnel(bridged, &failure);
                return Err(failure);
            }
        }
    }

    /// Starts a worker and waits for its `Ready` frame.
    async fn spawn(&self, deadline: Instant) -> Result<Worker, Failure> {
        let exe = std::env::current_exe().map_err(|e| {
            Failure::failed(format!("cannot find this binary to start a worker: {e}"))
        })?;
        let mut child = Command::new(exe)
            .env(WORKER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::failed(format!("cannot start a worker process: {e}")))?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Failure::failed("a worker process without pipes"));
        };
        let (manager, method) = (self.manager, self.method);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(target: "edri::worker", pid, manager, method, "{line}");
            }
        });
        self.live.lock().unwrap_or_else(PoisonError::into_inner).push(pid);
        tracing::debug!(pid, manager, method, "worker process started");
        let mut worker = Worker { child, pid, stdin, stdout: FrameReader::new(stdout) };
        match tokio::time::timeout_at(deadline, worker.stdout.next::<ToParent>()).await {
            Ok(Ok(ToParent::Ready { protocol })) if protocol == PROTOCOL => Ok(worker),
            Ok(Ok(ToParent::Ready { protocol })) => {
                self.kill(worker).await;
                Err(Failure::failed(format!(
                    "worker speaks protocol {protocol}, this router {PROTOCOL}"
                )))
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => "an unexpected first frame".to_owned(),
                    Err(_) => "no answer".to_owned(),
                };
                self.kill(worker).await;
                Err(Failure::failed(format!(
                    "the worker process for `{manager}::{method}` did not start ({why}): its binary must serve \
                     as a worker, i.e. `main` is `#[edri::main]` or calls `edri::serve_if_worker()` first"
                )))
            }
        }
    }

    /// A worker whose pipe broke: reap it and say how it ended.
    async fn bury(&self, mut worker: Worker, error: &FrameError) -> Failure {
        let status = match tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => {
                worker.child.kill().await.ok();
                "killed".to_owned()
            }
        };
        self.forget(worker.pid);
        tracing::error!(pid = worker.pid, manager = self.manager, method = self.method, %status, %error, "worker process died");
        Failure::crashed(format!(
            "the worker process of `{}::{}` died ({status})",
            self.manager, self.method
        ))
    }

    async fn kill(&self, mut worker: Worker) {
        worker.child.kill().await.ok();
        self.forget(worker.pid);
    }

    fn forget(&self, pid: u32) {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).retain(|p| *p != pid);
    }

    /// Stops the idle workers: closes their stdin (they exit), reaps them, kills stragglers.
    pub(crate) async fn shutdown(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for Worker { mut child, pid, stdin, stdout } in idle {
            drop((stdin, stdout));
            if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
                child.kill().await.ok();
            }
            self.forget(pid);
        }
    }
}

/// Prepares a process-mode call of handler `handler` of the manager owning `ctx`.
pub(crate) fn call<E: Event<Kind: kind::Plain>>(
    ctx: &Ctx,
    handler: u16,
    envelope: Envelope,
) -> WorkerStart {
    let (event, reply) = E::__open(envelope);
    start(ctx, handler, event, reply, None)
}

/// Prepares a process-mode call of tunnel acceptor `handler`: the worker runs the acceptor,
/// this router holds the opening and bridges the accepted tunnel to the worker.
pub(crate) fn accept<E: crate::TunnelEvent>(
    ctx: &Ctx,
    handler: u16,
    envelope: Envelope,
) -> WorkerStart {
    let (event, opening, reply) = E::__accept(envelope);
    let window = opening.window();
    let decided = Box::new(move |answer, remote| {
        crate::tunnel::worker::decided(opening, answer, remote);
    });
    start(ctx, handler, event, reply, Some(TunnelCall { decided, window }))
}

/// A call of `event` in a worker of handler `handler`, once a slot is free; its answer goes to
/// `reply`.
fn start<E: Event>(
    ctx: &Ctx,
    handler: u16,
    event: crate::envelope::EventBox<E>,
    reply: crate::envelope::Reply,
    tunnel: Option<TunnelCall>,
) -> WorkerStart {
    let slot = &ctx.shared().managers[ctx.origin() as usize];
    let limit = slot.limits[usize::from(handler)].clone();
    let pool = slot.pools[usize::from(handler)].clone();
    let ctx = ctx.clone();
    let start = move |permit: Option<OwnedSemaphorePermit>| {
        let since = ctx.shared().clock();
        ctx.clone().spawn(async move {
            let _permit = permit;
            let result = match (pool, crate::ctx::encode(&*event)) {
                (Some(pool), Ok(payload)) => {
                    let timeout = ctx.shared().worker_timeout;
                    pool.call(&ctx, payload, timeout, tunnel).await.and_then(|bytes| {
                        postcard::from_bytes(&bytes).map_err(|e| {
                            Failure::invalid(format!("malformed answer from a worker: {e}"))
                        })
                    })
                }
                (None, _) => Err(Failure::failed("no worker pool for this handler")),
                (_, Err(f)) => Err(f),
            };
            if result.as_ref().is_err_and(|f| f.status() == crate::Status::Crashed) {
                ctx.shared().stats(ctx.origin()).crashed();
            }
            ctx.shared().record_call(ctx.origin(), handler, since);
            crate::__private::send::<E>(&ctx, reply, result);
        });
    };
    WorkerStart { limit, start: Box::new(start) }
}

fn registrations() -> &'static HashMap<&'static str, &'static EventRegistration> {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static EventRegistration>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| inventory::iter::<EventRegistration>().map(|r| (r.meta.name, r)).collect())
}

fn registration(name: &str) -> Result<&'static EventRegistration, Failure> {
    registrations().get(name).copied().ok_or_else(|| {
        Failure::invalid(format!("a worker sent `{name}`, an event this binary does not declare"))
    })
}

async fn relay_notify(ctx: &Ctx, event: &str, payload: Vec<u8>) -> Result<(), Failure> {
    (registration(event)?.notify_bytes)(ctx.clone(), &payload, None).await
}

async fn relay_request(
    ctx: &Ctx,
    event: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    (registration(event)?.request_bytes)(ctx.clone(), &payload, timeout).await
}

/// Pools of every manager's process handlers, by handler index.
pub(crate) type Pools = Box<[Option<Arc<Pool>>]>;
