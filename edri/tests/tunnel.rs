#![allow(missing_docs)]
//! Tunnels in one router: a large stream converted chunk by chunk, rejection, no acceptor,
//! a panicking acceptor, flow control under a slow receiver, many tunnels at once, thread
//! workers, closing and dropping.

use edri::prelude::*;
use edri::{Acceptor, Chunk, Tunnel};
use std::time::{Duration, Instant};

/// Uppercases every chunk it receives and sends it back.
#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Upper {
    /// Handle the end on a thread instead of a task.
    pub on_thread: bool,
}

/// Always refused.
#[event(tunnel, send = u32, receive = u32)]
pub struct Refused;

/// The acceptor panics after `after` items.
#[event(tunnel, send = u32, receive = u32)]
pub struct Fragile {
    pub after: u32,
}

/// Takes one item every `millis` ms.
#[event(tunnel, send = Chunk, receive = u64)]
pub struct Slow {
    pub millis: u64,
}

/// Nobody accepts it.
#[event(tunnel, send = u32, receive = u32)]
pub struct Orphan;

/// The acceptor neither accepts nor rejects: `keep` holds the opening, otherwise drops it.
#[event(tunnel, send = u32, receive = u32)]
pub struct Undecided {
    pub keep: bool,
}

/// The acceptor returns an error instead of answering.
#[event(tunnel, send = u32, receive = u32)]
pub struct Erring;

/// Accepts the openings `Undecided { keep: true }` kept; answers with how many of them could
/// still be accepted.
#[event(request)]
pub struct AcceptKept {
    #[response]
    pub accepted: u32,
    #[response]
    pub too_late: u32,
}

/// The acceptor panics before answering.
#[event(tunnel, send = u32, receive = u32)]
pub struct Panicky;

/// Sums what it receives, answers with the sum once the opener closed.
#[event(tunnel, send = u64, receive = u64)]
pub struct Sum;

#[derive(Default)]
pub struct Converter {
    kept: Vec<Opening<Undecided>>,
}

#[manager]
impl Converter {
    #[solve]
    fn upper(&mut self, ev: &Upper, opening: Opening<Upper>, ctx: &Ctx) {
        let Ok(end) = opening.accept() else { return };
        if ev.on_thread {
            std::thread::spawn(move || upper_blocking(end));
        } else {
            ctx.spawn(upper(end));
        }
    }

    #[solve]
    fn refused(&mut self, _: &Refused, opening: Opening<Refused>) {
        opening.reject(Failure::forbidden("not for you"));
    }

    #[solve]
    fn fragile(&mut self, ev: &Fragile, opening: Opening<Fragile>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        let after = ev.after;
        ctx.spawn(async move {
            let mut seen = 0;
            while let Ok(Some(n)) = end.recv().await {
                seen += 1;
                assert!(seen < after, "fragile gives up at item {n}");
                let _ = end.send(n).await;
            }
        });
    }

    #[solve]
    fn slow(&mut self, ev: &Slow, opening: Opening<Slow>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        let pause = Duration::from_millis(ev.millis);
        ctx.spawn(async move {
            let mut bytes = 0u64;
            while let Ok(Some(chunk)) = end.recv().await {
                bytes += chunk.len() as u64;
                tokio::time::sleep(pause).await;
            }
            let _ = end.send(bytes).await;
            end.close();
        });
    }

    #[solve]
    fn undecided(&mut self, ev: &Undecided, opening: Opening<Undecided>) {
        if ev.keep {
            self.kept.push(opening);
        }
    }

    #[solve]
    fn accept_kept(&mut self, _: &AcceptKept) -> AcceptKeptResponse {
        let (mut accepted, mut too_late) = (0, 0);
        for opening in self.kept.drain(..) {
            match opening.accept() {
                Ok(_) => accepted += 1,
                Err(f) => {
                    assert_eq!(f.status(), Status::Unavailable, "{f}");
                    too_late += 1;
                }
            }
        }
        AcceptKeptResponse { accepted, too_late }
    }

    #[solve]
    fn panicky(&mut self, _: &Panicky, _opening: Opening<Panicky>) {
        panic!("the acceptor breaks before answering");
    }

    #[solve]
    fn erring(&mut self, _: &Erring, _opening: Opening<Erring>) -> Result<(), Failure> {
        Err(Failure::invalid("cannot take this one"))
    }

    #[solve]
    async fn sum(&mut self, _: Sum, opening: Opening<Sum>, ctx: &Ctx) {
        let Ok(end) = opening.accept() else { return };
        ctx.spawn(async move {
            let (mut tx, mut rx) = end.split();
            let mut sum = 0u64;
            while let Ok(Some(n)) = rx.recv().await {
                sum += n;
            }
            let _ = tx.send(sum).await;
            tx.close();
        });
    }
}

async fn upper(mut end: Tunnel<Upper, Acceptor>) -> Result<(), Failure> {
    while let Some(mut chunk) = end.recv().await? {
        chunk.make_ascii_uppercase();
        end.send(chunk).await?;
    }
    end.close();
    Ok(())
}

fn upper_blocking(mut end: Tunnel<Upper, Acceptor>) -> Result<(), Failure> {
    while let Some(mut chunk) = end.blocking_recv()? {
        chunk.make_ascii_uppercase();
        end.blocking_send(chunk)?;
    }
    end.close();
    Ok(())
}

async fn start() -> edri::Running {
    Edri::builder().only_explicit().manager(Converter::default()).start().await.unwrap()
}

/// Chunk `i` of the test stream: lower-case letters, different in every chunk.
fn chunk(i: usize, size: usize) -> Chunk {
    Chunk((0..size).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect())
}

/// Streams `total` bytes in `size` chunks through `Upper` and checks what comes back.
async fn stream_upper(ctx: &Ctx, total: usize, size: usize, on_thread: bool) -> Duration {
    let start = Instant::now();
    let tunnel = ctx.open(Upper { on_thread }).await.unwrap();
    let (mut tx, mut rx) = tunnel.split();
    let chunks = total / size;
    let sender = tokio::spawn(async move {
        for i in 0..chunks {
            tx.send(chunk(i, size)).await.unwrap();
        }
        tx.close();
    });
    let mut received = 0;
    while let Some(got) = rx.recv().await.unwrap() {
        let mut want = chunk(received, size);
        want.make_ascii_uppercase();
        assert!(got == want, "chunk {received} differs");
        received += 1;
    }
    sender.await.unwrap();
    assert_eq!(received, chunks, "every chunk comes back, once");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_stream_is_converted_complete_and_in_order() {
    let running = start().await;
    let took = stream_upper(running.ctx(), 100 << 20, 64 << 10, false).await;
    eprintln!("100 MiB through a tunnel in {took:?}");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptor_can_hand_its_end_to_a_thread() {
    let running = start().await;
    stream_upper(running.ctx(), 8 << 20, 64 << 10, true).await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_rejection_reaches_the_opener() {
    let running = start().await;
    let err = running.ctx().open(Refused).await.unwrap_err();
    assert_eq!(err.status(), Status::Forbidden);
    assert_eq!(err.message(), "not for you");

    let err = running.ctx().open(Erring).await.unwrap_err();
    assert_eq!(err.status(), Status::Invalid, "{err}");

    let err = running.ctx().open(Undecided { keep: false }).await.unwrap_err();
    assert_eq!(err.status(), Status::Failed, "{err}");
    assert!(err.message().contains("neither accepted nor rejected"), "{err}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_acceptor_is_unavailable_and_an_undecided_one_times_out() {
    let running = start().await;
    let err = running.ctx().open(Orphan).await.unwrap_err();
    assert_eq!(err.status(), Status::Unavailable);
    assert!(err.message().contains("Orphan"), "{err}");

    let begun = Instant::now();
    let err = running
        .ctx()
        .open(Undecided { keep: true })
        .timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Status::Timeout);
    assert!(begun.elapsed() < Duration::from_secs(5), "{:?}", begun.elapsed());
    // Accepting after the opener gave up fails; the acceptor's end is never used.
    let kept = running.ctx().request(AcceptKept {}).await.unwrap();
    assert_eq!((kept.accepted, kept.too_late), (0, 1));

    // An acceptor that panics before answering fails the open at once.
    let begun = Instant::now();
    let err = running.ctx().open(Panicky).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed, "{err}");
    assert!(begun.elapsed() < Duration::from_secs(5), "{:?}", begun.elapsed());
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_acceptor_ends_the_stream_with_an_error_promptly() {
    let running = start().await;
    let mut tunnel = running.ctx().open(Fragile { after: 10 }).await.unwrap();
    let begun = Instant::now();
    let mut echoed = 0;
    let failure = loop {
        if let Err(f) = tunnel.send(echoed).await {
            break f;
        }
        match tunnel.recv().await {
            Ok(Some(_)) => echoed += 1,
            Ok(None) => panic!("a crash is not a clean end"),
            Err(f) => break f,
        }
    };
    assert_eq!(echoed, 9);
    assert_eq!(failure.status(), Status::Crashed, "{failure}");
    // Promptly: well under any timeout (30 s), with room for a loaded machine.
    assert!(begun.elapsed() < Duration::from_secs(5), "{:?}", begun.elapsed());
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_holds_the_sender_within_its_window() {
    let running = start().await;
    let size = 64 << 10;
    let window = 8;
    let tunnel = running.ctx().open(Slow { millis: 5 }).window(window).await.unwrap();
    assert_eq!(tunnel.window(), window);
    let (mut tx, mut rx) = tunnel.split();
    let mut peak = 0;
    for i in 0..100 {
        tx.send(chunk(i, size)).await.unwrap();
        peak = peak.max(tx.buffered());
    }
    tx.close();
    assert_eq!(rx.recv().await.unwrap(), Some(100 * size as u64));
    assert_eq!(rx.recv().await.unwrap(), None);
    let bound = window * size;
    eprintln!(
        "slow receiver: peak {peak} items = {} KiB buffered (bound {} KiB)",
        peak * size / 1024,
        bound / 1024
    );
    assert!(peak <= window && peak * size <= bound, "{peak} items");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tunnels_at_once() {
    let running = start().await;
    let mut tasks = Vec::new();
    for t in 0..100u64 {
        let ctx = running.ctx().clone();
        tasks.push(tokio::spawn(async move {
            let mut tunnel = ctx.open(Sum).await.unwrap();
            for n in 0..1_000 {
                tunnel.send(t * n).await.unwrap();
            }
            tunnel.close();
            let sum = tunnel.recv().await.unwrap();
            assert_eq!(tunnel.recv().await.unwrap(), None);
            (t, sum)
        }));
    }
    for task in tasks {
        let (t, sum) = tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap();
        assert_eq!(sum, Some(t * 999 * 1000 / 2));
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropping_an_end_is_an_error_for_the_other_side_and_closing_is_not() {
    let running = start().await;
    // The opener drops its end: the acceptor's receiver fails, its task ends.
    let tunnel = running.ctx().open(Sum).await.unwrap();
    drop(tunnel);

    // The opener closes without sending: the sum is 0, then the end of the stream.
    let mut tunnel = running.ctx().open(Sum).await.unwrap();
    tunnel.close();
    assert!(tunnel.send(1).await.is_err(), "sending after close is an error");
    assert_eq!(tunnel.recv().await.unwrap(), Some(0));
    assert_eq!(tunnel.recv().await.unwrap(), None);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_manager_cannot_open_its_own_tunnel() {
    #[event(notification)]
    pub struct Go;

    #[derive(Default)]
    pub struct Loop;

    #[manager(manual)]
    impl Loop {
        #[solve]
        async fn go(&mut self, _: &Go, ctx: &Ctx) {
            let err = ctx.open(Looped).await.unwrap_err();
            assert_eq!(err.status(), Status::Failed);
            ctx.shutdown();
        }

        #[solve]
        fn looped(&mut self, _: &Looped, opening: Opening<Looped>) {
            opening.reject(Failure::invalid("unreachable"));
        }
    }

    #[event(tunnel, send = u8, receive = u8)]
    pub struct Looped;

    let running = Edri::builder().only_explicit().manager(Loop).start().await.unwrap();
    running.ctx().notify(Go).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), running.wait_for_stop_signal())
        .await
        .expect("the handler asked to stop");
    running.shutdown().await.unwrap();
}
