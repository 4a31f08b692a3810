//! The events and managers the routers of the tests run.

use edri::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One event of a numbered stream.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Tick {
    pub n: u64,
    pub pad: Vec<u8>,
}

/// What the counter saw.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Report {
    #[response]
    pub received: u64,
    #[response]
    pub duplicates: u64,
    #[response]
    pub out_of_order: u64,
    #[response]
    pub last: u64,
}

/// Answered by every router that runs `Echo`.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Shout {
    pub text: String,
    #[response]
    pub echo: String,
    #[response]
    pub router: String,
}

/// Answered after `ms` milliseconds.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Slow {
    pub ms: u64,
}

/// Every router answers with its id and how many `Shout`s it answered (for `request_all`).
#[event(request)]
#[derive(Debug, Clone)]
pub struct Who {
    #[response]
    pub router: String,
    #[response]
    pub shouts: u64,
}

/// Nobody answers this.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Nobody {}

/// Starts sending `count` ticks at `per_sec` from the streamer's router.
#[event(request)]
#[derive(Debug, Clone)]
pub struct StartStream {
    pub first: u64,
    pub count: u64,
    pub per_sec: u64,
}

/// How many ticks the streamer has sent.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Progress {
    #[response]
    pub sent: u64,
}

/// Counts ticks: duplicates and order.
#[derive(Default)]
pub struct Counter {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    last: Option<u64>,
    seen: HashSet<u64>,
}

#[manager]
impl Counter {
    #[solve]
    fn tick(&mut self, ev: &Tick) {
        if !self.seen.insert(ev.n) {
            self.duplicates += 1;
            return;
        }
        self.received += 1;
        if self.last.is_some_and(|last| ev.n != last + 1) {
            self.out_of_order += 1;
        }
        self.last = Some(ev.n);
    }

    #[solve]
    fn report(&mut self, _: &Report) -> ReportResponse {
        ReportResponse {
            received: self.received,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            last: self.last.unwrap_or(0),
        }
    }
}

/// This router's id: set by the test that started its process, `ctl` in the test's own.
pub fn router_id() -> String {
    std::env::var(super::ROUTER_ENV).unwrap_or_else(|_| "ctl".into())
}

/// Answers `Shout`, `Slow` and `Who`.
#[derive(Default)]
pub struct Echo {
    shouts: u64,
}

#[manager]
impl Echo {
    #[solve]
    fn shout(&mut self, ev: &Shout) -> Result<ShoutResponse, Failure> {
        if ev.text == "fail" {
            return Err(Failure::conflict("asked to fail"));
        }
        self.shouts += 1;
        Ok(ShoutResponse { echo: ev.text.to_uppercase(), router: router_id() })
    }

    #[solve]
    async fn slow(&mut self, ev: &Slow) -> SlowResponse {
        tokio::time::sleep(Duration::from_millis(ev.ms)).await;
        SlowResponse {}
    }

    #[solve]
    fn who(&mut self, _: &Who) -> WhoResponse {
        WhoResponse { router: router_id(), shouts: self.shouts }
    }
}

/// Sends ticks on request, paced.
#[derive(Default)]
pub struct Streamer {
    sent: Arc<AtomicU64>,
}

#[manager]
impl Streamer {
    #[solve]
    fn start_stream(&mut self, ev: &StartStream, ctx: &Ctx) -> StartStreamResponse {
        let (ctx, sent, count, per_sec) = (ctx.clone(), self.sent.clone(), ev.count, ev.per_sec);
        let first = ev.first;
        ctx.clone().spawn(async move {
            let begin = tokio::time::Instant::now();
            for i in 0..count {
                let n = first + i;
                let due = begin + Duration::from_micros(i * 1_000_000 / per_sec.max(1));
                tokio::time::sleep_until(due).await;
                if ctx.notify(Tick { n, pad: vec![7; 48] }).await.is_err() {
                    return;
                }
                sent.store(i + 1, Ordering::Release);
            }
        });
        StartStreamResponse {}
    }

    #[solve]
    fn progress(&mut self, _: &Progress) -> ProgressResponse {
        ProgressResponse { sent: self.sent.load(Ordering::Acquire) }
    }
}

/// Uppercases every chunk and sends it back.
#[event(tunnel, send = edri::Chunk, receive = edri::Chunk)]
pub struct Upper {}

/// Uppercases every chunk in a worker process of the accepting router.
#[event(tunnel, send = edri::Chunk, receive = edri::Chunk)]
pub struct UpperInWorker {}

/// Always refused.
#[event(tunnel, send = u64, receive = u64)]
pub struct Refused {}

/// Nobody accepts it.
#[event(tunnel, send = u64, receive = u64)]
pub struct Orphan {}

/// Echoes numbers; the acceptor panics at number `at`.
#[event(tunnel, send = u64, receive = u64)]
pub struct Fragile {
    pub at: u64,
}

/// Checks that it receives 0, 1, 2, .. and, once the opener closed, answers with
/// `(received, out of order)`; takes one item every `pause_ms`.
#[event(tunnel, send = u64, receive = (u64, u64))]
pub struct Check {
    pub pause_ms: u64,
}

/// Accepts tunnels on the router that runs it.
#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn upper(&mut self, _: &Upper, opening: Opening<Upper>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        ctx.spawn(async move {
            while let Some(mut chunk) = end.recv().await? {
                chunk.make_ascii_uppercase();
                end.send(chunk).await?;
            }
            end.close();
            Ok::<_, Failure>(())
        });
    }

    #[solve(process)]
    fn upper_in_worker(_: UpperInWorker, opening: Opening<UpperInWorker>) -> Result<(), Failure> {
        let mut end = opening.accept()?;
        while let Some(mut chunk) = end.blocking_recv()? {
            chunk.make_ascii_uppercase();
            end.blocking_send(chunk)?;
        }
        end.close();
        Ok(())
    }

    #[solve]
    fn refused(&mut self, _: &Refused, opening: Opening<Refused>) {
        opening.reject(Failure::forbidden("not for you"));
    }

    #[solve]
    fn fragile(&mut self, ev: &Fragile, opening: Opening<Fragile>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        let at = ev.at;
        ctx.spawn(async move {
            while let Ok(Some(n)) = end.recv().await {
                assert!(n != at, "the Fragile acceptor breaks at {n}, on purpose");
                let _ = end.send(n).await;
            }
        });
    }

    #[solve]
    fn check(&mut self, ev: &Check, opening: Opening<Check>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        let pause = Duration::from_millis(ev.pause_ms);
        ctx.spawn(async move {
            let (mut received, mut out_of_order) = (0, 0);
            while let Some(n) = end.recv().await? {
                if n != received {
                    out_of_order += 1;
                }
                received += 1;
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            end.send((received, out_of_order)).await?;
            end.close();
            Ok::<_, Failure>(())
        });
    }
}

/// Handles about 400 ticks a second (a mailbox of 256) and appends the number of each
/// handled tick to the file named by `EDRI_TEST_LOG`, so that what a killed router handled
/// is known.
#[derive(Default)]
pub struct SlowCounter {
    log: Option<std::fs::File>,
}

#[manager(capacity = 256)]
impl SlowCounter {
    #[solve]
    async fn tick(&mut self, ev: &Tick) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let log = self.log.get_or_insert_with(|| {
            let path = std::env::var("EDRI_TEST_LOG").expect("EDRI_TEST_LOG");
            std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the log")
        });
        std::io::Write::write_all(log, format!("{}\n", ev.n).as_bytes()).expect("log a tick");
    }
}

/// The test runner's own router needs one manager.
#[derive(Default)]
pub struct Ctl;

#[manager]
impl Ctl {
    #[solve]
    fn who(&mut self, _: &Who) -> WhoResponse {
        WhoResponse { router: "ctl".into(), shouts: 0 }
    }
}
