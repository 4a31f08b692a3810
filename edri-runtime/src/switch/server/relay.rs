//! The switch's relay of one joined router: its frames read and forwarded to their addressee,
//! and the frames queued towards it written, many per write.

use super::status::{Refusal, Traffic};
use super::{ConnError, Hub};
use crate::framing::{FrameError, FrameReader, decode, frame};
use crate::switch::frame::{FromSwitch, ToSwitch};
use crate::switch::{DEAD_AFTER, IDLE_PING, WRITE_BATCH};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// Reads a joined router's frames and forwards them, until it disconnects.
pub(super) async fn read_loop(
    hub: &Hub,
    read: &mut FrameReader<BufReader<OwnedReadHalf>>,
    id: &str,
    traffic: &Traffic,
    left: &mut bool,
) -> Result<(), ConnError> {
    let mut routes: HashMap<String, mpsc::Sender<Vec<u8>>> = HashMap::new();
    loop {
        let body = match tokio::time::timeout(DEAD_AFTER, read.next_body()).await {
            Ok(Ok(body)) => body,
            Ok(Err(FrameError::Closed)) => return Ok(()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(ConnError::Silent(DEAD_AFTER)),
        };
        // The 4-byte length prefix, then the body.
        let size = body.len() + 4;
        traffic.received(size);
        hub.counters.traffic.received(size);
        let (to, message) = match decode::<ToSwitch<'_>>(&body)? {
            ToSwitch::Data { to, epoch, base, first, count, items } => {
                (to, FromSwitch::Data { from: id, epoch, base, first, count, items })
            }
            ToSwitch::Ack { to, epoch, next } => (to, FromSwitch::Ack { from: id, epoch, next }),
            ToSwitch::Resend { to, epoch, from } => {
                (to, FromSwitch::Resend { from: id, epoch, from_seq: from })
            }
            ToSwitch::Ping => continue,
            ToSwitch::Leave => {
                *left = true;
                continue;
            }
            ToSwitch::Join { .. } => {
                let reason = "a router joined twice on one connection".into();
                return Err(ConnError::Refused(Refusal::Handshake, reason));
            }
        };
        let bytes = frame(&message)?;
        forward(hub, &mut routes, to, bytes).await;
    }
}

/// Queues `bytes` towards router `to`; drops them when it is not connected (its sender will
/// send them again once it is back).
async fn forward(
    hub: &Hub,
    routes: &mut HashMap<String, mpsc::Sender<Vec<u8>>>,
    to: &str,
    bytes: Vec<u8>,
) {
    let mut bytes = bytes;
    for _ in 0..2 {
        let tx = match routes.get(to) {
            Some(tx) => tx.clone(),
            None => match hub.sender(to) {
                Some(tx) => routes.entry(to.to_owned()).or_insert(tx).clone(),
                None => return,
            },
        };
        match tx.send(bytes).await {
            Ok(()) => return,
            // That connection is gone; a newer one may be there.
            Err(mpsc::error::SendError(back)) => {
                routes.remove(to);
                bytes = back;
            }
        }
    }
}

/// Writes queued frames, many per write; a ping when idle. Counts them in `traffic` and in
/// the hub's totals.
pub(super) async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<u8>>,
    hub: Arc<Hub>,
    traffic: Arc<Traffic>,
) {
    let ping = frame(&FromSwitch::Ping).unwrap_or_default();
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    let add = |buf: &mut Vec<u8>, f: &[u8]| {
        traffic.sent(f.len());
        hub.counters.traffic.sent(f.len());
        buf.extend_from_slice(f);
    };
    loop {
        match tokio::time::timeout(IDLE_PING, rx.recv()).await {
            Ok(Some(f)) => add(&mut buf, &f),
            Ok(None) => return,
            Err(_) => add(&mut buf, &ping),
        }
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(f) => add(&mut buf, &f),
                Err(_) => break,
            }
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
}
