//! A router's end of the switch: one connection, kept up; numbered streams to every other
//! router, kept until acknowledged; deduplicated, ordered delivery of theirs.

mod progress;

use super::frame::{
    CatalogEntry, Challenge, FromSwitch, HANDSHAKE_LIMIT, Hello, Item, PROTOCOL, PeerInfo, Proof,
    ToSwitch, Transcript, TunnelMessage, Verdict, encode_item, nonce, push_data, split_items,
};
use super::{DEAD_AFTER, IDLE_PING, Peer, SECRET_ENV, Switch, SwitchStatus, WRITE_BATCH};
use crate::envelope::Handled;
use crate::error::StartError;
use crate::event::EventKind;
use crate::framing::{FrameError, MAX_FRAME, decode, frame, push_frame, read_body};
use crate::manager::ManagerDescriptor;
use crate::router::{BoxFuture, EventRegistration, FastMap, Shared, Uplink};
use crate::tunnel::remote::{Link, Message, RemoteEnd};
use crate::{Ctx, Failure};
use bytes::Bytes;
use progress::{Delivery, Progress};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc, oneshot};

/// The origin of a [`Ctx`] that delivers events from other routers: what it sends is never
/// sent back to the switch.
pub(crate) const REMOTE: u32 = u32::MAX - 1;
/// An acknowledgement waits at most this long (ms) for data to ride along with.
const ACK_DELAY_MS: u64 = 1;
/// The first byte of an encoded [`Item::Request`] and [`Item::Response`] (variant indices).
const ITEM_REQUEST: u8 = 1;
const ITEM_RESPONSE: u8 = 2;
/// Items in one `Data` frame at most.
const BATCH_ITEMS: usize = 1024;
/// Bytes a kept event costs beyond its own (bookkeeping).
const ENTRY_OVERHEAD: usize = 48;
/// In-flight events without any acknowledgement for this long are sent again.
const RETRANSMIT_MS: u64 = 3_000;
/// How long connecting and authenticating may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Delays between reconnection attempts: quick first tries, then at most 2 s.
const BACKOFF_MS: [u64; 9] = [0, 10, 20, 50, 100, 200, 500, 1_000, 2_000];

type Waiter = oneshot::Sender<Result<Vec<u8>, Failure>>;

/// Counters of the connector ([`SwitchStatus`], metrics).
#[derive(Debug, Default)]
struct Stats {
    sent: AtomicU64,
    delivered: AtomicU64,
    resent: AtomicU64,
    duplicates: AtomicU64,
    lost: AtomicU64,
    redelivered: AtomicU64,
    rejected: AtomicU64,
    reconnects: AtomicU64,
    restarts: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The other routers, as the switch described them.
#[derive(Default)]
struct Peers {
    known: HashMap<Arc<str>, Known>,
    /// Notification name → routers with subscribers.
    subscribers: FastMap<String, Arc<[Arc<str>]>>,
    /// Request name → routers that answer it.
    responders: FastMap<String, Arc<[Arc<str>]>>,
}

struct Known {
    info: PeerInfo,
    up: bool,
    /// When it went down (ms on the connector's clock).
    down_since: u64,
}

impl Peers {
    fn rebuild(&mut self) {
        let mut subscribers: FastMap<String, Vec<Arc<str>>> = FastMap::default();
        let mut responders: FastMap<String, Vec<Arc<str>>> = FastMap::default();
        let mut ids: Vec<&Arc<str>> = self.known.keys().collect();
        ids.sort();
        for id in ids {
            let info = &self.known[id].info;
            for name in &info.subscribes {
                subscribers.entry(name.clone()).or_default().push(id.clone());
            }
            for name in &info.responds {
                responders.entry(name.clone()).or_default().push(id.clone());
            }
        }
        self.subscribers = subscribers.into_iter().map(|(k, v)| (k, v.into())).collect();
        self.responders = responders.into_iter().map(|(k, v)| (k, v.into())).collect();
    }

    fn is_up(&self, id: &str) -> bool {
        self.known.get(id).is_some_and(|k| k.up)
    }
}

/// Events kept for other routers, by destination.
#[derive(Default)]
struct Outbox {
    streams: FastMap<Arc<str>, Stream>,
    /// Bytes kept, over all streams.
    bytes: usize,
    /// Acknowledgements to send: origin → (its epoch, next).
    acks: FastMap<Arc<str>, (u64, u64)>,
    /// When the pending acknowledgements must go even without data (ms).
    acks_due: Option<u64>,
    /// Resend requests to send: (origin, its epoch, from).
    resends: Vec<(Arc<str>, u64, u64)>,
}

/// This router's stream to one other router. Entry `i` has sequence `acked + i`.
struct Stream {
    /// Everything below was acknowledged (or given up).
    acked: u64,
    /// The next sequence to transmit.
    sent: u64,
    entries: VecDeque<Entry>,
    /// Whether the destination is connected to the switch.
    up: bool,
    /// When the stream last made progress (ms), for retransmission.
    progress: u64,
}

struct Entry {
    item: Bytes,
    /// When it was queued (ms on the connector's clock).
    at: u64,
}

impl Stream {
    fn new(up: bool, now: u64) -> Self {
        Self { acked: 0, sent: 0, entries: VecDeque::new(), up, progress: now }
    }

    fn next(&self) -> u64 {
        self.acked + self.entries.len() as u64
    }

    /// Sends everything unacknowledged again; returns how many events that is.
    fn rewind(&mut self, now: u64) -> u64 {
        let again = self.sent - self.acked;
        self.sent = self.acked;
        self.progress = now;
        again
    }
}

/// What this router knows about one other router's stream to it.
struct Inbound {
    epoch: u64,
    /// The next sequence to accept (`None` until the first frame: then its `base`).
    expected: Option<u64>,
    /// The gap already reported, so that one gap asks for one resend.
    nacked: Option<u64>,
    queue: mpsc::UnboundedSender<Batch>,
    /// Items queued for delivery, not delivered yet.
    queued: Arc<AtomicUsize>,
    /// Which accepted events were handled: what is acknowledged.
    progress: Arc<Progress>,
}

/// Items of one frame, handed to the delivery task of their origin.
struct Batch {
    epoch: u64,
    first: u64,
    items: Bytes,
    ranges: Vec<Range<usize>>,
}

/// A tunnel with another router: the router, the opener's epoch, the tunnel's number (the
/// opener's), and whether this router opened it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TunnelKey {
    peer: Arc<str>,
    epoch: u64,
    id: u64,
    opened_here: bool,
}

/// Where the messages of one tunnel go: its bridge.
struct TunnelSlot {
    tx: mpsc::UnboundedSender<Message>,
    /// The other router's epoch: the tunnel ends when that router restarts.
    peer_epoch: u64,
}

/// The connector of one router.
pub(crate) struct Connector {
    addr: String,
    secret: Vec<u8>,
    id: String,
    epoch: u64,
    outage_ms: u64,
    buffer: usize,
    window: u64,
    /// The router, once it exists (weak: the router owns the connector).
    shared: std::sync::OnceLock<Weak<Shared>>,
    registry: FastMap<&'static str, &'static EventRegistration>,
    catalog: Vec<CatalogEntry>,
    subscribes: Vec<String>,
    responds: Vec<String>,
    peers: RwLock<Peers>,
    out: Mutex<Outbox>,
    /// Wakes the writer.
    wake: Notify,
    /// Signals room in the outbox.
    space: Notify,
    calls: Mutex<HashMap<u64, Waiter>>,
    next_call: AtomicU64,
    tunnels: Mutex<HashMap<TunnelKey, TunnelSlot>>,
    next_tunnel: AtomicU64,
    round_robin: AtomicUsize,
    stats: Stats,
    connected: AtomicBool,
    stopping: AtomicBool,
    leaving: AtomicBool,
    clock: Instant,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
    /// A connector for a router running `managers`.
    pub(crate) fn new(
        config: Switch,
        managers: &[&'static ManagerDescriptor],
    ) -> Result<Self, StartError> {
        let secret = match config.secret {
            Some(secret) => secret,
            None => std::env::var(SECRET_ENV)
                .map(String::into_bytes)
                .map_err(|_| StartError::SwitchSecret { env: SECRET_ENV })?,
        };
        let id = config.id.unwrap_or_else(default_id);
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let registry: FastMap<&'static str, &'static EventRegistration> =
            inventory::iter::<EventRegistration>().map(|r| (r.meta.name, r)).collect();
        let mut catalog: Vec<CatalogEntry> = registry
            .values()
            .filter(|r| !r.meta.local)
            .map(|r| CatalogEntry {
                name: r.meta.name.to_owned(),
                kind: r.meta.kind.as_str().to_owned(),
                fingerprint: r.meta.fingerprint,
            })
            .collect();
        catalog.sort_by(|a, b| a.name.cmp(&b.name));
        let (mut subscribes, mut responds) = (Vec::new(), Vec::new());
        for handler in managers.iter().flat_map(|m| m.handlers.iter()) {
            if handler.event.local {
                continue;
            }
            match handler.event.kind {
                EventKind::Notification => subscribes.push(handler.event.name.to_owned()),
                EventKind::Request | EventKind::Tunnel => {
                    responds.push(handler.event.name.to_owned());
                }
            }
        }
        for list in [&mut subscribes, &mut responds] {
            list.sort();
            list.dedup();
        }
        Ok(Self {
            addr: config.addr,
            secret,
            id,
            epoch,
            outage_ms: u64::try_from(config.outage_window.as_millis()).unwrap_or(u64::MAX),
            buffer: config.buffer,
            window: u64::from(config.window),
            shared: std::sync::OnceLock::new(),
            registry,
            catalog,
            subscribes,
            responds,
            peers: RwLock::new(Peers::default()),
            out: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            space: Notify::new(),
            calls: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(0),
            tunnels: Mutex::new(HashMap::new()),
            next_tunnel: AtomicU64::new(0),
            round_robin: AtomicUsize::new(0),
            stats: Stats::default(),
            connected: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            clock: Instant::now(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Connects for the first time and keeps the connection up from then on. Returns once the
    /// first attempt is decided: joined, or unreachable (it keeps trying in the background).
    ///
    /// # Errors
    /// When the switch refuses this router (secret, protocol, catalog): a configuration error.
    pub(crate) async fn start(self: &Arc<Self>, shared: &Arc<Shared>) -> Result<(), StartError> {
        let _ = self.shared.set(Arc::downgrade(shared));
        let (first_tx, first_rx) = oneshot::channel();
        let runtime = &shared.runtime;
        let run = runtime.spawn(self.clone().run(first_tx));
        let ticker = runtime.spawn(self.clone().tick());
        self.tasks().extend([run, ticker]);
        match first_rx.await {
            Ok(Err(reason)) => {
                self.abort();
                Err(StartError::SwitchRefused { addr: self.addr.clone(), reason })
            }
            _ => Ok(()),
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn peers(&self) -> std::sync::RwLockReadGuard<'_, Peers> {
        self.peers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn peers_mut(&self) -> std::sync::RwLockWriteGuard<'_, Peers> {
        self.peers.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn ctx(&self) -> Option<Ctx> {
        let shared = self.shared.get()?.upgrade()?;
        Some(Ctx::new(shared, REMOTE))
    }

    /// Stops: waits (until `deadline`) for every event sent to a connected router to be
    /// acknowledged, tells the switch that this router leaves, and closes.
    pub(crate) async fn close(&self, deadline: tokio::time::Instant) {
        let flushed = async {
            while unacknowledged(&self.outbox()) > 0 && self.connected.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, flushed).await;
        let pending = unacknowledged(&self.outbox());
        if pending > 0 {
            tracing::warn!(pending, "stopping with events other routers have not acknowledged");
        }
        if self.connected.load(Ordering::Acquire) {
            self.leaving.store(true, Ordering::Release);
            self.wake.notify_one();
            let left = async {
                while self.leaving.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_millis(500), left).await;
        }
        self.abort();
    }

    /// Ends every task of the connector; waiting senders and callers fail.
    pub(crate) fn abort(&self) {
        self.stopping.store(true, Ordering::Release);
        self.connected.store(false, Ordering::Release);
        for task in self.tasks().drain(..) {
            task.abort();
        }
        self.space.notify_waiters();
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.tunnels().clear();
    }

    fn tunnels(&self) -> std::sync::MutexGuard<'_, HashMap<TunnelKey, TunnelSlot>> {
        self.tunnels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers tunnel `key` with a router of epoch `peer_epoch`: its messages from there
    /// arrive in the end's `incoming`; dropping the end's link forgets it.
    fn tunnel(self: &Arc<Self>, key: TunnelKey, peer_epoch: u64) -> RemoteEnd {
        let (tx, incoming) = mpsc::unbounded_channel();
        self.tunnels().insert(key.clone(), TunnelSlot { tx, peer_epoch });
        RemoteEnd { incoming, link: Arc::new(TunnelLink { connector: self.clone(), key }) }
    }

    /// Ends the tunnels with router `id` (all of them, or those of another epoch than
    /// `epoch`): their bridges see the link gone and fail both directions.
    fn end_tunnels(&self, id: &str, epoch: Option<u64>) {
        self.tunnels()
            .retain(|key, slot| &*key.peer != id || epoch.is_some_and(|e| e == slot.peer_epoch));
    }

    /// Events with router `id` were given up (beyond the outage window): its tunnels may have
    /// lost items, so they end, with an error on both directions.
    fn tunnels_lost(&self, id: &str) {
        let failure = Failure::unavailable(format!(
            "items of this tunnel with router `{id}` were given up beyond the outage window"
        ));
        self.tunnels().retain(|key, slot| {
            if &*key.peer != id {
                return true;
            }
            let _ = slot.tx.send(Message::Stop(failure.clone()));
            let _ = slot.tx.send(Message::End(Some(failure.clone())));
            false
        });
    }

    /// A snapshot for [`Running::switch`](crate::Running::switch).
    pub(crate) fn status(&self) -> SwitchStatus {
        let mut peers: Vec<Peer> = self
            .peers()
            .known
            .values()
            .map(|k| Peer {
                id: k.info.id.clone(),
                connected: k.up,
                subscribes: k.info.subscribes.clone(),
                responds: k.info.responds.clone(),
            })
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        let buffered = self.outbox().streams.values().map(|s| s.entries.len() as u64).sum();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SwitchStatus {
            id: self.id.clone(),
            epoch: self.epoch,
            connected: self.connected.load(Ordering::Acquire),
            peers,
            sent: get(&self.stats.sent),
            delivered: get(&self.stats.delivered),
            resent: get(&self.stats.resent),
            duplicates: get(&self.stats.duplicates),
            lost: get(&self.stats.lost),
            redelivered: get(&self.stats.redelivered),
            buffered,
            reconnects: get(&self.stats.reconnects),
            tunnels: self.tunnels().len() as u64,
        }
    }

    // ----- connection ---------------------------------------------------------------------

    /// Connects, serves the connection until it breaks, reconnects; forever.
    async fn run(self: Arc<Self>, first: oneshot::Sender<Result<(), String>>) {
        let mut first = Some(first);
        let mut inbound: HashMap<Arc<str>, Inbound> = HashMap::new();
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
                    let mut writer = tokio::spawn(self.clone().write_loop(write));
                    let outcome = tokio::select! {
                        outcome = self.read_loop(read, &mut inbound) => outcome,
                        outcome = &mut writer => match outcome {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(e),
                            Err(e) => Err(format!("writer ended: {e}")),
                        },
                    };
                    writer.abort();
                    self.connected.store(false, Ordering::Release);
                    self.leaving.store(false, Ordering::Release);
                    self.disconnected();
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
            let delay = BACKOFF_MS[attempt.min(BACKOFF_MS.len() - 1)];
            // Jitter, so that routers cut off together do not all come back at once.
            let jitter = u64::from(nonce()[0]) * delay / 1024;
            tokio::time::sleep(Duration::from_millis(delay + jitter)).await;
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
        let mut read = BufReader::with_capacity(WRITE_BATCH, read);
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

    /// The switch's list of routers replaces ours: the ones listed are up, the others down.
    /// Everything unacknowledged is sent again (the switch dropped whatever was in flight).
    fn joined(&self, list: Vec<PeerInfo>) {
        let now = self.now();
        {
            let mut peers = self.peers_mut();
            for known in peers.known.values_mut() {
                if known.up {
                    known.up = false;
                    known.down_since = now;
                }
            }
            for info in list {
                self.end_tunnels(&info.id, Some(info.epoch));
                let id: Arc<str> = info.id.as_str().into();
                let epoch = info.epoch;
                if let Some(old) =
                    peers.known.insert(id.clone(), Known { info, up: true, down_since: 0 })
                    && old.info.epoch != epoch
                {
                    self.restarted(&id);
                }
            }
            peers.rebuild();
        }
        let peers = self.peers();
        let mut out = self.outbox();
        for id in peers.known.keys() {
            out.streams.entry(id.clone()).or_insert_with(|| Stream::new(false, now));
        }
        let mut again = 0;
        for (id, stream) in &mut out.streams {
            stream.up = peers.is_up(id);
            again += stream.rewind(now);
        }
        add(&self.stats.resent, again);
        drop(out);
        self.wake.notify_one();
    }

    /// The connection is gone: nothing can be sent until the next join.
    fn disconnected(&self) {
        let mut out = self.outbox();
        for stream in out.streams.values_mut() {
            stream.up = false;
        }
    }

    fn peer_up(&self, info: PeerInfo) {
        self.end_tunnels(&info.id, Some(info.epoch));
        let id: Arc<str> = info.id.as_str().into();
        let epoch = info.epoch;
        let old = {
            let mut peers = self.peers_mut();
            let old = peers.known.insert(id.clone(), Known { info, up: true, down_since: 0 });
            peers.rebuild();
            old
        };
        if old.is_some_and(|old| old.info.epoch != epoch) {
            self.restarted(&id);
        }
        let now = self.now();
        let mut out = self.outbox();
        let stream = out.streams.entry(id).or_insert_with(|| Stream::new(true, now));
        stream.up = true;
        let again = stream.rewind(now);
        add(&self.stats.resent, again);
        drop(out);
        self.wake.notify_one();
    }

    /// Router `id` is back as a new run: what it was sent but had not acknowledged goes to
    /// the new run. The old run may have handled some of it before it stopped (it acknowledges
    /// only handled events): at most these are handled twice, and they are counted.
    fn restarted(&self, id: &str) {
        let out = self.outbox();
        let Some(stream) = out.streams.get(id) else { return };
        let again = stream.sent.saturating_sub(stream.acked);
        drop(out);
        if again > 0 {
            add(&self.stats.redelivered, again);
            tracing::warn!(
                router = id,
                events = again,
                "router restarted before acknowledging events it was sent; they go to its new \
                 run and may be handled twice"
            );
        }
    }

    fn peer_down(&self, id: &str) {
        let now = self.now();
        if let Some(known) = self.peers_mut().known.get_mut(id) {
            known.up = false;
            known.down_since = now;
        }
        if let Some(stream) = self.outbox().streams.get_mut(id) {
            stream.up = false;
        }
    }

    /// A router left for good (or was down beyond the outage window): forget it; what it had
    /// not acknowledged is lost, and said so.
    fn forget(&self, id: &str, why: &str) {
        self.end_tunnels(id, None);
        {
            let mut peers = self.peers_mut();
            peers.known.remove(id);
            peers.rebuild();
        }
        let mut out = self.outbox();
        if let Some(stream) = out.streams.remove(id) {
            let bytes: usize = stream.entries.iter().map(|e| e.item.len() + ENTRY_OVERHEAD).sum();
            out.bytes -= bytes;
            let lost = stream.entries.len() as u64;
            drop(out);
            self.space.notify_waiters();
            if lost > 0 {
                add(&self.stats.lost, lost);
                tracing::warn!(router = id, lost, "{why}; its unacknowledged events are lost");
            }
        }
    }

    // ----- reading ------------------------------------------------------------------------

    async fn read_loop(
        self: &Arc<Self>,
        mut read: BufReader<OwnedReadHalf>,
        inbound: &mut HashMap<Arc<str>, Inbound>,
    ) -> Result<(), String> {
        let ctx = self.ctx().ok_or("the router is gone")?;
        loop {
            let body = match tokio::time::timeout(DEAD_AFTER, read_body(&mut read, MAX_FRAME)).await
            {
                Ok(Ok(body)) => body,
                Ok(Err(FrameError::Closed)) => return Ok(()),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("nothing received for {DEAD_AFTER:?}")),
            };
            match decode::<FromSwitch<'_>>(&body).map_err(|e| e.to_string())? {
                FromSwitch::Data { from, epoch, base, first, count, items } => {
                    let items = body.slice_ref(items);
                    self.receive(&ctx, inbound, from, epoch, base, first, count, items)?;
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

    /// Accepts the items of a `Data` frame that are next in their stream, drops duplicates,
    /// asks for a resend at a gap, and hands the rest to the origin's delivery task.
    #[allow(clippy::too_many_arguments)]
    fn receive(
        self: &Arc<Self>,
        ctx: &Ctx,
        inbound: &mut HashMap<Arc<str>, Inbound>,
        from: &str,
        epoch: u64,
        base: u64,
        first: u64,
        count: u32,
        items: Bytes,
    ) -> Result<(), String> {
        let ranges = split_items(&items, count)
            .map_err(|e| format!("malformed frame from router `{from}`: {e}"))?;
        let state = match inbound.get_mut(from) {
            Some(state) => state,
            None => {
                let state = self.inbound(from.into());
                inbound.entry(from.into()).or_insert(state)
            }
        };
        if epoch < state.epoch {
            return Ok(());
        }
        if epoch > state.epoch {
            if state.epoch != 0 {
                add(&self.stats.restarts, 1);
                tracing::warn!(
                    router = from,
                    "router restarted; events it had not sent before are lost with its previous run"
                );
            }
            state.epoch = epoch;
            state.expected = None;
            state.nacked = None;
            state.progress.restart(epoch, base);
        }
        let expected = state.expected.get_or_insert(base);
        // Below `base` the sender gave up or was told it was delivered: never wait for it.
        if base > *expected {
            // Given up by the sender (beyond its outage window): a tunnel cannot go on with a
            // hole in its stream.
            self.tunnels_lost(from);
        }
        *expected = (*expected).max(base);
        if first > *expected {
            if state.nacked != Some(*expected) {
                state.nacked = Some(*expected);
                self.outbox().resends.push((from.into(), epoch, *expected));
                self.wake.notify_one();
            }
            return Ok(());
        }
        let skip = usize::try_from(*expected - first).unwrap_or(usize::MAX).min(ranges.len());
        add(&self.stats.duplicates, skip as u64);
        if skip == ranges.len() {
            // All seen: the acknowledgement may have been lost; say it again.
            self.ack(&from.into(), epoch, state.progress.handled());
            return Ok(());
        }
        if state.queued.load(Ordering::Acquire) as u64 > 2 * self.window {
            // A sender beyond its window: drop, it sends again after the next acknowledgement.
            return Ok(());
        }
        *expected = first + ranges.len() as u64;
        state.nacked = None;
        let mut seq = first + skip as u64;
        let mut rest = &ranges[skip..];
        let progress = state.progress.clone();
        progress.accept(seq, rest.len() as u64);
        // With nothing of this origin waiting for delivery, leading requests and responses
        // are handled here at once: a response goes to its caller, a request into its
        // responder's mailbox (no hop through the delivery task, order kept).
        if state.queued.load(Ordering::Acquire) == 0 {
            let from: Arc<str> = from.into();
            let handled = rest
                .iter()
                .enumerate()
                .take_while(|(i, range)| {
                    let item = &items[range.start..range.end];
                    let seq = seq + *i as u64;
                    match item.first() {
                        Some(&ITEM_REQUEST) => {
                            self.request(ctx, &from, item, progress.token(epoch, seq));
                            true
                        }
                        Some(&ITEM_RESPONSE) => {
                            self.resolve_response(item);
                            drop(progress.token(epoch, seq));
                            true
                        }
                        _ => false,
                    }
                })
                .count();
            if handled > 0 {
                seq += handled as u64;
                rest = &rest[handled..];
                add(&self.stats.delivered, handled as u64);
            }
        }
        if rest.is_empty() {
            return Ok(());
        }
        for range in rest {
            self.resolve_response(&items[range.start..range.end]);
        }
        state.queued.fetch_add(rest.len(), Ordering::AcqRel);
        let batch = Batch { epoch, first: seq, items, ranges: rest.to_vec() };
        if state.queue.send(batch).is_err() {
            return Err("the delivery task ended".into());
        }
        Ok(())
    }

    /// Starts the delivery task of a new origin.
    fn inbound(self: &Arc<Self>, from: Arc<str>) -> Inbound {
        let (queue, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (this, origin) = (Arc::downgrade(self), from.clone());
        let progress = Progress::new(Box::new(move |epoch, next| {
            if let Some(this) = this.upgrade() {
                this.ack(&origin, epoch, next);
            }
        }));
        let task = tokio::spawn(self.clone().deliver(from, rx, queued.clone(), progress.clone()));
        self.tasks().push(task);
        Inbound { epoch: 0, expected: None, nacked: None, queue, queued, progress }
    }

    /// A response is handed to its caller as soon as it arrives, not behind notifications
    /// waiting for a full mailbox.
    fn resolve_response(&self, item: &[u8]) {
        if item.first() != Some(&ITEM_RESPONSE) {
            return;
        }
        if let Ok(Item::Response { call, epoch, result }) = decode::<Item<'_>>(item)
            && epoch == self.epoch
        {
            let waiter = self.calls.lock().unwrap_or_else(PoisonError::into_inner).remove(&call);
            if let Some(waiter) = waiter {
                let _ = waiter.send(result.map(<[u8]>::to_vec));
            }
        }
    }

    /// Delivers one origin's items in order into the mailboxes of their handlers; each is
    /// acknowledged once handled ([`Progress`]).
    async fn deliver(
        self: Arc<Self>,
        from: Arc<str>,
        mut rx: mpsc::UnboundedReceiver<Batch>,
        queued: Arc<AtomicUsize>,
        progress: Arc<Progress>,
    ) {
        let Some(ctx) = self.ctx() else { return };
        while let Some(b) = rx.recv().await {
            for (i, range) in b.ranges.iter().enumerate() {
                let token = progress.token(b.epoch, b.first + i as u64);
                self.deliver_item(&ctx, &from, &b.items[range.clone()], token).await;
            }
            let n = b.ranges.len();
            add(&self.stats.delivered, n as u64);
            queued.fetch_sub(n, Ordering::AcqRel);
        }
    }

    async fn deliver_item(
        self: &Arc<Self>,
        ctx: &Ctx,
        from: &Arc<str>,
        item: &[u8],
        token: Delivery,
    ) {
        match decode::<Item<'_>>(item) {
            Ok(Item::Notify { event, payload }) => {
                let result = match self.registry.get(event) {
                    Some(r) if r.meta.kind == EventKind::Notification => {
                        let handled = Handled::new(Arc::new(token));
                        (r.notify_bytes)(ctx.clone(), payload, Some(handled)).await
                    }
                    _ => Err(Failure::invalid(format!("unknown notification `{event}`"))),
                };
                if let Err(failure) = result {
                    add(&self.stats.rejected, 1);
                    tracing::warn!(router = %from, event, %failure, "cannot deliver a notification from another router");
                }
            }
            Ok(Item::Request { .. }) => self.request(ctx, from, item, token),
            Ok(Item::Response { .. }) => {}
            Ok(Item::Open { tunnel, epoch, event, timeout_ms, window, payload }) => {
                let key = TunnelKey { peer: from.clone(), epoch, id: tunnel, opened_here: false };
                let remote = self.tunnel(key, epoch);
                let window = usize::try_from(window).unwrap_or(usize::MAX);
                let timeout = Duration::from_millis(timeout_ms);
                let accept = match self.registry.get(event).and_then(|r| r.accept_bytes) {
                    Some(accept) => accept(ctx.clone(), payload, window, timeout, remote),
                    None => {
                        let failure = Failure::unavailable(format!(
                            "router `{}` has no acceptor for tunnel `{event}`",
                            self.id
                        ));
                        Box::pin(async move {
                            let _ = remote.link.send(Message::Verdict(Err(failure))).await;
                        })
                    }
                };
                tokio::spawn(accept);
            }
            Ok(Item::Tunnel { tunnel, epoch, from_opener, message }) => {
                let opened_here = !from_opener;
                if opened_here && epoch != self.epoch {
                    return;
                }
                let key = TunnelKey { peer: from.clone(), epoch, id: tunnel, opened_here };
                let message = match message {
                    TunnelMessage::Verdict(result) => Message::Verdict(result),
                    TunnelMessage::Chunk(bytes) => Message::Chunk(bytes.to_vec()),
                    TunnelMessage::Credit(n) => Message::Credit(n),
                    TunnelMessage::End(end) => Message::End(end),
                    TunnelMessage::Stop(why) => Message::Stop(why),
                };
                if let Some(slot) = self.tunnels().get(&key) {
                    let _ = slot.tx.send(message);
                }
            }
            Err(e) => {
                add(&self.stats.rejected, 1);
                tracing::warn!(router = %from, error = %e, "malformed event from another router");
            }
        }
    }

    /// Starts answering request `item` from router `from`: the request is put into its
    /// responder's mailbox right now (one poll), and a task sends the response back.
    ///
    /// `token` is dropped once the response was queued: then the request counts as handled.
    fn request(self: &Arc<Self>, ctx: &Ctx, from: &Arc<str>, item: &[u8], token: Delivery) {
        let Ok(Item::Request { call, epoch, event, timeout_ms, payload }) = decode(item) else {
            return;
        };
        let timeout = Duration::from_millis(timeout_ms);
        let mut answer = match self.registry.get(event) {
            Some(r) if r.meta.kind == EventKind::Request => {
                (r.request_bytes)(ctx.clone(), payload, timeout)
            }
            _ => Box::pin(std::future::ready(Err(Failure::unavailable(format!(
                "router `{}` has no responder for `{event}`",
                self.id
            ))))),
        };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(result) = answer.as_mut().poll(&mut cx) {
            self.respond(from, call, epoch, result);
            return;
        }
        let (this, to) = (self.clone(), from.clone());
        tokio::spawn(async move {
            let result = answer.await;
            this.respond(&to, call, epoch, result);
            drop(token);
        });
    }

    /// Sends the response to call `call` of router `to` (never waits: responses may exceed
    /// the buffer rather than wait behind the events they answer).
    fn respond(&self, to: &Arc<str>, call: u64, epoch: u64, result: Result<Vec<u8>, Failure>) {
        let response =
            Item::Response { call, epoch, result: result.as_deref().map_err(Clone::clone) };
        match encode_item(&response) {
            Ok(item) => {
                let item = Bytes::from(item);
                let cost = item.len() + ENTRY_OVERHEAD;
                self.try_enqueue(std::slice::from_ref(to), &item, cost, true);
            }
            Err(failure) => tracing::warn!(%failure, "cannot encode a response for another router"),
        }
    }

    /// Acknowledges everything below `next` of router `from`'s stream: soon, together with
    /// the next data for the switch, or on its own after [`ACK_DELAY_MS`].
    fn ack(&self, from: &Arc<str>, epoch: u64, next: u64) {
        let due = self.now() + ACK_DELAY_MS;
        let mut out = self.outbox();
        // Handlers finish on several threads: never let an older acknowledgement replace a
        // newer one of the same run.
        let ack = out.acks.entry(from.clone()).or_insert((epoch, next));
        *ack = if ack.0 == epoch { (epoch, ack.1.max(next)) } else { (epoch, next) };
        out.acks_due.get_or_insert(due);
        drop(out);
        self.wake.notify_one();
    }

    /// Router `from` delivered everything below `next` of this router's stream to it.
    fn acked(&self, from: &str, next: u64) {
        let now = self.now();
        let mut out = self.outbox();
        let Some(stream) = out.streams.get_mut(from) else { return };
        let next = next.min(stream.next());
        if next <= stream.acked {
            return;
        }
        let mut freed = 0;
        while stream.acked < next {
            if let Some(e) = stream.entries.pop_front() {
                freed += e.item.len() + ENTRY_OVERHEAD;
            }
            stream.acked += 1;
        }
        stream.sent = stream.sent.max(stream.acked);
        stream.progress = now;
        out.bytes -= freed;
        drop(out);
        self.space.notify_waiters();
        self.wake.notify_one();
    }

    fn resend(&self, to: &str, from: u64) {
        let now = self.now();
        let mut out = self.outbox();
        if let Some(stream) = out.streams.get_mut(to) {
            let from = from.clamp(stream.acked, stream.next());
            if from < stream.sent {
                add(&self.stats.resent, stream.sent - from);
                stream.sent = from;
                stream.progress = now;
            }
        }
        drop(out);
        self.wake.notify_one();
    }

    // ----- writing ------------------------------------------------------------------------

    async fn write_loop(self: Arc<Self>, mut write: OwnedWriteHalf) -> Result<(), String> {
        let ping = frame(&ToSwitch::Ping).map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(WRITE_BATCH + 64 * 1024);
        let mut wrote = tokio::time::Instant::now();
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let acks_due = self.fill(&mut buf).map_err(|e| e.to_string())?;
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

    /// Frames everything that can go now: acknowledgements, resend requests, then data of
    /// each stream whose destination is up, within its in-flight window.
    ///
    /// Acknowledgements ride along with data, or go alone once due; returns when the pending
    /// ones are due (ms), if any are left.
    fn fill(&self, buf: &mut Vec<u8>) -> Result<Option<u64>, FrameError> {
        let mut out = self.outbox();
        for (to, epoch, from) in std::mem::take(&mut out.resends) {
            push_frame(buf, &ToSwitch::Resend { to: &to, epoch, from })?;
        }
        for (to, stream) in &mut out.streams {
            while stream.up
                && buf.len() < WRITE_BATCH
                && stream.sent < stream.next()
                && stream.sent - stream.acked < self.window
            {
                let start = usize::try_from(stream.sent - stream.acked).unwrap_or(usize::MAX);
                let room =
                    usize::try_from(stream.acked + self.window - stream.sent).unwrap_or(usize::MAX);
                let most = (stream.entries.len() - start).min(room).min(BATCH_ITEMS);
                // Large items (tunnel chunks) make smaller frames: one write batch at most,
                // and never less than one item.
                let (mut n, mut total) = (0, 0);
                for entry in stream.entries.range(start..start + most) {
                    if n > 0 && total + entry.item.len() > WRITE_BATCH {
                        break;
                    }
                    total += entry.item.len();
                    n += 1;
                }
                let items = stream.entries.range(start..start + n).map(|e| &e.item[..]);
                let (base, first) = (stream.acked, stream.sent);
                push_data(buf, to, self.epoch, base, first, n as u32, items, total)?;
                stream.sent += n as u64;
            }
        }
        let due = out.acks_due.is_some_and(|due| self.now() >= due);
        if !out.acks.is_empty() && (!buf.is_empty() || due || self.leaving.load(Ordering::Acquire))
        {
            for (to, (epoch, next)) in out.acks.drain() {
                push_frame(buf, &ToSwitch::Ack { to: &to, epoch, next })?;
            }
            out.acks_due = None;
        }
        Ok(out.acks_due)
    }

    // ----- sending ------------------------------------------------------------------------

    /// Keeps `item` for each router in `to` and wakes the writer; waits while the buffer is
    /// full (unless `force`: responses must not wait behind the events they answer).
    async fn enqueue(&self, to: &[Arc<str>], item: Bytes, force: bool) -> Result<(), Failure> {
        let cost = (item.len() + ENTRY_OVERHEAD) * to.len();
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return Err(Failure::unavailable(
                    "the router is stopping; not sent to other routers",
                ));
            }
            if self.try_enqueue(to, &item, cost, force) {
                // A sender that never has to wait still lets the writer (and everything else
                // on its thread) run now and then.
                tokio::task::coop::consume_budget().await;
                return Ok(());
            }
            // Full: wait for room, registered before looking again so no wake-up is missed.
            let room = self.space.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_enqueue(to, &item, cost, force) {
                return Ok(());
            }
            room.await;
        }
    }

    fn try_enqueue(&self, to: &[Arc<str>], item: &Bytes, cost: usize, force: bool) -> bool {
        let now = self.now();
        let mut out = self.outbox();
        if !force && out.bytes > 0 && out.bytes + cost > self.buffer {
            return false;
        }
        let mut sendable = false;
        for id in to {
            let stream = match out.streams.get_mut(id) {
                Some(s) => s,
                None => out.streams.entry(id.clone()).or_insert_with(|| Stream::new(false, now)),
            };
            stream.entries.push_back(Entry { item: item.clone(), at: now });
            sendable |= stream.up;
        }
        out.bytes += cost;
        drop(out);
        add(&self.stats.sent, to.len() as u64);
        // Kept for a router that is away: nothing for the writer to do until it is back.
        if sendable {
            self.wake.notify_one();
        }
        true
    }

    /// The routers with subscribers for notification `event`.
    fn subscribers(&self, event: &str) -> Option<Arc<[Arc<str>]>> {
        self.peers().subscribers.get(event).cloned()
    }

    /// One router that answers `event`: connected ones first, round-robin.
    fn responder(&self, event: &str) -> Option<Arc<str>> {
        let peers = self.peers();
        let all = peers.responders.get(event)?;
        let up: Vec<&Arc<str>> = all.iter().filter(|id| peers.is_up(id)).collect();
        let pick = self.round_robin.fetch_add(1, Ordering::Relaxed);
        if up.is_empty() {
            all.get(pick % all.len()).cloned()
        } else {
            Some(up[pick % up.len()].clone())
        }
    }

    /// Sends request `event` to router `to` and waits for its response.
    async fn call(
        &self,
        to: Arc<str>,
        event: &'static str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, Failure> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let item =
            encode_item(&Item::Request { call, epoch: self.epoch, event, timeout_ms, payload })?;
        let (tx, rx) = oneshot::channel();
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).insert(call, tx);
        // Forget the call however this future ends (answered, timed out, dropped).
        let _forget = Forget { calls: &self.calls, call };
        let answer = async {
            self.enqueue(std::slice::from_ref(&to), item.into(), false).await?;
            rx.await.unwrap_or_else(|_| Err(Failure::unavailable("the router is stopping")))
        };
        tokio::time::timeout(timeout, answer).await.unwrap_or_else(|_| {
            Err(Failure::timeout(format!(
                "no response to `{event}` from router `{to}` within {timeout:?}"
            )))
        })
    }

    // ----- housekeeping -------------------------------------------------------------------

    /// Every 100 ms: sends again what a connected router did not acknowledge for a while, and
    /// gives up events (and routers) beyond the outage window.
    async fn tick(self: Arc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = self.now();
            let mut expired: Vec<(Arc<str>, u64)> = Vec::new();
            let mut again = 0;
            {
                let mut out = self.outbox();
                let mut freed = 0;
                for (id, stream) in &mut out.streams {
                    let mut lost = 0;
                    while stream
                        .entries
                        .front()
                        .is_some_and(|e| now.saturating_sub(e.at) > self.outage_ms)
                    {
                        if let Some(e) = stream.entries.pop_front() {
                            freed += e.item.len() + ENTRY_OVERHEAD;
                        }
                        stream.acked += 1;
                        lost += 1;
                    }
                    stream.sent = stream.sent.max(stream.acked);
                    if lost > 0 {
                        expired.push((id.clone(), lost));
                    }
                    if stream.up
                        && stream.sent > stream.acked
                        && now.saturating_sub(stream.progress) > RETRANSMIT_MS
                    {
                        again += stream.rewind(now);
                    }
                }
                out.bytes -= freed;
            }
            if again > 0 {
                add(&self.stats.resent, again);
                self.wake.notify_one();
            }
            if !expired.is_empty() {
                self.space.notify_waiters();
            }
            for (id, lost) in expired {
                self.tunnels_lost(&id);
                add(&self.stats.lost, lost);
                tracing::warn!(
                    router = %id,
                    lost,
                    window = ?Duration::from_millis(self.outage_ms),
                    "events unacknowledged beyond the outage window were given up"
                );
            }
            let gone: Vec<Arc<str>> = self
                .peers()
                .known
                .iter()
                .filter(|(_, k)| !k.up && now.saturating_sub(k.down_since) > self.outage_ms)
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                self.forget(&id, "the router stayed away beyond the outage window");
            }
        }
    }

    /// The connector's lines of `GET /metrics`.
    fn render(&self, out: &mut String) {
        let status = self.status();
        let rejected = self.stats.rejected.load(Ordering::Relaxed);
        let restarts = self.stats.restarts.load(Ordering::Relaxed);
        let lines: [(&str, &str, &str, u64); 12] = [
            (
                "edri_switch_connected",
                "gauge",
                "1 while joined to the switch.",
                u64::from(status.connected),
            ),
            (
                "edri_switch_peers",
                "gauge",
                "Other routers connected to the switch.",
                status.peers.iter().filter(|p| p.connected).count() as u64,
            ),
            (
                "edri_switch_sent_total",
                "counter",
                "Events sent to other routers (one per destination).",
                status.sent,
            ),
            (
                "edri_switch_delivered_total",
                "counter",
                "Events from other routers delivered here.",
                status.delivered,
            ),
            (
                "edri_switch_resent_total",
                "counter",
                "Events sent again after a reconnection or a gap.",
                status.resent,
            ),
            (
                "edri_switch_duplicates_total",
                "counter",
                "Events received twice and dropped.",
                status.duplicates,
            ),
            (
                "edri_switch_redelivered_total",
                "counter",
                "Events sent again to a restarted router that had not acknowledged them (at most \
                 handled twice).",
                status.redelivered,
            ),
            (
                "edri_switch_lost_total",
                "counter",
                "Events given up: beyond the outage window, or for a router that left.",
                status.lost,
            ),
            (
                "edri_switch_rejected_total",
                "counter",
                "Events from other routers that could not be delivered (unknown or malformed).",
                rejected,
            ),
            (
                "edri_switch_buffered",
                "gauge",
                "Events waiting for an acknowledgement.",
                status.buffered,
            ),
            (
                "edri_switch_reconnects_total",
                "counter",
                "Connections to the switch lost.",
                status.reconnects,
            ),
            ("edri_switch_tunnels", "gauge", "Tunnels open with other routers.", status.tunnels),
        ];
        for (name, kind, help, value) in lines {
            crate::metrics::header(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        crate::metrics::header(
            out,
            "edri_switch_peer_restarts_total",
            "counter",
            "Other routers seen restarting (a new epoch).",
        );
        let _ = writeln!(out, "edri_switch_peer_restarts_total {restarts}");
    }
}

/// Events kept for connected routers.
fn unacknowledged(out: &Outbox) -> usize {
    out.streams.values().filter(|s| s.up).map(|s| s.entries.len()).sum()
}

/// Removes a call from the table when its future ends.
struct Forget<'a> {
    calls: &'a Mutex<HashMap<u64, Waiter>>,
    call: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.call);
    }
}

/// `<executable>-<pid>`.
fn default_id() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "edri".to_owned());
    format!("{exe}-{}", std::process::id())
}

/// A tunnel's way to the router at its other end (see [`Link`]).
struct TunnelLink {
    connector: Arc<Connector>,
    key: TunnelKey,
}

impl Link for TunnelLink {
    fn send(&self, message: Message) -> BoxFuture<Result<(), Failure>> {
        let key = &self.key;
        let message = match &message {
            Message::Verdict(result) => TunnelMessage::Verdict(result.clone()),
            Message::Chunk(bytes) => TunnelMessage::Chunk(bytes),
            Message::Credit(n) => TunnelMessage::Credit(*n),
            Message::End(end) => TunnelMessage::End(end.clone()),
            Message::Stop(why) => TunnelMessage::Stop(why.clone()),
        };
        let chunk = matches!(message, TunnelMessage::Chunk(_));
        let item = Item::Tunnel {
            tunnel: key.id,
            epoch: key.epoch,
            from_opener: key.opened_here,
            message,
        };
        let item = match encode_item(&item) {
            Ok(item) => Bytes::from(item),
            Err(failure) => return Box::pin(std::future::ready(Err(failure))),
        };
        let (connector, to) = (self.connector.clone(), key.peer.clone());
        if !chunk {
            // Credits and ends never wait behind the data they let through.
            let cost = item.len() + ENTRY_OVERHEAD;
            connector.try_enqueue(std::slice::from_ref(&to), &item, cost, true);
            return Box::pin(std::future::ready(Ok(())));
        }
        Box::pin(async move { connector.enqueue(std::slice::from_ref(&to), item, false).await })
    }
}

impl Drop for TunnelLink {
    fn drop(&mut self) {
        self.connector.tunnels().remove(&self.key);
    }
}

impl Uplink for Connector {
    fn open(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        window: usize,
        timeout: Duration,
    ) -> BoxFuture<Result<RemoteEnd, Failure>> {
        Box::pin(async move {
            let Some(to) = self.responder(event) else {
                return Err(Failure::unavailable(format!(
                    "no acceptor for tunnel `{event}` on this router or any router of the switch"
                )));
            };
            let peer_epoch = self.peers().known.get(&to).map_or(0, |k| k.info.epoch);
            let id = self.next_tunnel.fetch_add(1, Ordering::Relaxed);
            let key = TunnelKey { peer: to.clone(), epoch: self.epoch, id, opened_here: true };
            let RemoteEnd { mut incoming, link } = self.tunnel(key, peer_epoch);
            let item = encode_item(&Item::Open {
                tunnel: id,
                epoch: self.epoch,
                event,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                window: u32::try_from(window).unwrap_or(u32::MAX),
                payload: &payload,
            })?;
            let answer = async {
                self.enqueue(std::slice::from_ref(&to), item.into(), false).await?;
                loop {
                    match incoming.recv().await {
                        Some(Message::Verdict(result)) => return result,
                        Some(_) => {}
                        None => {
                            return Err(Failure::unavailable(format!(
                                "router `{to}` went away before answering tunnel `{event}`"
                            )));
                        }
                    }
                }
            };
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(())) => Ok(RemoteEnd { incoming, link }),
                Ok(Err(failure)) => Err(failure),
                Err(_) => {
                    let failure = Failure::timeout(format!(
                        "the acceptor of tunnel `{event}` on router `{to}` did not answer within \
                         {timeout:?}"
                    ));
                    // An acceptor that answers later finds both directions over.
                    let _ = link.send(Message::Stop(failure.clone())).await;
                    let _ = link.send(Message::End(Some(failure.clone()))).await;
                    Err(failure)
                }
            }
        })
    }

    fn wants(&self, event: &'static str, _local: bool) -> bool {
        self.peers().subscribers.contains_key(event)
    }

    fn notify(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
    ) -> BoxFuture<Result<(), Failure>> {
        Box::pin(async move {
            let Some(to) = self.subscribers(event) else { return Ok(()) };
            let item = encode_item(&Item::Notify { event, payload: &payload })?;
            self.enqueue(&to, item.into(), false).await
        })
    }

    fn try_notify(&self, event: &'static str, payload: &[u8]) -> Result<(), Failure> {
        let Some(to) = self.subscribers(event) else { return Ok(()) };
        let item = Bytes::from(encode_item(&Item::Notify { event, payload })?);
        let cost = (item.len() + ENTRY_OVERHEAD) * to.len();
        if self.try_enqueue(&to, &item, cost, false) {
            Ok(())
        } else {
            Err(Failure::unavailable("the buffer for other routers is full"))
        }
    }

    fn request(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<u8>, Failure>> {
        Box::pin(async move {
            let Some(to) = self.responder(event) else {
                return Err(Failure::unavailable(format!(
                    "no responder for request `{event}` on this router or any router of the switch"
                )));
            };
            self.call(to, event, &payload, timeout).await
        })
    }

    fn request_all(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Vec<Result<Vec<u8>, Failure>>> {
        Box::pin(async move {
            let to = self.peers().responders.get(event).cloned().unwrap_or_default();
            let payload: Arc<[u8]> = payload.into();
            // All calls are on their way before the first answer is awaited.
            let calls: Vec<_> = to
                .iter()
                .cloned()
                .map(|to| {
                    let (this, payload) = (self.clone(), payload.clone());
                    tokio::spawn(async move { this.call(to, event, &payload, timeout).await })
                })
                .collect();
            let mut out = Vec::with_capacity(calls.len());
            for call in calls {
                out.push(
                    call.await
                        .unwrap_or_else(|_| Err(Failure::unavailable("the router is stopping"))),
                );
            }
            out
        })
    }

    fn render_metrics(&self, out: &mut String) {
        self.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_tags_are_the_variant_indices() {
        let request = Item::Request { call: 1, epoch: 2, event: "E", timeout_ms: 3, payload: &[4] };
        let response = Item::Response { call: 1, epoch: 2, result: Ok(&[5]) };
        let notify = Item::Notify { event: "E", payload: &[6] };
        for (item, tag) in [(request, ITEM_REQUEST), (response, ITEM_RESPONSE), (notify, 0)] {
            let bytes = encode_item(&item).unwrap();
            let range = split_items(&bytes, 1).unwrap().remove(0);
            assert_eq!(bytes[range.start], tag, "{item:?}");
        }
    }
}
