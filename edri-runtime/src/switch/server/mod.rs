//! The switch: a TCP hub that authenticates routers, checks their catalogs against each
//! other, tells each router who else is there, and forwards stream frames to their addressee.
//!
//! It keeps no events: a frame for a router that is not connected is dropped, because its
//! sender keeps every event until the addressee acknowledges it and sends it again when the
//! addressee is back. Killing the switch therefore loses nothing either.

use super::frame::{
    CatalogEntry, Challenge, FromSwitch, HANDSHAKE_LIMIT, Hello, PROTOCOL, PeerInfo, Proof,
    ToSwitch, Transcript, Verdict, nonce,
};
mod relay;
mod status;

pub use status::{ConnectedRouter, ServerStatus, TrafficCounts};

use crate::framing::{FrameError, FrameReader, MAX_FRAME, decode, frame, read_body};
use relay::{read_loop, write_loop};
use status::{Counters, Parts, Refusal, RouterParts, Traffic};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, mpsc};

/// How long a client has to authenticate and join.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued towards one router before its senders wait.
const QUEUE: usize = 1024;
/// The longest router id accepted.
const MAX_ID: usize = 128;

/// The switch server. `edri-switch` is a thin command line around it; tests and applications
/// can run one in-process too.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let server = edri::switch::Server::bind("127.0.0.1:7800", "s3cret").await?;
/// println!("listening on {}", server.local_addr()?);
/// server.run().await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

/// A handle on a [`Server`]'s counters that stays usable while [`Server::run`] owns the
/// server: [`Server::status_handle`].
#[derive(Clone)]
pub struct StatusHandle {
    hub: Arc<Hub>,
    addr: String,
}

impl std::fmt::Debug for StatusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusHandle").field("addr", &self.addr).finish()
    }
}

impl StatusHandle {
    /// The connected routers and the counters, now.
    pub fn status(&self) -> ServerStatus {
        let routers = self.hub.routers.lock().unwrap_or_else(PoisonError::into_inner);
        let uptime_ms =
            |since: Instant| u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let parts = Parts {
            addr: self.addr.clone(),
            uptime_ms: uptime_ms(self.hub.started),
            counters: &self.hub.counters,
            routers: routers
                .values()
                .map(|c| {
                    let router = RouterParts {
                        id: c.info.id.clone(),
                        addr: c.addr.to_string(),
                        epoch: c.info.epoch,
                        joined_ms: uptime_ms(c.joined),
                        subscribes: c.info.subscribes.clone(),
                        responds: c.info.responds.clone(),
                    };
                    (router, &*c.traffic)
                })
                .collect(),
        };
        ServerStatus::new(parts)
    }
}

/// Who is connected.
struct Hub {
    secret: Box<[u8]>,
    routers: Mutex<HashMap<String, Conn>>,
    next_conn: AtomicU64,
    started: Instant,
    counters: Counters,
}

/// One connected router.
#[derive(Clone)]
struct Conn {
    conn: u64,
    info: PeerInfo,
    /// Its events by name: (kind, fingerprint).
    catalog: Arc<HashMap<String, (String, u64)>>,
    tx: mpsc::Sender<Vec<u8>>,
    /// Closes this connection (a newer one of the same router replaced it).
    kill: Arc<Notify>,
    /// Where it connects from.
    addr: SocketAddr,
    /// When it joined.
    joined: Instant,
    /// Its frames and bytes on this connection.
    traffic: Arc<Traffic>,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("{1}")]
    Refused(Refusal, String),
    #[error("nothing received for {0:?}")]
    Silent(Duration),
    #[error("replaced by a newer connection of the same router")]
    Replaced,
}

impl Server {
    /// Listens on `addr`. Routers must know `secret` to join.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs, secret: impl AsRef<[u8]>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let hub = Arc::new(Hub {
            secret: secret.as_ref().into(),
            routers: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            started: Instant::now(),
            counters: Counters::default(),
        });
        Ok(Self { listener, hub })
    }

    /// The address it listens on (the port the system picked for port 0).
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle on its status and counters ([`ServerStatus`]), for a status page or metrics.
    pub fn status_handle(&self) -> StatusHandle {
        let addr = self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        StatusHandle { hub: self.hub.clone(), addr }
    }

    /// Serves until the task is dropped or accepting fails for good.
    ///
    /// # Errors
    /// When the listener fails in a way that retrying cannot fix.
    pub async fn run(self) -> std::io::Result<()> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "edri switch listening");
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    tokio::spawn(serve(self.hub.clone(), stream, addr));
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// One connection, from the first byte to the last.
async fn serve(hub: Arc<Hub>, stream: TcpStream, addr: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %e, "cannot set TCP_NODELAY");
    }
    let (read, mut write) = stream.into_split();
    // Small: past the handshake, frames are read around it ([`FrameReader`]).
    let mut read = BufReader::with_capacity(HANDSHAKE_LIMIT, read);
    let joined = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&hub, &mut read, &mut write));
    let (info, catalog) = match joined.await {
        Ok(Ok(joined)) => joined,
        Ok(Err(ConnError::Frame(FrameError::Closed))) => {
            tracing::info!(%addr, "a client closed the connection during the handshake");
            return;
        }
        Ok(Err(e)) => {
            let why = if let ConnError::Refused(why, _) = &e { *why } else { Refusal::Handshake };
            hub.counters.refused(why);
            tracing::warn!(%addr, error = %e, "refused a client");
            return;
        }
        Err(_) => {
            hub.counters.refused(Refusal::Handshake);
            tracing::warn!(%addr, "a client did not authenticate within {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    let id = info.id.clone();
    let (tx, rx) = mpsc::channel(QUEUE);
    let kill = Arc::new(Notify::new());
    let traffic = Arc::new(Traffic::default());
    let link = Link { tx, kill: kill.clone(), addr, traffic: traffic.clone() };
    let conn = match hub.register(info, catalog, link).await {
        Ok(conn) => conn,
        Err(reason) => {
            hub.counters.refused(Refusal::Catalog);
            tracing::warn!(%addr, router = %id, %reason, "refused a router");
            if let Ok(f) = frame(&FromSwitch::Refused { reason }) {
                let _ = write.write_all(&f).await;
            }
            return;
        }
    };
    hub.counters.joined();
    tracing::info!(%addr, router = %id, "router joined");
    let writer = tokio::spawn(write_loop(write, rx, hub.clone(), traffic.clone()));
    let mut left = false;
    let mut read = FrameReader::new(read);
    let outcome = tokio::select! {
        outcome = read_loop(&hub, &mut read, &id, &traffic, &mut left) => outcome,
        () = kill.notified() => Err(ConnError::Replaced),
    };
    writer.abort();
    hub.unregister(&id, conn, left).await;
    match outcome {
        Ok(()) if left => tracing::info!(router = %id, "router left"),
        Ok(()) => tracing::info!(router = %id, "router disconnected"),
        Err(e) => tracing::warn!(router = %id, error = %e, "router connection ended"),
    }
}

/// Authentication, then the join. Only the small handshake types are decoded before the
/// client proved that it knows the secret.
async fn handshake(
    hub: &Hub,
    read: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
) -> Result<(PeerInfo, Vec<CatalogEntry>), ConnError> {
    let hello: Hello = decode(&read_body(read, HANDSHAKE_LIMIT).await?)?;
    let refuse = |reason: String| Challenge::Refused { reason };
    if hello.protocol != PROTOCOL {
        let reason = format!(
            "the router speaks switch protocol {}, this switch speaks {PROTOCOL}",
            hello.protocol
        );
        write.write_all(&frame(&refuse(reason.clone()))?).await.map_err(FrameError::from)?;
        return Err(ConnError::Refused(Refusal::Protocol, reason));
    }
    if hello.router.is_empty() || hello.router.len() > MAX_ID {
        let reason = format!("a router id must have 1 to {MAX_ID} bytes");
        write.write_all(&frame(&refuse(reason.clone()))?).await.map_err(FrameError::from)?;
        return Err(ConnError::Refused(Refusal::Protocol, reason));
    }
    let ours = nonce();
    let (router, epoch) = (hello.router.as_str(), hello.epoch);
    let proof = Transcript::of("switch", &hello.nonce, &ours, router, epoch).proof(&hub.secret);
    let challenge = Challenge::Ok { protocol: PROTOCOL, nonce: ours, proof };
    write.write_all(&frame(&challenge)?).await.map_err(FrameError::from)?;
    let answer = match read_body(read, HANDSHAKE_LIMIT).await {
        Ok(answer) => answer,
        // The router checks this switch's proof first and hangs up when it is wrong.
        Err(FrameError::Closed) => {
            return Err(ConnError::Refused(
                Refusal::Secret,
                format!("router `{router}` hung up at the switch's proof: the two secrets differ"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let answer: Proof = decode(&answer)?;
    if !Transcript::of("router", &ours, &hello.nonce, router, epoch)
        .verify(&hub.secret, &answer.proof)
    {
        let reason = "authentication failed: the router does not know the switch's secret";
        let verdict = Verdict::Refused { reason: reason.to_owned() };
        write.write_all(&frame(&verdict)?).await.map_err(FrameError::from)?;
        let reason = format!("router `{}`: {reason}", hello.router);
        return Err(ConnError::Refused(Refusal::Secret, reason));
    }
    write.write_all(&frame(&Verdict::Accepted)?).await.map_err(FrameError::from)?;
    match decode::<ToSwitch<'_>>(&read_body(read, MAX_FRAME).await?)? {
        ToSwitch::Join { catalog, subscribes, responds } => {
            let (id, epoch) = (hello.router, hello.epoch);
            Ok((PeerInfo { id, epoch, catalog: catalog.clone(), subscribes, responds }, catalog))
        }
        _ => Err(ConnError::Refused(
            Refusal::Handshake,
            "the first frame after authentication must be a join".into(),
        )),
    }
}

impl Hub {
    /// Adds a router (replacing an older connection of the same id), tells it who is there
    /// and tells the others about it. Refuses it when an event is defined differently.
    async fn register(
        &self,
        info: PeerInfo,
        catalog: Vec<CatalogEntry>,
        link: Link,
    ) -> Result<u64, String> {
        let Link { tx, kill, addr, traffic } = link;
        let catalog: HashMap<String, (String, u64)> =
            catalog.into_iter().map(|e| (e.name, (e.kind, e.fingerprint))).collect();
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let id = info.id.clone();
        let (others, replaced) = {
            let mut routers = self.routers.lock().unwrap_or_else(PoisonError::into_inner);
            for other in routers.values().filter(|o| o.info.id != id) {
                if let Some(reason) = conflict(&catalog, other) {
                    return Err(reason);
                }
            }
            let peers: Vec<PeerInfo> =
                routers.values().filter(|o| o.info.id != id).map(|o| o.info.clone()).collect();
            // A fresh queue has room: `Joined` is the first thing this router hears.
            let joined = frame(&FromSwitch::Joined { peers }).map_err(|e| e.to_string())?;
            tx.try_send(joined).map_err(|_| "the router's queue is closed".to_owned())?;
            let catalog = Arc::new(catalog);
            let joined = Instant::now();
            let conn = Conn { conn, info: info.clone(), catalog, tx, kill, addr, joined, traffic };
            let replaced = routers.insert(id.clone(), conn);
            let others: Vec<mpsc::Sender<Vec<u8>>> =
                routers.values().filter(|o| o.info.id != id).map(|o| o.tx.clone()).collect();
            (others, replaced)
        };
        if let Some(old) = replaced {
            tracing::info!(router = %id, "a newer connection replaces the router's old one");
            old.kill.notify_one();
        }
        if let Ok(up) = frame(&FromSwitch::PeerUp(info)) {
            for tx in others {
                let _ = tx.send(up.clone()).await;
            }
        }
        Ok(conn)
    }

    /// Removes connection `conn` of router `id` (unless a newer one replaced it) and tells the
    /// others.
    async fn unregister(&self, id: &str, conn: u64, left: bool) {
        let others: Vec<mpsc::Sender<Vec<u8>>> = {
            let mut routers = self.routers.lock().unwrap_or_else(PoisonError::into_inner);
            if routers.get(id).is_none_or(|c| c.conn != conn) {
                return;
            }
            routers.remove(id);
            routers.values().map(|o| o.tx.clone()).collect()
        };
        let id = id.to_owned();
        let message = if left { FromSwitch::PeerGone { id } } else { FromSwitch::PeerDown { id } };
        if let Ok(f) = frame(&message) {
            for tx in others {
                let _ = tx.send(f.clone()).await;
            }
        }
    }

    /// The queue towards router `id`, if it is connected.
    fn sender(&self, id: &str) -> Option<mpsc::Sender<Vec<u8>>> {
        self.routers.lock().unwrap_or_else(PoisonError::into_inner).get(id).map(|c| c.tx.clone())
    }
}

/// The connection of a router that is joining.
struct Link {
    tx: mpsc::Sender<Vec<u8>>,
    kill: Arc<Notify>,
    addr: SocketAddr,
    traffic: Arc<Traffic>,
}

/// The first event that `catalog` defines differently from router `other`, as a message.
fn conflict(catalog: &HashMap<String, (String, u64)>, other: &Conn) -> Option<String> {
    let mut names: Vec<&String> = catalog.keys().collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let (kind, fingerprint) = &catalog[name];
        let (other_kind, other_fingerprint) = other.catalog.get(name)?;
        (kind != other_kind || fingerprint != other_fingerprint).then(|| {
            format!(
                "event `{name}` is defined differently on this router ({kind}, fingerprint \
                 {fingerprint:016x}) and on router `{}` ({other_kind}, fingerprint \
                 {other_fingerprint:016x}); build both from the same definition",
                other.info.id
            )
        })
    })
}

#[cfg(test)]
mod tests;
