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
use crate::wire::{FrameError, read_frame, write_frame};
use crate::worker::{PROTOCOL, ToParent, ToWorker, WORKER_ENV};
use crate::{Ctx, Failure};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::OwnedSemaphorePermit;
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
}

struct Worker {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Pool {
    pub(crate) fn new(manager: &'static str, method: &'static str) -> Self {
        Self { manager, method, idle: Mutex::new(Vec::new()), live: Mutex::new(Vec::new()) }
    }

    /// Pids of the live workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Number of idle workers.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Runs one call in a worker: the serialized output, or why not.
    async fn call(
        &self,
        ctx: &Ctx,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Failure> {
        let deadline = Instant::now() + timeout;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut worker = match idle {
            Some(w) => w,
            None => self.spawn(deadline.min(Instant::now() + READY_TIMEOUT)).await?,
        };
        let call = ToWorker::Call {
            manager: self.manager.to_owned(),
            method: self.method.to_owned(),
            payload,
        };
        if let Err(e) = write_frame(&mut worker.stdin, &call).await {
            return Err(self.bury(worker, &e).await);
        }
        loop {
            let frame = match tokio::time::timeout_at(
                deadline,
                read_frame::<_, ToParent>(&mut worker.stdout),
            )
            .await
            {
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => return Err(self.bury(worker, &e).await),
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
            };
            if let Err(e) = write_frame(&mut worker.stdin, &ToWorker::Reply { id, result }).await {
                return Err(self.bury(worker, &e).await);
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
        let mut worker = Worker { child, pid, stdin, stdout };
        match tokio::time::timeout_at(deadline, read_frame::<_, ToParent>(&mut worker.stdout)).await
        {
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
                    pool.call(&ctx, payload, timeout).await.and_then(|bytes| {
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
    (registration(event)?.notify_bytes)(ctx.clone(), &payload).await
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
