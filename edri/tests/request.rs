#![allow(missing_docs)]
//! Requests: exactly one responder, correlated responses, `request_all`, `Unavailable`,
//! timeouts, failures and panics.

use edri::prelude::*;
use std::time::{Duration, Instant};

#[event(request)]
#[derive(Debug, Clone)]
pub struct Echo {
    pub tag: u32,
    pub seq: u32,
    #[response]
    pub echoed: (u32, u32),
}

#[event(request, name = "test.slow")]
pub struct Slow {
    pub millis: u64,
}

#[event(request)]
pub struct Explode;

#[event(request)]
pub struct Refuse {
    pub status: Status,
}

#[event(request)]
pub struct NoResponder;

#[derive(Default)]
pub struct Server {
    served: u64,
}

#[manager]
impl Server {
    #[solve]
    async fn echo(&mut self, ev: &Echo) -> EchoResponse {
        self.served += 1;
        // Yield so that concurrent requests interleave in the mailbox.
        tokio::task::yield_now().await;
        EchoResponse { echoed: (ev.tag, ev.seq) }
    }

    #[solve]
    async fn slow(&self, ev: Slow) -> SlowResponse {
        tokio::time::sleep(Duration::from_millis(ev.millis)).await;
        SlowResponse
    }

    #[solve]
    fn explode(&mut self, _: &Explode) -> ExplodeResponse {
        panic!("boom");
    }

    #[solve]
    fn refuse(&mut self, ev: &Refuse) -> Result<RefuseResponse, Failure> {
        Err(Failure::new(ev.status, "refused on purpose"))
    }
}

async fn start() -> edri::Running {
    Edri::builder().only_explicit().manager(Server::default()).start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requesters_each_get_only_their_own_responses() {
    let running = start().await;
    let mut tasks = Vec::new();
    for tag in 0..2u32 {
        let ctx = running.ctx().clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..2_000u32 {
                let r = ctx.request(Echo { tag, seq }).await.unwrap();
                assert_eq!(r.echoed, (tag, seq), "requester {tag} got someone else's response");
            }
        }));
    }
    // And 64 in flight from one requester, answered out of the caller's order of polling.
    let ctx = running.ctx().clone();
    let many = (0..64u32).map(|seq| {
        let ctx = ctx.clone();
        async move { ctx.request(Echo { tag: 9, seq }).await.unwrap().echoed }
    });
    let joined: Vec<_> = futures_join_all(many).await;
    assert_eq!(joined, (0..64).map(|s| (9, s)).collect::<Vec<_>>());
    for t in tasks {
        t.await.unwrap();
    }
    running.shutdown().await.unwrap();
}

/// A join-all without a futures dependency: spawn each and await in order.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn no_responder_is_unavailable_at_once() {
    let running = start().await;
    let started = Instant::now();
    let err = running.ctx().request(NoResponder).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(10), "took {:?}", started.elapsed());
    assert_eq!(err.status(), Status::Unavailable);
    assert!(err.message().contains("NoResponder"), "{err}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn per_call_timeout() {
    let running = start().await;
    let started = Instant::now();
    let err = running
        .ctx()
        .request(Slow { millis: 2_000 })
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.status(), Status::Timeout);
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_millis(1_000),
        "took {took:?}"
    );
    // A fast one within its deadline is fine, and the manager goes on.
    running.ctx().request(Slow { millis: 1 }).timeout(Duration::from_secs(5)).await.unwrap();
    drop(running);
}

#[tokio::test]
async fn builder_default_timeout_applies() {
    let running = Edri::builder()
        .only_explicit()
        .manager(Server::default())
        .request_timeout(Duration::from_millis(30))
        .start()
        .await
        .unwrap();
    let err = running.ctx().request(Slow { millis: 1_000 }).await.unwrap_err();
    assert_eq!(err.status(), Status::Timeout);
    drop(running);
}

#[tokio::test]
async fn failures_keep_their_status() {
    let running = start().await;
    for status in [Status::Invalid, Status::NotFound, Status::Conflict, Status::Forbidden] {
        let err = running.ctx().request(Refuse { status }).await.unwrap_err();
        assert_eq!(err.status(), status);
        assert_eq!(err.message(), "refused on purpose");
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_yields_crashed_and_the_manager_goes_on() {
    let running = start().await;
    let err = running.ctx().request(Explode).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed);
    let ok = running.ctx().request(Echo { tag: 1, seq: 2 }).await.unwrap();
    assert_eq!(ok.echoed, (1, 2));
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_all_gathers_every_responder() {
    let running = start().await;
    let all = running.ctx().request_all(Echo { tag: 3, seq: 4 }).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].as_ref().unwrap().echoed, (3, 4));
    assert!(running.ctx().request_all(NoResponder).await.is_empty());
    let refused = running.ctx().request_all(Refuse { status: Status::Failed }).await;
    assert_eq!(refused[0].as_ref().unwrap_err().status(), Status::Failed);
    running.shutdown().await.unwrap();
}

/// A manager that asks another one from inside its handler, and itself.
#[derive(Default)]
pub struct Proxy;

#[event(request)]
pub struct ViaProxy {
    pub seq: u32,
    #[response]
    pub echoed: (u32, u32),
}

#[event(request)]
pub struct AskMyself;

#[manager]
impl Proxy {
    #[solve]
    async fn via(&mut self, ev: &ViaProxy, ctx: &Ctx) -> Result<ViaProxyResponse, Failure> {
        let r = ctx.request(Echo { tag: 7, seq: ev.seq }).await?;
        Ok(ViaProxyResponse { echoed: r.echoed })
    }

    #[solve]
    async fn myself(&mut self, _: &AskMyself, ctx: &Ctx) -> Result<AskMyselfResponse, Failure> {
        ctx.request(AskMyself).await
    }
}

#[tokio::test]
async fn handlers_make_requests_and_a_self_request_fails_instead_of_deadlocking() {
    let running = Edri::builder()
        .only_explicit()
        .manager(Server::default())
        .manager(Proxy)
        .start()
        .await
        .unwrap();
    let r = running.ctx().request(ViaProxy { seq: 5 }).await.unwrap();
    assert_eq!(r.echoed, (7, 5));
    let err = running.ctx().request(AskMyself).timeout(Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(err.status(), Status::Failed, "{err}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn vitals_count_processed_failed_and_crashed() {
    let running = start().await;
    running.ctx().request(Echo { tag: 0, seq: 0 }).await.unwrap();
    running.ctx().request(Refuse { status: Status::Invalid }).await.unwrap_err();
    running.ctx().request(Explode).await.unwrap_err();
    let v = &running.vitals()[0];
    assert_eq!(
        (v.name.as_str(), v.processed, v.failed, v.crashed, v.queued, v.capacity),
        ("Server", 3, 1, 1, 0, 1024)
    );
    running.shutdown().await.unwrap();
}
