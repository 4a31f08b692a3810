// Every tunnel acceptor shape the contract allows compiles and runs: sync/async,
// `&self`/`&mut self`, the event by `&E` or by value, with/without `ctx`, returning `()`,
// `Result<(), Failure>` or `Result<(), custom error>`; and the opener's and the acceptor's
// API: `ctx.open(..).window(..).timeout(..)`, `split`, `blocking_send`/`blocking_recv` on a
// `Tunnel<E, Acceptor>` moved into a thread, `reject`.

use edri::prelude::*;
use edri::{Acceptor, Chunk, Opener, TunnelReceiver, TunnelSender};
use std::time::Duration;

/// A custom acceptor error, turned into a `Failure` by the `From` impl below.
#[derive(Debug)]
pub struct Busy;

impl From<Busy> for Failure {
    fn from(_: Busy) -> Self {
        Failure::unavailable("busy")
    }
}

/// Uppercases chunks. Opener sends `Chunk`, receives `Chunk`.
#[event(tunnel, send = Chunk, receive = Chunk)]
#[derive(Debug, Clone)]
pub struct Upper;

/// Converts on a thread. Opener sends `Chunk`, receives the byte count (`u64`).
#[event(tunnel, send = Chunk, receive = u64)]
#[derive(Debug, Clone)]
pub struct Convert {
    pub to: String,
}

/// Counts up to `n`, taken by value by an async acceptor returning a custom error.
#[event(tunnel, send = u32, receive = u32)]
#[derive(Debug, Clone)]
pub struct Count {
    pub n: u32,
}

/// Sums what it receives; async, `&self`, by value, no ctx, `-> ()`.
#[event(tunnel, send = u64, receive = u64)]
#[derive(Debug, Clone)]
pub struct Sum;

/// Always refused, by `reject` from a `&self`, by-ref, no-ctx acceptor.
#[event(tunnel, send = u8, receive = u8)]
#[derive(Debug, Clone)]
pub struct Refused;

/// Refused by the acceptor's `Err`, which rejects the unanswered opening.
#[event(tunnel, send = u8, receive = u8)]
#[derive(Debug, Clone)]
pub struct Erring;

/// Accepted in a worker process (declared only: the shapes compile).
#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct InWorker;

/// Accepted in a worker process, without the context.
#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct InWorkerNoCtx;

#[derive(Default)]
pub struct Tunnels {
    opened: u32,
}

#[manager(name = "shapes.Tunnels")]
impl Tunnels {
    // process mode: owned event, opening and context, no self
    #[solve(process, limit = 2)]
    fn in_worker(_: InWorker, opening: Opening<InWorker>, ctx: Ctx) -> Result<(), Failure> {
        let mut end = opening.accept()?;
        while let Some(chunk) = end.blocking_recv()? {
            end.blocking_send(chunk)?;
        }
        end.close();
        let _ = ctx;
        Ok(())
    }

    #[solve(process)]
    fn in_worker_no_ctx(_: InWorkerNoCtx, opening: Opening<InWorkerNoCtx>) {
        opening.reject(Failure::invalid("no"));
    }

    // sync, &mut self, &E, ctx, -> ()
    #[solve]
    fn upper(&mut self, _: &Upper, opening: Opening<Upper>, ctx: &Ctx) {
        self.opened += 1;
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

    // sync, &self, E by value, no ctx, -> Result<(), Failure>; the end moves into a thread
    #[solve(inline)]
    fn convert(&self, ev: Convert, opening: Opening<Convert>) -> Result<(), Failure> {
        if ev.to.is_empty() {
            return Err(Failure::invalid("convert to what?"));
        }
        let window: usize = opening.window();
        let end: Tunnel<Convert, Acceptor> = opening.accept()?;
        std::thread::spawn(move || convert_blocking(end, window));
        Ok(())
    }

    // async, &mut self, E by value, ctx, -> Result<(), custom error>
    #[solve]
    async fn count(&mut self, ev: Count, opening: Opening<Count>, ctx: &Ctx) -> Result<(), Busy> {
        if ev.n > 1000 {
            return Err(Busy);
        }
        self.opened += 1;
        let mut end = opening.accept().map_err(|_| Busy)?;
        ctx.spawn(async move {
            for i in 0..ev.n {
                end.send(i).await?;
            }
            end.close();
            Ok::<_, Failure>(())
        });
        Ok(())
    }

    // async, &self, E by value, no ctx, -> (); split into halves
    #[solve]
    async fn sum(&self, _: Sum, opening: Opening<Sum>) {
        let Ok(end) = opening.accept() else { return };
        let (tx, rx): (TunnelSender<u64>, TunnelReceiver<u64>) = end.split();
        tokio::spawn(sum(tx, rx));
    }

    // sync, &self, &E, no ctx, -> (); rejects
    #[solve]
    fn refused(&self, _: &Refused, opening: Opening<Refused>) {
        opening.reject(Failure::forbidden("not for you"));
    }

    // async, &mut self, &E, ctx, -> Result<(), Failure>; fails without answering
    #[solve]
    async fn erring(
        &mut self,
        _: &Erring,
        _opening: Opening<Erring>,
        ctx: &Ctx,
    ) -> Result<(), Failure> {
        let _ = ctx;
        Err(Failure::invalid("cannot take this one"))
    }
}

fn convert_blocking(mut end: Tunnel<Convert, Acceptor>, window: usize) -> Result<(), Failure> {
    assert!(window >= 1);
    let mut bytes = 0u64;
    while let Some(chunk) = end.blocking_recv()? {
        bytes += chunk.len() as u64;
        end.blocking_send(bytes)?;
    }
    end.close();
    Ok(())
}

async fn sum(mut tx: TunnelSender<u64>, mut rx: TunnelReceiver<u64>) -> Result<(), Failure> {
    let mut total = 0;
    while let Some(n) = rx.recv().await? {
        total += n;
    }
    tx.send(total).await?;
    tx.close();
    Ok(())
}

#[edri::main(flavor = "multi_thread")]
async fn main() -> edri::Result<()> {
    let running = Edri::builder().only_explicit().manager(Tunnels::default()).start().await?;
    let ctx = running.ctx();

    // upper: a task on the acceptor's side
    let mut tunnel: Tunnel<Upper> = ctx.open(Upper).await.unwrap();
    tunnel.send(Chunk(b"abc".to_vec())).await.unwrap();
    tunnel.close();
    assert_eq!(tunnel.recv().await.unwrap().unwrap().into_inner(), b"ABC");
    assert!(tunnel.recv().await.unwrap().is_none());

    // convert: window and timeout set by the opener, the acceptor's end on a thread
    let mut tunnel: Tunnel<Convert, Opener> = ctx
        .open(Convert { to: "upper".into() })
        .window(4)
        .timeout(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(tunnel.window(), 4);
    tunnel.send(Chunk::from(&b"12345"[..])).await.unwrap();
    assert_eq!(tunnel.recv().await.unwrap(), Some(5));
    tunnel.send(Chunk::from(vec![0; 3])).await.unwrap();
    assert_eq!(tunnel.recv().await.unwrap(), Some(8));
    tunnel.close();
    assert_eq!(tunnel.recv().await.unwrap(), None);
    let err = ctx.open(Convert { to: String::new() }).await.unwrap_err();
    assert_eq!(err.status(), Status::Invalid);

    // count: the opener's end split into halves
    let (tx, mut rx) = ctx.open(Count { n: 3 }).await.unwrap().split();
    tx.close();
    let mut got = Vec::new();
    while let Some(n) = rx.recv().await.unwrap() {
        got.push(n);
    }
    assert_eq!(got, [0, 1, 2]);
    let err = ctx.open(Count { n: 5000 }).await.unwrap_err();
    assert_eq!(err.status(), Status::Unavailable);

    // sum
    let mut tunnel = ctx.open(Sum).await.unwrap();
    for n in [1, 2, 3] {
        tunnel.send(n).await.unwrap();
    }
    tunnel.close();
    assert_eq!(tunnel.recv().await.unwrap(), Some(6));

    // refused and erring
    assert_eq!(ctx.open(Refused).await.unwrap_err().status(), Status::Forbidden);
    assert_eq!(ctx.open(Erring).await.unwrap_err().status(), Status::Invalid);

    running.shutdown().await
}
