//! A router's link to NATS: connects, sets up the stream, its consumer and the routers'
//! bucket at start, runs the publisher, the consumer and the responders, and is the router's
//! [`Uplink`].

use super::catalog::{self, HEARTBEAT_MS, Peers, Presence};
use super::metrics::{self, Stats, get};
use super::publish::{Outbox, Publisher};
use super::requests::Subjects;
use super::{Nats, NatsStatus};
use crate::error::StartError;
use crate::manager::ManagerDescriptor;
use crate::peering::CatalogEntry;
use crate::router::{BoxFuture, Outbound, Shared, Uplink};
use crate::tunnel::remote::RemoteEnd;
use crate::{Ctx, Failure};
use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{Client, connection::State};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a publish waits for JetStream's acknowledgement before it is sent again.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The link of one router.
pub(crate) struct Link {
    pub(super) config: Nats,
    pub(super) id: String,
    epoch: u64,
    pub(super) namespace: String,
    pub(super) subjects: Subjects,
    window_ms: u64,
    pub(super) in_flight: usize,
    catalog: Vec<CatalogEntry>,
    pub(super) subscribes: Vec<String>,
    pub(super) responds: Vec<String>,
    client: OnceLock<Client>,
    routers: OnceLock<kv::Store>,
    consumer: OnceLock<(stream::Stream, String)>,
    outbox: Outbox,
    pub(super) peers: Peers,
    pub(super) working: super::consume::Working,
    pub(super) stats: Arc<Stats>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    runtime: OnceLock<tokio::runtime::Handle>,
}

/// Letters, digits, `-` and `_`: valid in subjects, stream, consumer and key names.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Link {
    /// A link for a router running `managers`.
    pub(crate) fn new(
        config: Nats,
        managers: &[&'static ManagerDescriptor],
    ) -> Result<Self, StartError> {
        let refuse =
            |reason: String| StartError::Nats { servers: config.servers.join(","), reason };
        let id = config.id.clone().unwrap_or_else(crate::peering::default_id);
        if !valid_name(&id) {
            return Err(refuse(format!(
                "the router id `{id}` may hold letters, digits, - and _ only"
            )));
        }
        if !valid_name(&config.namespace) {
            return Err(refuse(format!(
                "the namespace `{}` may hold letters, digits, - and _ only",
                config.namespace
            )));
        }
        let registry: crate::router::FastMap<_, _> =
            crate::registry::events().map(|r| (r.meta.name, r)).collect();
        let catalog = crate::peering::catalog(&registry);
        let (subscribes, responds) = crate::peering::interests(managers);
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let subjects = Subjects::new(&config.namespace);
        Ok(Self {
            id,
            epoch,
            namespace: config.namespace.clone(),
            window_ms: u64::try_from(config.outage_window.as_millis()).unwrap_or(u64::MAX),
            in_flight: config.in_flight as usize,
            catalog,
            subscribes,
            responds,
            client: OnceLock::new(),
            routers: OnceLock::new(),
            consumer: OnceLock::new(),
            outbox: Outbox::new(config.buffer, config.max_event),
            peers: Peers::new(&subjects.direct),
            subjects,
            working: super::consume::Working::default(),
            stats: Arc::new(Stats::default()),
            tasks: Mutex::new(Vec::new()),
            runtime: OnceLock::new(),
            config,
        })
    }

    /// Connects, checks this router's catalog against the others', sets up what lives on the
    /// servers, and starts publishing, consuming and answering.
    ///
    /// # Errors
    /// When no server takes this router, or an event is defined differently elsewhere.
    pub(crate) async fn start(self: &Arc<Self>, shared: &Arc<Shared>) -> Result<(), StartError> {
        let _ = self.runtime.set(shared.runtime.clone());
        self.start_inner(shared).await.map_err(|reason| {
            self.abort();
            StartError::Nats { servers: self.config.servers.join(","), reason }
        })
    }

    async fn start_inner(self: &Arc<Self>, shared: &Arc<Shared>) -> Result<(), String> {
        let client = super::connect::connect(&self.config, &self.id, self.stats.clone()).await?;
        let _ = self.client.set(client.clone());
        let mut js = jetstream::new(client.clone());
        // A publish without an acknowledgement this long is published again (the stream
        // drops the copy by its id): a hole in a sender's order stays short.
        js.set_timeout(PUBLISH_TIMEOUT);
        let routers = self.routers_bucket(&js).await?;
        self.check_catalog(&routers).await?;
        let ctx = Ctx::new(shared.clone(), crate::ctx::Origin::Remote);
        let stream = self.stream(&js).await?;
        let (acks_tx, acks_rx) = tokio::sync::mpsc::unbounded_channel();
        self.spawn(Self::acknowledge(client.clone(), acks_rx));
        if let Some(consumer) = self.consumer(&stream).await? {
            self.spawn(self.clone().consume(consumer, ctx.clone(), acks_tx));
            self.spawn(self.clone().keep_working());
        }
        let _ = self.consumer.set((stream, self.id.clone()));
        self.serve_requests(&ctx).await?;
        let publisher = Publisher {
            js,
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            epoch: self.epoch,
            in_flight: self.in_flight,
            window: self.config.outage_window,
            max_event: self.config.max_event,
            stats: self.stats.clone(),
        };
        let this = self.clone();
        self.spawn(async move { publisher.run(&this.outbox).await });
        self.present(&routers).await?;
        let _ = self.routers.set(routers.clone());
        self.spawn(self.clone().heartbeat(routers.clone()));
        self.spawn(self.clone().watch(routers));
        Ok(())
    }

    /// The bucket of routers, created when missing.
    async fn routers_bucket(&self, js: &jetstream::Context) -> Result<kv::Store, String> {
        let bucket = format!("{}_routers", self.namespace);
        if let Ok(store) = js.get_key_value(&bucket).await {
            return Ok(store);
        }
        js.create_key_value(kv::Config {
            bucket: bucket.clone(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: self.config.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            format!("cannot create the key-value bucket `{bucket}` (is JetStream on?): {e}")
        })
    }

    /// Refuses to start when a router in the bucket defines an event differently; fills the
    /// peer table.
    async fn check_catalog(&self, routers: &kv::Store) -> Result<(), String> {
        let mut keys = routers.keys().await.map_err(|e| format!("cannot list the routers: {e}"))?;
        while let Some(key) = keys.next().await {
            let Ok(key) = key else { continue };
            if key == self.id {
                continue;
            }
            let Ok(Some(bytes)) = routers.get(&key).await else { continue };
            let Ok(presence) = crate::framing::decode::<Presence>(&bytes) else { continue };
            if catalog::wall_ms().saturating_sub(presence.at_ms) < self.window_ms
                && let Some(conflict) = catalog::conflict(&self.catalog, &key, &presence.catalog)
            {
                return Err(conflict);
            }
            self.peers.set(&key, Some(presence));
        }
        Ok(())
    }

    /// The notifications stream, created when missing; an existing one must take the
    /// namespace's subjects.
    async fn stream(&self, js: &jetstream::Context) -> Result<stream::Stream, String> {
        let name = format!("{}_notifications", self.namespace);
        let subjects = format!("{}>", self.subjects.notify);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![subjects.clone()],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            max_age: self.config.outage_window,
            duplicate_window: self.config.outage_window.min(Duration::from_secs(120)),
            num_replicas: self.config.replicas,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        };
        let mut stream = js
            .get_or_create_stream(config)
            .await
            .map_err(|e| format!("cannot create the stream `{name}` (is JetStream on?): {e}"))?;
        let info = stream.info().await.map_err(|e| format!("cannot read stream `{name}`: {e}"))?;
        if info.config.subjects != [subjects.clone()] {
            return Err(format!(
                "the stream `{name}` exists with subjects {:?}, not [{subjects:?}]",
                info.config.subjects
            ));
        }
        Ok(stream)
    }

    /// This router's durable consumer (none when it subscribes to nothing).
    async fn consumer(
        &self,
        stream: &stream::Stream,
    ) -> Result<Option<consumer::PullConsumer>, String> {
        if self.subscribes.is_empty() {
            let _ = stream.delete_consumer(&self.id).await;
            return Ok(None);
        }
        let filter_subject = match self.subscribes.as_slice() {
            [one] => format!("{}{one}", self.subjects.notify),
            _ => format!("{}>", self.subjects.notify),
        };
        let config = consumer::pull::Config {
            durable_name: Some(self.id.clone()),
            filter_subject: filter_subject.clone(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            max_ack_pending: i64::from(self.config.in_flight),
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        };
        if let Ok(existing) = stream.get_consumer::<consumer::pull::Config>(&self.id).await {
            if existing.cached_info().config.filter_subject == filter_subject {
                return Ok(Some(existing));
            }
            tracing::warn!(
                consumer = %self.id,
                "this router subscribes to other notifications than its previous run: its \
                 consumer is created again (what the previous run had not handled is dropped)"
            );
            let _ = stream.delete_consumer(&self.id).await;
        }
        stream
            .create_consumer(config)
            .await
            .map(Some)
            .map_err(|e| format!("cannot create the consumer `{}`: {e}", self.id))
    }

    /// What this router writes about itself.
    fn presence(&self) -> Presence {
        Presence {
            epoch: self.epoch,
            at_ms: catalog::wall_ms(),
            subscribes: self.subscribes.clone(),
            responds: self.responds.clone(),
            catalog: self.catalog.clone(),
        }
    }

    async fn present(&self, routers: &kv::Store) -> Result<(), String> {
        let bytes = postcard::to_allocvec(&self.presence()).map_err(|e| e.to_string())?;
        routers
            .put(&self.id, bytes.into())
            .await
            .map(drop)
            .map_err(|e| format!("cannot write this router's presence: {e}"))
    }

    /// Rewrites this router's presence every second.
    async fn heartbeat(self: Arc<Self>, routers: kv::Store) {
        let mut interval = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(error) = self.present(&routers).await {
                tracing::debug!(%error, "NATS presence");
            }
        }
    }

    /// Follows the other routers' presence.
    async fn watch(self: Arc<Self>, routers: kv::Store) {
        loop {
            let mut updates = match routers.watch_all().await {
                Ok(updates) => updates,
                Err(error) => {
                    tracing::debug!(%error, "cannot watch the routers' bucket; again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(Ok(entry)) = updates.next().await {
                if entry.key == self.id {
                    continue;
                }
                let presence = match entry.operation {
                    kv::Operation::Put => crate::framing::decode::<Presence>(&entry.value).ok(),
                    kv::Operation::Delete | kv::Operation::Purge => None,
                };
                if let Some(p) = &presence
                    && let Some(conflict) = catalog::conflict(&self.catalog, &entry.key, &p.catalog)
                {
                    tracing::error!("{conflict}");
                }
                self.peers.set(&entry.key, presence);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops: waits (until `deadline`) for what was published to be acknowledged by JetStream
    /// and for what was received to be handled and acknowledged; then leaves: its presence
    /// and its consumer are removed.
    pub(crate) async fn close(&self, deadline: tokio::time::Instant) {
        let flushed = async {
            while get(&self.stats.buffered) > 0 || get(&self.stats.pending_acks) > 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, flushed).await;
        let buffered = get(&self.stats.buffered);
        if buffered > 0 {
            tracing::warn!(buffered, "stopping with notifications JetStream has not acknowledged");
        }
        let _ = tokio::time::timeout_at(deadline, self.handled_by_peers()).await;
        let leave = async {
            if let Some(client) = self.client.get() {
                let _ = client.flush().await;
            }
            if let Some(routers) = self.routers.get() {
                let _ = routers.delete(&self.id).await;
            }
            if let Some((stream, name)) = self.consumer.get() {
                let _ = stream.delete_consumer(name).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), leave).await;
        self.abort();
    }

    /// Waits until the routers alive that subscribe to notifications handled what this router
    /// published (their consumers acknowledged it, or have nothing pending).
    async fn handled_by_peers(&self) {
        let last = get(&self.stats.last_sequence);
        let Some((stream, _)) = self.consumer.get() else { return };
        if last == 0 {
            return;
        }
        let peers: Vec<String> = self
            .peers
            .list(catalog::ALIVE_MS)
            .into_iter()
            .filter(|p| !p.subscribes.is_empty())
            .map(|p| p.id)
            .collect();
        for peer in peers {
            loop {
                let Ok(info) = stream.consumer_info(&peer).await else { break };
                let idle = info.num_pending == 0 && info.num_ack_pending == 0;
                if idle || info.ack_floor.stream_sequence >= last {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Ends every task of the link; waiting senders fail.
    pub(crate) fn abort(&self) {
        self.outbox.close();
        for task in self.tasks().drain(..) {
            task.abort();
        }
    }

    pub(crate) fn status(&self) -> NatsStatus {
        let stats = &self.stats;
        NatsStatus {
            id: self.id.clone(),
            epoch: self.epoch,
            connected: self.client.get().is_some_and(|c| c.connection_state() == State::Connected),
            peers: self.peers.list(self.window_ms),
            published: get(&stats.published),
            delivered: get(&stats.delivered),
            pending_acks: get(&stats.pending_acks),
            redelivered: get(&stats.redelivered),
            duplicates: get(&stats.duplicates),
            out_of_order: get(&stats.out_of_order),
            lost: get(&stats.lost),
            decode_errors: get(&stats.decode_errors),
            buffered: get(&stats.buffered),
            reconnects: get(&stats.reconnects),
            responses_unsent: get(&stats.responses_unsent),
        }
    }

    /// Adds the link's lines to the metrics text.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        metrics::render(&self.status(), &self.stats, out);
    }

    pub(super) fn client(&self) -> Result<&Client, String> {
        self.client.get().ok_or_else(|| "not connected to NATS yet".to_owned())
    }

    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = match self.runtime.get() {
            Some(runtime) => runtime.spawn(task),
            None => tokio::spawn(task),
        };
        self.tasks().push(handle);
    }

    fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Uplink for Link {
    fn wants(&self, event: Outbound, _local: bool) -> bool {
        self.peers.subscribed(event.name, self.window_ms)
    }

    fn try_notify(&self, event: Outbound, payload: &[u8]) -> Result<(), Failure> {
        self.outbox.try_push(event.name, payload, &self.stats)
    }

    /// Not optimized for NATS: every notification goes through [`notify`](Uplink::notify).
    fn offer(&self, _event: Outbound, _payload: &[u8]) -> Option<Result<(), Failure>> {
        None
    }

    fn notify(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
    ) -> BoxFuture<Result<(), Failure>> {
        Box::pin(async move { self.outbox.push(event.name, payload, &self.stats).await })
    }

    fn request(
        self: Arc<Self>,
        event: Outbound,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<u8>, Failure>> {
        Box::pin(async move { self.call(event.name, payload, timeout).await })
    }

    fn request_all(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<Vec<Result<Vec<u8>, Failure>>> {
        Box::pin(async move { self.call_all(event, payload, timeout).await })
    }

    fn open(
        self: Arc<Self>,
        event: &'static str,
        _payload: Vec<u8>,
        _window: usize,
        _timeout: Duration,
    ) -> BoxFuture<Result<RemoteEnd, Failure>> {
        Box::pin(std::future::ready(Err(Failure::unavailable(format!(
            "tunnel `{event}` has no acceptor on this router, and tunnels across routers need \
             the switch transport: NATS carries notifications and requests only"
        )))))
    }
}
