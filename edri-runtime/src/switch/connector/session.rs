//! The connection to the switch: connect, authenticate both ways, join, then read and write
//! until it breaks; reconnect with backoff. The only part of the connector that does I/O.

use super::Connector;
use super::delivery::Origins;
use super::metrics::add;
use crate::framing::{FrameError, FrameReader, MAX_FRAME, decode, frame, read_body};
use crate::switch::frame::{
    Challenge, FromSwitch, HANDSHAKE_LIMIT, Hello, PROTOCOL, PeerInfo, Proof, ToSwitch, Transcript,
    Verdict, nonce,
};
use crate::switch::{DEAD_AFTER, IDLE_PING, SECRET_ENV, WRITE_BATCH};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

/// How long connecting and authenticating may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Delays between reconnection attempts: quick first tries, then at most 2 s.
const BACKOFF_MS: [u64; 9] = [0, 10, 20, 50, 100, 200, 500, 1_000, 2_000];

/// The delay before reconnection attempt `attempt` (from 0), stretched by up to a quarter by
/// `random`: routers cut off together do not all come back at once.
fn backoff(attempt: usize, random: u8) -> Duration {
    let delay = BACKOFF_MS[attempt.min(BACKOFF_MS.len() - 1)];
    let jitter = u64::from(random) * delay / 1024;
    Duration::from_millis(delay + jitter)
}

/// Why a connection attempt failed.
enum ConnectError {
    /// The switch (or this router) refused: a configuration problem.
    Refused(String),
    /// Not reachable, or the connection broke.
    Io(String),
}

impl From<FrameError> for ConnectError {
    fn from(e: FrameError) -> Self {
        Self::Io(e.to_string())
    }
}

impl From<std::io::Error> for ConnectError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

impl Connector {
    /// Connects, serves the connection until it breaks, reconnects; forever. `first` learns
    /// how the first attempt went: joined or unreachable (`Ok`), or refused.
    pub(super) async fn run(self: Arc<Self>, first: oneshot::Sender<Result<(), String>>) {
        let mut first = Some(first);
        let mut origins = Origins::new();
        let mut attempt = 0usize;
        while !self.stopping.load(Ordering::Acquire) {
            match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
                Ok(Ok((read, write, peers))) => {
                    attempt = 0;
                    self.joined(peers);
                    self.connected.store(true, Ordering::Release);
                    tracing::info!(switch = %self.addr, router = %self.id, "joined the switch");
                    if let Some(first) = first.take() {
                        let _ = first.send(Ok(()));
                    }
                    // Aborted with this task too (`Connector::abort`): the writer owns the
                    // socket's write half, which must close when the connector stops.
                    let mut writer = AbortOnDrop(tokio::spawn(self.clone().write_loop(write)));
                    let outcome = tokio::select! {
                        outcome = self.read_loop(read, &mut origins) => outcome,
                        outcome = &mut writer.0 => match outcome {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(e),
                            Err(e) => Err(format!("writer ended: {e}")),
                        },
                    };
                    drop(writer);
                    self.connected.store(false, Ordering::Release);
                    self.leaving.store(false, Ordering::Release);
                    self.outbox().disconnected();
                    if self.stopping.load(Ordering::Acquire) {
                        return;
                    }
                    add(&self.stats.reconnects, 1);
                    match outcome {
                        Ok(()) => {
                            tracing::warn!(switch = %self.addr, "the switch closed the connection; reconnecting")
                        }
                        Err(e) => {
                            tracing::warn!(switch = %self.addr, error = %e, "lost the connection to the switch; reconnecting")
                        }
                    }
                }
                Ok(Err(ConnectError::Refused(reason))) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(reason));
                        return;
                    }
                    tracing::error!(switch = %self.addr, %reason, "the switch refused this router; retrying");
                    attempt = attempt.max(BACKOFF_MS.len() - 1);
                }
                Ok(Err(ConnectError::Io(e))) => {
                    if let Some(first) = first.take() {
                        tracing::warn!(switch = %self.addr, error = %e, "the switch is not reachable; starting anyway and retrying in the background");
                        let _ = first.send(Ok(()));
                    } else {
                        tracing::debug!(switch = %self.addr, error = %e, "reconnecting failed");
                    }
                }
                Err(_) => {
                    tracing::warn!(switch = %self.addr, "connecting to the switch timed out");
                    if let Some(first) = first.take() {
                        let _ = first.send(Ok(()));
                    }
                }
            }
            tokio::time::sleep(backoff(attempt, nonce()[0])).await;
            attempt += 1;
        }
    }

    /// Connects, authenticates (both ways) and joins.
    async fn connect(
        &self,
    ) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf, Vec<PeerInfo>), ConnectError> {
        let stream = TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        // Small: past the handshake, frames are read around it ([`FrameReader`]).
        let mut read = BufReader::with_capacity(HANDSHAKE_LIMIT, read);
        let ours = nonce();
        let hello =
            Hello { protocol: PROTOCOL, router: self.id.clone(), epoch: self.epoch, nonce: ours };
        write.write_all(&frame(&hello)?).await?;
        let (theirs, proof) = match decode(&read_body(&mut read, HANDSHAKE_LIMIT).await?)? {
            Challenge::Ok { nonce, proof, .. } => (nonce, proof),
            Challenge::Refused { reason } => return Err(ConnectError::Refused(reason)),
        };
        let (id, epoch) = (self.id.as_str(), self.epoch);
        if !Transcript::of("switch", &ours, &theirs, id, epoch).verify(&self.secret, &proof) {
            return Err(ConnectError::Refused(format!(
                "authentication failed: the switch at {} does not prove the same secret (set the \
                 same {SECRET_ENV} for the switch and every router)",
                self.addr
            )));
        }
        let proof = Proof {
            proof: Transcript::of("router", &theirs, &ours, id, epoch).proof(&self.secret),
        };
        write.write_all(&frame(&proof)?).await?;
        if let Verdict::Refused { reason } = decode(&read_body(&mut read, HANDSHAKE_LIMIT).await?)?
        {
            return Err(ConnectError::Refused(reason));
        }
        let join = ToSwitch::Join {
            catalog: self.catalog.clone(),
            subscribes: self.subscribes.clone(),
            responds: self.responds.clone(),
        };
        write.write_all(&frame(&join)?).await?;
        match decode(&read_body(&mut read, MAX_FRAME).await?)? {
            FromSwitch::Joined { peers } => Ok((read, write, peers)),
            FromSwitch::Refused { reason } => Err(ConnectError::Refused(reason)),
            _ => Err(ConnectError::Io("the switch did not answer the join".into())),
        }
    }

    /// Reads the switch's frames until the connection ends (`Ok` when the switch closed it).
    async fn read_loop(
        self: &Arc<Self>,
        read: BufReader<OwnedReadHalf>,
        origins: &mut Origins,
    ) -> Result<(), String> {
        let ctx = self.ctx().ok_or("the router is gone")?;
        let mut read = FrameReader::new(read);
        loop {
            let body = match tokio::time::timeout(DEAD_AFTER, read.next_body()).await {
                Ok(Ok(body)) => body,
                Ok(Err(FrameError::Closed)) => return Ok(()),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("nothing received for {DEAD_AFTER:?}")),
            };
            match decode::<FromSwitch<'_>>(&body).map_err(|e| e.to_string())? {
                FromSwitch::Data { from, epoch, base, first, count, items } => {
                    let items = body.slice_ref(items);
                    self.receive(&ctx, origins, from, epoch, base, first, count, items)?;
                }
                FromSwitch::Ack { from, epoch, next } if epoch == self.epoch => {
                    self.acked(from, next);
                }
                FromSwitch::Resend { from, epoch, from_seq } if epoch == self.epoch => {
                    self.resend(from, from_seq);
                }
                FromSwitch::Ack { .. } | FromSwitch::Resend { .. } | FromSwitch::Ping => {}
                FromSwitch::PeerUp(info) => {
                    tracing::info!(router = %info.id, "router joined the switch");
                    self.peer_up(info);
                }
                FromSwitch::PeerDown { id } => {
                    tracing::info!(router = %id, "router disconnected from the switch");
                    self.peer_down(&id);
                }
                FromSwitch::PeerGone { id } => {
                    tracing::info!(router = %id, "router left");
                    self.forget(&id, "the router left");
                }
                FromSwitch::Joined { .. } | FromSwitch::Refused { .. } => {
                    return Err("the switch sent a join answer twice".into());
                }
            }
        }
    }

    /// Writes what the outbox has to send, many frames per write; a ping after [`IDLE_PING`]
    /// without writes; the leave frame when stopping.
    async fn write_loop(self: Arc<Self>, mut write: OwnedWriteHalf) -> Result<(), String> {
        let ping = frame(&ToSwitch::Ping).map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(WRITE_BATCH + 64 * 1024);
        let mut wrote = tokio::time::Instant::now();
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let leaving = self.leaving.load(Ordering::Acquire);
            let acks_due = self
                .outbox()
                .fill(&mut buf, self.epoch, self.now(), leaving)
                .map_err(|e| e.to_string())?;
            // Silence for IDLE_PING makes the switch drop the link, however often the writer
            // is woken for nothing it can send (events for a router that is away).
            if buf.is_empty() && wrote.elapsed() >= IDLE_PING {
                buf.extend_from_slice(&ping);
            }
            if buf.is_empty() {
                if self.leaving.load(Ordering::Acquire) {
                    let leave = frame(&ToSwitch::Leave).map_err(|e| e.to_string())?;
                    write.write_all(&leave).await.map_err(|e| e.to_string())?;
                    write.flush().await.map_err(|e| e.to_string())?;
                    self.leaving.store(false, Ordering::Release);
                    std::future::pending::<()>().await;
                }
                let ping_due = IDLE_PING.saturating_sub(wrote.elapsed());
                let wait = acks_due.map_or(ping_due, |due| {
                    Duration::from_millis(due.saturating_sub(self.now())).min(ping_due)
                });
                let _ = tokio::time::timeout(wait, woken).await;
                continue;
            }
            write.write_all(&buf).await.map_err(|e| e.to_string())?;
            wrote = tokio::time::Instant::now();
            buf.clear();
        }
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_fast_and_stays_within_two_seconds_and_a_quarter() {
        let delays: Vec<u64> = (0..12).map(|a| backoff(a, 0).as_millis() as u64).collect();
        assert_eq!(delays, [0, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 2_000, 2_000, 2_000]);
        assert_eq!(backoff(0, 255), Duration::ZERO);
        assert_eq!(backoff(7, 255), Duration::from_millis(1_000 + 249));
        assert_eq!(backoff(99, 128), Duration::from_millis(2_250));
    }
}
