//! Tunnels accepted by `#[solve(process)]` acceptors.
//!
//! The router keeps the opening and runs the acceptor in a worker process with an opening of
//! the worker's own. When the worker's acceptor answers, the router answers the real opening
//! the same way and bridges the accepted end to the worker over the worker's pipe; in the
//! worker, a bridge joins the acceptor's end to that pipe. Both bridges are the ones that join
//! routers ([`crate::tunnel::remote`]), with the same credits. The worker's call lasts as long as its
//! tunnel (the router reads a worker's pipe only during a call).

use crate::event::TunnelEvent;
use crate::tunnel::remote::{Message, RemoteEnd, bridge};
use crate::tunnel::{Opening, Tunnel, Verdict, pair, verdict};
use crate::{Ctx, Failure};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// Router side: the worker's acceptor answered `answer`; `remote` is the way to the worker.
pub(crate) fn decided<E: TunnelEvent>(
    opening: Opening<E>,
    answer: Result<(), Failure>,
    remote: RemoteEnd,
) {
    let window = opening.window();
    match answer {
        Err(failure) => opening.reject(failure),
        Ok(()) => match opening.accept() {
            Ok(end) => {
                let Tunnel { tx, rx, .. } = end;
                let credit = Arc::new(AtomicUsize::new(window));
                tokio::spawn(bridge(rx.pipe, tx.pipe, credit, remote, window, E::META.name));
            }
            Err(failure) => {
                // The opener gave up meanwhile: both directions end for the worker.
                let link = remote.link;
                tokio::spawn(async move {
                    let _ = link.send(Message::Stop(failure.clone())).await;
                    let _ = link.send(Message::End(Some(failure))).await;
                });
            }
        },
    }
}

/// Worker side: runs acceptor `f` on the serialized event `input`, its opening bridged to the
/// router; returns once the handler returned and the tunnel is over.
pub(crate) fn accept_in_worker<E, F>(input: &[u8], ctx: Ctx, f: F) -> Result<Vec<u8>, Failure>
where
    E: TunnelEvent,
    F: FnOnce(E, Opening<E>, Ctx) -> Result<(), Failure>,
{
    let name = E::META.name;
    let event: E = postcard::from_bytes(input)
        .map_err(|e| Failure::invalid(format!("malformed `{name}` from the parent: {e}")))?;
    let (window, remote) = super::child::take_tunnel()
        .ok_or_else(|| Failure::failed(format!("`{name}` reached a worker without its tunnel")))?;
    let (theirs, mut mine) = pair::<E>(window);
    let credit = mine.bridged();
    let (answer, rx) = Verdict::new(name);
    let opening = Opening::new(mine, answer.clone());
    let tunnel = ctx.spawn(async move {
        let decided = verdict(rx, name).await;
        let accepted = decided.is_ok();
        if remote.link.send(Message::Verdict(decided)).await.is_ok() && accepted {
            let Tunnel { tx, rx, .. } = theirs;
            bridge(rx.pipe, tx.pipe, credit, remote, window, name).await;
        }
    });
    let out = f(event, opening, ctx.clone());
    if let Err(failure) = &out {
        answer.answer(Err(failure.clone()));
    }
    drop(answer);
    let _ = ctx.shared().runtime.block_on(tunnel);
    out?;
    crate::ctx::encode(&())
}
