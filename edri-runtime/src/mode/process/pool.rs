//! The workers of one process handler: started on first need, reused, killed when a call
//! overruns (the worker timeout, or the requester's own deadline) or when the router stops.

use super::WORKER_ENV;
use super::bridge::{Bridged, ToCall, end_tunnel, outgoing};
use super::kills::{Kill, Kills};
use super::protocol::{PROTOCOL, ToParent, ToWorker};
use super::relay;
use crate::tunnel::remote::{Link, Message, RemoteEnd};
use crate::wire::{FrameError, FrameReader, write_frame};
use crate::{Ctx, Failure};
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// How long a new worker may take to announce itself.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle worker may take to exit once its stdin closed, and a worker whose pipe
/// broke to exit by itself, before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// How long [`Pool::shutdown`] waits for busy calls to kill and reap their workers (each is
/// one `SIGKILL` and one `waitpid`: this bound only guards against a runtime bug).
const REAP_WAIT: Duration = Duration::from_secs(10);

/// The workers of one process handler.
pub(crate) struct Pool {
    manager: &'static str,
    method: &'static str,
    idle: Mutex<Vec<Worker>>,
    /// Pids of every live worker, idle or busy.
    live: Mutex<Vec<u32>>,
    /// Numbers the calls (a worker tells its tunnels apart by them).
    calls: AtomicU64,
    /// Turns `true` when the router stops: every busy call kills its worker.
    stop: watch::Sender<bool>,
    /// Woken whenever a worker is forgotten (reaped).
    reaped: Notify,
    kills: Kills,
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

/// A future that resolves when the requester stopped waiting (never, when nobody waits).
pub(crate) type Gone<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send)>;

/// Resolves once `stop` turns `true`.
async fn stopped(mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why a call must end before its worker answered: the first of its deadline, its requester
/// leaving, and the router stopping.
async fn interrupted(
    deadline: Instant,
    gone: &mut Gone<'_>,
    stop: &mut Pin<&mut (dyn Future<Output = ()> + Send)>,
) -> Kill {
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => Kill::WorkerTimeout,
        () = gone.as_mut() => Kill::CallerGone,
        () = stop.as_mut() => Kill::Shutdown,
    }
}

/// Whether `future` is ready now (polled once).
async fn ready_now(future: &mut Gone<'_>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}

/// One turn of a call's loop.
enum Step {
    /// A message of the bridge for the worker.
    Out(Message),
    /// A frame from the worker.
    Frame(Result<ToParent, FrameError>),
    /// The call must end now.
    End(Kill),
}

impl Pool {
    pub(crate) fn new(manager: &'static str, method: &'static str) -> Self {
        Self {
            manager,
            method,
            idle: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            calls: AtomicU64::new(0),
            stop: watch::Sender::new(false),
            reaped: Notify::new(),
            kills: Kills::default(),
        }
    }

    /// The handler's manager and method.
    pub(crate) fn name(&self) -> (&'static str, &'static str) {
        (self.manager, self.method)
    }

    /// The workers killed so far, by reason.
    pub(crate) fn kills(&self) -> &Kills {
        &self.kills
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
    /// tunnel, whose messages this loop carries both ways. When `gone` resolves (the requester
    /// timed out or dropped its request) or the router stops, the worker is killed at once.
    pub(crate) async fn call(
        &self,
        ctx: &Ctx,
        payload: Vec<u8>,
        timeout: Duration,
        mut tunnel: Option<TunnelCall>,
        mut gone: Gone<'_>,
        trace: Option<crate::trace::TraceContext>,
    ) -> Result<Vec<u8>, Failure> {
        let stop = self.stop.subscribe();
        if *stop.borrow() {
            return Err(self.stopped_failure());
        }
        let mut stop: Pin<&mut (dyn Future<Output = ()> + Send)> = std::pin::pin!(stopped(stop));
        let mut deadline = Instant::now() + timeout;
        // Nobody waits any more (the call waited for a free slot meanwhile): no worker for it.
        if ready_now(&mut gone).await {
            return Err(self.abandoned());
        }
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut worker = match idle {
            Some(w) => w,
            None => self.spawn(deadline.min(Instant::now() + READY_TIMEOUT)).await?,
        };
        if ready_now(&mut gone).await {
            // Gone while the worker started: it stays, unused.
            self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(worker);
            return Err(self.abandoned());
        }
        let (manager, method) = (self.manager.to_owned(), self.method.to_owned());
        let number = self.calls.fetch_add(1, Ordering::Relaxed);
        let call = match &tunnel {
            None => ToWorker::Call { manager, method, payload, trace },
            Some(t) => ToWorker::Accept {
                manager,
                method,
                payload,
                window: u32::try_from(t.window).unwrap_or(u32::MAX),
                call: number,
                trace,
            },
        };
        if let Err(e) = write_frame(&mut worker.stdin, &call).await {
            return Err(self.bury(worker, &e).await);
        }
        let mut bridged: Option<Bridged> = None;
        loop {
            let step = tokio::select! {
                message = outgoing(&mut bridged) => Step::Out(message),
                read = worker.stdout.next::<ToParent>() => Step::Frame(read),
                why = interrupted(deadline, &mut gone, &mut stop) => Step::End(why),
            };
            let frame = match step {
                Step::Out(message) => {
                    let frame = ToWorker::Tunnel { call: number, message };
                    if let Err(e) = write_frame(&mut worker.stdin, &frame).await {
                        let failure = self.bury(worker, &e).await;
                        end_tunnel(bridged, &failure);
                        return Err(failure);
                    }
                    continue;
                }
                Step::End(why) => return Err(self.interrupt(worker, why, timeout, bridged).await),
                Step::Frame(Err(e)) => {
                    let failure = self.bury(worker, &e).await;
                    end_tunnel(bridged, &failure);
                    return Err(failure);
                }
                Step::Frame(Ok(frame)) => frame,
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
                ToParent::Ready { .. } => {
                    let e = FrameError::Io(std::io::Error::other("a second Ready frame"));
                    let failure = self.bury(worker, &e).await;
                    end_tunnel(bridged, &failure);
                    return Err(failure);
                }
                ToParent::Tunnel { message: Message::Verdict(answer) } => {
                    if let Some(t) = tunnel.take() {
                        let (in_tx, incoming) = mpsc::unbounded_channel();
                        let (out_tx, out_rx) = mpsc::unbounded_channel();
                        if answer.is_ok() {
                            // Accepted: the tunnel may last longer than any call.
                            deadline = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
                        }
                        let ended = Arc::new(Mutex::new(None));
                        let link: Arc<dyn Link> =
                            Arc::new(ToCall { tx: out_tx, ended: ended.clone() });
                        (t.decided)(answer, RemoteEnd { incoming, link });
                        bridged = Some(Bridged { incoming: in_tx, outgoing: out_rx, ended });
                    }
                    continue;
                }
                ToParent::Tunnel { message } => {
                    if let Some(b) = &bridged {
                        let _ = b.incoming.send(message);
                    }
                    continue;
                }
                asked => {
                    // The worker's own notify/request: relayed, unless the call must end first.
                    let answered = tokio::select! {
                        answered = relay::answer(ctx, asked) => answered,
                        why = interrupted(deadline, &mut gone, &mut stop) => {
                            return Err(self.interrupt(worker, why, timeout, bridged).await);
                        }
                    };
                    let Some(answered) = answered else { continue };
                    answered
                }
            };
            if let Err(e) = write_frame(&mut worker.stdin, &ToWorker::Reply { id, result }).await {
                let failure = self.bury(worker, &e).await;
                end_tunnel(bridged, &failure);
                return Err(failure);
            }
        }
    }

    /// Ends a call whose worker has not answered: kills the worker and says why.
    async fn interrupt(
        &self,
        worker: Worker,
        why: Kill,
        timeout: Duration,
        bridged: Option<Bridged>,
    ) -> Failure {
        self.kill(worker, why).await;
        let (manager, method) = (self.manager, self.method);
        let failure = match why {
            Kill::WorkerTimeout => Failure::timeout(format!(
                "`{manager}::{method}` ran past {timeout:?} in its worker process; the worker was killed"
            )),
            Kill::CallerGone => Failure::timeout(format!(
                "the requester of `{manager}::{method}` stopped waiting; its worker process was killed"
            )),
            Kill::Shutdown => self.stopped_failure(),
            Kill::Unresponsive | Kill::BadStart => {
                Failure::crashed(format!("the worker process of `{manager}::{method}` was killed"))
            }
        };
        end_tunnel(bridged, &failure);
        failure
    }

    /// A call whose requester left before it began (counted as a failed call, logged).
    fn abandoned(&self) -> Failure {
        tracing::debug!(
            manager = self.manager,
            method = self.method,
            "the requester left before its call began; not run"
        );
        Failure::timeout(format!(
            "the requester of `{}::{}` stopped waiting before the call began; not run",
            self.manager, self.method
        ))
    }

    fn stopped_failure(&self) -> Failure {
        Failure::unavailable(format!(
            "the router stopped while `{}::{}` ran; its worker process was killed",
            self.manager, self.method
        ))
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
                tracing::info!(target: "edri::worker", pid, manager, method, "{line}");
            }
        });
        self.live.lock().unwrap_or_else(PoisonError::into_inner).push(pid);
        tracing::debug!(pid, manager, method, "worker process started");
        let mut worker = Worker { child, pid, stdin, stdout: FrameReader::new(stdout) };
        match tokio::time::timeout_at(deadline, worker.stdout.next::<ToParent>()).await {
            Ok(Ok(ToParent::Ready { protocol })) if protocol == PROTOCOL => Ok(worker),
            Ok(Ok(ToParent::Ready { protocol })) => {
                self.kill(worker, Kill::BadStart).await;
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
                self.kill(worker, Kill::BadStart).await;
                Err(Failure::failed(format!(
                    "the worker process for `{manager}::{method}` did not start ({why}): its binary must serve \
                     as a worker, i.e. `main` is `#[edri::main]` or calls `edri::serve_if_worker()` first"
                )))
            }
        }
    }

    /// A worker whose pipe broke: reap it (killing it if it does not exit) and say how it
    /// ended.
    async fn bury(&self, mut worker: Worker, error: &FrameError) -> Failure {
        let pid = worker.pid;
        let status = match tokio::time::timeout(EXIT_WAIT, worker.child.wait()).await {
            Ok(Ok(status)) => {
                self.forget(pid);
                status.to_string()
            }
            _ => {
                self.kill(worker, Kill::Unresponsive).await;
                "killed".to_owned()
            }
        };
        tracing::error!(pid, manager = self.manager, method = self.method, %status, %error, "worker process died");
        Failure::crashed(format!(
            "the worker process of `{}::{}` died ({status})",
            self.manager, self.method
        ))
    }

    /// Kills a worker (`SIGKILL`), reaps it, counts and logs it.
    async fn kill(&self, worker: Worker, why: Kill) {
        self.kill_child(worker.child, worker.pid, why).await;
    }

    async fn kill_child(&self, mut child: Child, pid: u32, why: Kill) {
        if let Err(e) = child.kill().await {
            tracing::error!(pid, error = %e, "cannot kill a worker process");
        }
        let killed = self.kills.add(why);
        tracing::warn!(
            pid,
            manager = self.manager,
            method = self.method,
            reason = why.as_str(),
            killed,
            "worker process killed ({killed} so far for this reason)"
        );
        self.forget(pid);
    }

    fn forget(&self, pid: u32) {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).retain(|p| *p != pid);
        self.reaped.notify_waiters();
    }

    /// Makes every busy call kill its worker and fail; later calls fail at once.
    pub(crate) fn stop_calls(&self) {
        self.stop.send_replace(true);
    }

    /// Stops every worker: the idle ones get their stdin closed (they exit; killed if they do
    /// not within a moment), the busy ones are killed by their calls (which fail). Returns
    /// once every worker is reaped.
    pub(crate) async fn shutdown(&self) {
        self.stop_calls();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for Worker { mut child, pid, stdin, stdout } in idle {
            drop((stdin, stdout));
            match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
                Ok(_) => self.forget(pid),
                Err(_) => self.kill_child(child, pid, Kill::Shutdown).await,
            }
        }
        let until = Instant::now() + REAP_WAIT;
        loop {
            let reaped = self.reaped.notified();
            let left = self.pids();
            if left.is_empty() {
                return;
            }
            if tokio::time::timeout_at(until, reaped).await.is_err() {
                tracing::error!(
                    manager = self.manager,
                    method = self.method,
                    pids = ?left,
                    "worker processes still not reaped {REAP_WAIT:?} after the router stopped"
                );
                return;
            }
        }
    }
}
