#![allow(missing_docs)]
//! Process-mode handlers, for real: this test binary is its own worker (`harness = false`,
//! `main` calls `edri::serve_if_worker()` first), so every call below runs in a child process.

use edri::prelude::*;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[event(request)]
#[derive(Debug, Clone)]
pub struct WhoAmI {
    pub question: String,
    #[response]
    pub pid: u32,
    #[response]
    pub answer: String,
}

#[event(request)]
pub struct Abort;

#[event(request)]
pub struct Hang {
    pub millis: u64,
}

/// Panics with a `&str` payload, or with a formatted `String` one carrying `n`.
#[event(request)]
pub struct Panic {
    pub n: Option<u32>,
}

/// Uses `try_notify` and `request_all` in the worker: answers what each gave.
#[event(request)]
pub struct TryAndGather {
    pub text: String,
    #[response]
    pub tried: String,
    #[response]
    pub gathered: Vec<u64>,
}

/// Held by the parent's `Gate` until its gate opens.
#[event(notification)]
pub struct Held;

#[event(request)]
pub struct Report {
    pub text: String,
    #[response]
    pub doubled: u64,
}

#[event(notification)]
#[derive(Debug, Clone)]
pub struct FromChild {
    pub pid: u32,
    pub text: String,
}

#[event(request)]
pub struct Double {
    pub n: u64,
    #[response]
    pub twice: u64,
}

/// Converted in a worker process: upper case; `fail_at` makes the worker panic at that chunk,
/// `abort_at` makes it abort; `refuse` rejects the tunnel.
#[event(tunnel, send = edri::Chunk, receive = edri::Chunk)]
pub struct Convert {
    pub fail_at: Option<u32>,
    pub abort_at: Option<u32>,
    pub refuse: bool,
}

#[derive(Default)]
pub struct Workers;

#[manager]
impl Workers {
    #[solve(process, limit = 2)]
    fn who(ev: WhoAmI) -> WhoAmIResponse {
        println!("this line goes to the parent's log, not into the protocol");
        WhoAmIResponse { pid: std::process::id(), answer: ev.question.to_uppercase() }
    }

    #[solve(process)]
    fn abort(_: Abort) -> AbortResponse {
        std::process::abort();
    }

    #[solve(process)]
    fn hang(ev: Hang) -> HangResponse {
        std::thread::sleep(Duration::from_millis(ev.millis));
        HangResponse
    }

    /// A tunnel acceptor in a worker process: converts the stream on the call's own thread.
    #[solve(process, limit = 2)]
    fn convert(ev: Convert, opening: Opening<Convert>) -> Result<(), Failure> {
        if ev.refuse {
            opening.reject(Failure::forbidden(format!("refused by worker {}", std::process::id())));
            return Ok(());
        }
        let mut end = opening.accept()?;
        let mut n = 0;
        while let Some(mut chunk) = end.blocking_recv()? {
            if ev.fail_at == Some(n) {
                panic!("conversion bug at chunk {n}");
            }
            if ev.abort_at == Some(n) {
                std::process::abort();
            }
            chunk.make_ascii_uppercase();
            end.blocking_send(chunk)?;
            n += 1;
        }
        end.close();
        Ok(())
    }

    #[solve(process)]
    fn panic(ev: Panic) -> PanicResponse {
        match ev.n {
            None => panic!("a handler bug"),
            Some(n) => panic!("a handler bug number {n}"),
        }
    }

    #[solve(process)]
    fn try_and_gather(ev: TryAndGather, ctx: Ctx) -> Result<TryAndGatherResponse, Failure> {
        let tried = match ctx.try_notify(FromChild { pid: std::process::id(), text: ev.text }) {
            Ok(()) => "taken".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        let tried = match ctx.try_notify(Held) {
            Ok(()) => format!("{tried}, held taken"),
            Err(e) => format!("{tried}, held refused: {e}"),
        };
        // `request_all` has no blocking twin: a small runtime of the handler's own runs it.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answers = runtime.block_on(ctx.request_all(Double { n: 21 }).into_future());
        let gathered = answers.into_iter().map(|a| a.map(|r| r.twice)).collect::<Result<_, _>>()?;
        Ok(TryAndGatherResponse { tried, gathered })
    }

    /// Uses its context: a notification and a request, both served by the parent's router.
    #[solve(process)]
    fn report(ev: Report, ctx: Ctx) -> Result<ReportResponse, Failure> {
        ctx.blocking_notify(FromChild { pid: std::process::id(), text: ev.text })?;
        let twice = ctx.blocking_request(Double { n: 21 })?.twice;
        Ok(ReportResponse { doubled: twice })
    }
}

/// Lives in the parent only.
pub struct Parent {
    seen: Arc<Mutex<Vec<(u32, String)>>>,
}

#[manager(manual)]
impl Parent {
    #[solve]
    fn child_said(&mut self, ev: &FromChild) {
        self.seen.lock().unwrap().push((ev.pid, ev.text.clone()));
    }

    #[solve]
    fn double(&mut self, ev: &Double) -> DoubleResponse {
        DoubleResponse { twice: ev.n * 2 }
    }
}

/// Holds the first `Held` until its gate opens; its mailbox holds one more.
pub struct Gate {
    gate: Arc<tokio::sync::Semaphore>,
    held: Arc<std::sync::atomic::AtomicUsize>,
}

#[manager(manual, capacity = 1)]
impl Gate {
    #[solve]
    async fn held(&mut self, _: &Held) {
        self.gate.acquire().await.unwrap().forget();
        self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn start(seen: Arc<Mutex<Vec<(u32, String)>>>) -> edri::Running {
    Edri::builder()
        .only_explicit()
        .manager(Workers)
        .manager(Parent { seen })
        .worker_timeout(Duration::from_millis(1_500))
        .start()
        .await
        .unwrap()
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry: read its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|rest| rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Whether `pid` is gone within 10 s.
async fn wait_gone(pid: u32) -> bool {
    for _ in 0..1_000 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn result_computed_in_another_process() {
    let running = start(Arc::default()).await;
    let r = running.ctx().request(WhoAmI { question: "hi".into() }).await.unwrap();
    assert_ne!(r.pid, std::process::id());
    assert_eq!(r.answer, "HI");
    assert_eq!(running.worker_pids(), [r.pid]);
    // The worker is reused.
    let again = running.ctx().request(WhoAmI { question: "again".into() }).await.unwrap();
    assert_eq!(again.pid, r.pid);
    let v = running.vitals().into_iter().find(|v| v.name == "Workers").unwrap();
    assert_eq!((v.workers, v.workers_idle), (1, 1));
    running.shutdown().await.unwrap();
    assert!(wait_gone(r.pid).await, "worker {} left behind after shutdown", r.pid);
}

async fn limit_bounds_the_pool() {
    let running = start(Arc::default()).await;
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let ctx = running.ctx().clone();
            tokio::spawn(async move {
                ctx.request(WhoAmI { question: format!("q{i}") }).await.unwrap().pid
            })
        })
        .collect();
    let mut pids = Vec::new();
    for c in calls {
        pids.push(c.await.unwrap());
    }
    pids.sort_unstable();
    pids.dedup();
    assert!(pids.len() <= 2, "limit = 2 but {} workers answered", pids.len());
    running.shutdown().await.unwrap();
    for pid in pids {
        assert!(wait_gone(pid).await);
    }
}

async fn an_aborting_worker_gives_crashed_and_is_replaced() {
    let running = start(Arc::default()).await;
    let err = running.ctx().request(Abort).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed, "{err}");
    assert!(running.worker_pids().is_empty());
    let v = running.vitals().into_iter().find(|v| v.name == "Workers").unwrap();
    assert_eq!(v.crashed, 1);
    // Another handler still works; so does the same one with a fresh worker.
    running.ctx().request(WhoAmI { question: "x".into() }).await.unwrap();
    assert_eq!(running.ctx().request(Abort).await.unwrap_err().status(), Status::Crashed);
    running.shutdown().await.unwrap();
}

async fn a_hanging_worker_times_out_and_is_killed() {
    let running = start(Arc::default()).await;
    // Start a worker so its pid is known.
    running.ctx().request(Hang { millis: 1 }).await.unwrap();
    let pid = running.worker_pids()[0];
    let started = Instant::now();
    let err = running.ctx().request(Hang { millis: 60_000 }).await.unwrap_err();
    assert_eq!(err.status(), Status::Timeout, "{err}");
    // The worker timeout is 1.5 s.
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(wait_gone(pid).await, "the hanging worker {pid} was not killed");
    // The next call gets a new worker.
    running.ctx().request(Hang { millis: 1 }).await.unwrap();
    assert_ne!(running.worker_pids(), [pid]);
    running.shutdown().await.unwrap();
}

async fn a_panicking_handler_gives_crashed_and_the_worker_lives_on() {
    let running = start(Arc::default()).await;
    let err = running.ctx().request(Panic { n: None }).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed);
    assert!(err.message().contains("panicked: a handler bug"), "{err}");
    let pid = running.worker_pids()[0];
    let err = running.ctx().request(Panic { n: Some(7) }).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed);
    assert!(err.message().contains("panicked: a handler bug number 7"), "{err}");
    assert_eq!(running.worker_pids(), [pid], "the same worker lives on");
    running.shutdown().await.unwrap();
}

async fn a_worker_uses_its_ctx_through_the_parent() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let running = start(seen.clone()).await;
    let r = running.ctx().request(Report { text: "hello parent".into() }).await.unwrap();
    assert_eq!(r.doubled, 42);
    let pid = running.worker_pids()[0];
    // The notification was delivered before the call returned (the worker waited for it).
    let got = seen.lock().unwrap().clone();
    running.shutdown().await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0], (pid, "hello parent".to_owned()));
}

async fn a_worker_uses_try_notify_and_request_all_through_the_parent() {
    use std::sync::atomic::Ordering;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let running = Edri::builder()
        .only_explicit()
        .manager(Workers)
        .manager(Parent { seen: seen.clone() })
        .manager(Gate { gate: gate.clone(), held: held.clone() })
        .start()
        .await
        .unwrap();
    // `Gate` takes one `Held` and waits at its gate; a second one fills its mailbox.
    running.ctx().notify(Held).await.unwrap();
    for _ in 0..1_000 {
        if running.vitals().iter().any(|v| v.name == "Gate" && v.busy && v.queued == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.ctx().notify(Held).await.unwrap();
    let r = running.ctx().request(TryAndGather { text: "now".into() }).await.unwrap();
    let pid = running.worker_pids()[0];
    assert!(r.tried.starts_with("taken, held refused"), "{}", r.tried);
    assert_eq!(seen.lock().unwrap().clone(), [(pid, "now".to_owned())], "delivered, not dropped");
    assert_eq!(r.gathered, [42], "the parent's one responder answered");

    // Room again: the worker's `try_notify` is taken.
    gate.add_permits(100);
    for _ in 0..1_000 {
        if held.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = running.ctx().request(TryAndGather { text: "again".into() }).await.unwrap();
    assert_eq!(r.tried, "taken, held taken");
    for _ in 0..1_000 {
        if held.load(Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(held.load(Ordering::SeqCst), 3);
    running.shutdown().await.unwrap();
}

/// Makes a process call as soon as the application starts, and prints the worker's pid.
pub struct Starter;

#[manager(manual)]
impl Starter {
    #[solve]
    async fn started(&mut self, _: &Started, ctx: &Ctx) {
        let pid = ctx.request(WhoAmI { question: "pid".into() }).await.unwrap().pid;
        println!("worker {pid}");
    }
}

/// Runs as a separate application (this binary with `EDRI_TEST_APP=1`) until SIGTERM.
fn app() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(Edri::builder().only_explicit().manager(Workers).manager(Starter).run())
        .unwrap();
}

async fn sigterm_leaves_no_worker_behind() {
    use tokio::io::AsyncBufReadExt;
    let mut app = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env("EDRI_TEST_APP", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let app_pid = app.id().unwrap();
    let mut lines = tokio::io::BufReader::new(app.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let worker: u32 = line.strip_prefix("worker ").unwrap().parse().unwrap();
    assert!(alive(worker));
    // SAFETY: sends SIGTERM to the process this test started, by its pid.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(app_pid as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), app.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the app ended with {status}");
    assert!(wait_gone(worker).await, "worker {worker} outlived its app");
}

type Case = (&'static str, fn() -> Pin<Box<dyn Future<Output = ()>>>);

/// Chunk `i` of a test stream: lower-case letters, different in every chunk.
fn chunk(i: usize, size: usize) -> edri::Chunk {
    edri::Chunk((0..size).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect())
}

/// Streams `count` chunks through a `Convert` tunnel; the chunks that came back, or the
/// failure that ended the stream.
async fn convert(ctx: &Ctx, ev: Convert, count: usize) -> Result<usize, Failure> {
    let (mut tx, mut rx) = ctx.open(ev).await?.split();
    let sender = tokio::spawn(async move {
        for i in 0..count {
            if tx.send(chunk(i, 64 << 10)).await.is_err() {
                return;
            }
        }
        tx.close();
    });
    let mut back = 0;
    while let Some(got) = rx.recv().await? {
        let mut want = chunk(back, 64 << 10);
        want.make_ascii_uppercase();
        assert!(got == want, "chunk {back} differs");
        back += 1;
    }
    sender.await.unwrap();
    Ok(back)
}

async fn a_tunnel_accepted_in_a_worker_process() {
    let running = start(Arc::default()).await;
    let ctx = running.ctx();
    let plain = Convert { fail_at: None, abort_at: None, refuse: false };
    // 32 MiB, well past the worker timeout of 1.5 s: an accepted tunnel is not a call that
    // runs too long.
    let begin = Instant::now();
    let back = convert(ctx, plain, 512).await.unwrap();
    assert_eq!(back, 512);
    println!("  32 MiB through a worker process in {:?}", begin.elapsed());
    let two = tokio::join!(
        convert(ctx, Convert { fail_at: None, abort_at: None, refuse: false }, 64),
        convert(ctx, Convert { fail_at: None, abort_at: None, refuse: false }, 64),
    );
    assert_eq!((two.0.unwrap(), two.1.unwrap()), (64, 64));

    let err = ctx.open(Convert { fail_at: None, abort_at: None, refuse: true }).await.unwrap_err();
    assert_eq!(err.status(), Status::Forbidden, "{err}");
    assert!(err.message().starts_with("refused by worker"), "{err}");

    // A panic in the worker mid-stream ends the stream with `Crashed`, promptly.
    let begin = Instant::now();
    let err = convert(ctx, Convert { fail_at: Some(5), abort_at: None, refuse: false }, 100)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Status::Crashed, "{err}");
    assert!(begin.elapsed() < Duration::from_secs(10), "{:?}", begin.elapsed());

    // The worker process dies mid-stream: `Crashed` too, and the next tunnel gets a new one.
    let begin = Instant::now();
    let err = convert(ctx, Convert { fail_at: None, abort_at: Some(5), refuse: false }, 100)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Status::Crashed, "{err}");
    assert!(begin.elapsed() < Duration::from_secs(10), "{:?}", begin.elapsed());
    let back = convert(ctx, Convert { fail_at: None, abort_at: None, refuse: false }, 8).await;
    assert_eq!(back.unwrap(), 8);
    running.shutdown().await.unwrap();
}

fn main() {
    edri::serve_if_worker();
    if std::env::var_os("EDRI_TEST_APP").is_some() {
        app();
        return;
    }
    let cases: &[Case] = &[
        ("result_computed_in_another_process", || Box::pin(result_computed_in_another_process())),
        ("limit_bounds_the_pool", || Box::pin(limit_bounds_the_pool())),
        ("an_aborting_worker_gives_crashed_and_is_replaced", || {
            Box::pin(an_aborting_worker_gives_crashed_and_is_replaced())
        }),
        ("a_hanging_worker_times_out_and_is_killed", || {
            Box::pin(a_hanging_worker_times_out_and_is_killed())
        }),
        ("a_panicking_handler_gives_crashed_and_the_worker_lives_on", || {
            Box::pin(a_panicking_handler_gives_crashed_and_the_worker_lives_on())
        }),
        ("a_worker_uses_its_ctx_through_the_parent", || {
            Box::pin(a_worker_uses_its_ctx_through_the_parent())
        }),
        ("a_worker_uses_try_notify_and_request_all_through_the_parent", || {
            Box::pin(a_worker_uses_try_notify_and_request_all_through_the_parent())
        }),
        ("sigterm_leaves_no_worker_behind", || Box::pin(sigterm_leaves_no_worker_behind())),
        ("a_tunnel_accepted_in_a_worker_process", || {
            Box::pin(a_tunnel_accepted_in_a_worker_process())
        }),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(case())));
        drop(runtime);
        if outcome.is_ok() {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("\nprocess: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
