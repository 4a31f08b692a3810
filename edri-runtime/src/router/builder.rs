//! `Edri::builder()`: choosing the managers, starting them, stopping them.

use super::attach::Attachment;
use super::{ManagerSlot, Shared, table};
use super::{Running, StopSignals};
use crate::Ctx;
use crate::builtin::Started;
use crate::ctx::Origin;
use crate::envelope::Envelope;
use crate::error::{Error, StartError};
use crate::health::Health;
use crate::manager::ManagerStats;
use crate::manager::{ErasedManager, Manager, ManagerDescriptor, Mode};
use crate::mode::process::Pool;
use crate::scheduler::{Job, SchedulerManager};
use crate::store::{Store, StoreManager};
use std::any::TypeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

/// Mailbox capacity of a manager that does not set `capacity = N`.
pub(crate) const DEFAULT_CAPACITY: usize = 1024;
/// Timeout of a request that does not set its own.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `shutdown` waits for mailboxes to drain.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The entry point: `Edri::builder()`.
///
/// # Examples
///
/// ```no_run
/// use edri::Edri;
///
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     Edri::builder().run().await // every registered manager, until Ctrl-C or SIGTERM
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Edri;

impl Edri {
    /// A builder that starts every registered manager whose type implements `Default` and is
    /// not `#[manager(manual)]`.
    pub fn builder() -> EdriBuilder {
        EdriBuilder {
            explicit: Vec::new(),
            without: Vec::new(),
            only_explicit: false,
            timeout: DEFAULT_TIMEOUT,
            worker_timeout: None,
            store: None,
            jobs: Vec::new(),
            capacity: DEFAULT_CAPACITY,
            grace: DEFAULT_GRACE,
            metrics: false,
            user_metrics: None,
            tunnel_window: crate::tunnel::DEFAULT_WINDOW,
            attachments: Vec::new(),
        }
    }
}

/// Configures and starts a router. See [`Edri::builder`].
///
/// # Examples
///
/// ```no_run
/// use edri::{Edri, Job, Store};
/// use std::time::Duration;
/// # use edri::prelude::*;
/// # #[event(notification)] #[derive(Default)] pub struct Backup;
///
/// # #[cfg(feature = "api")]
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     Edri::builder()
///         .store(Store::durable("data.redb")?) // default: in memory
///         .request_timeout(Duration::from_secs(5)) // default 30 s
///         .mailbox_capacity(256) // default 1024
///         .grace_period(Duration::from_secs(3)) // for draining at shutdown; default 10 s
///         .job(Job::every(Duration::from_secs(3600), Backup).named("backup"))
///         .api("127.0.0.1:8080") // REST, WebSocket, health, metrics
///         .run()
///         .await
/// }
/// # #[cfg(not(feature = "api"))] fn main() {}
/// ```
#[must_use = "a builder does nothing until `.start()` or `.run()`"]
pub struct EdriBuilder {
    explicit: Vec<Box<dyn ErasedManager>>,
    without: Vec<TypeId>,
    only_explicit: bool,
    timeout: Duration,
    worker_timeout: Option<Duration>,
    store: Option<Store>,
    jobs: Vec<Job>,
    capacity: usize,
    grace: Duration,
    metrics: bool,
    user_metrics: Option<Arc<prometheus_client::registry::Registry>>,
    tunnel_window: usize,
    attachments: Vec<Box<dyn Attachment>>,
}

impl std::fmt::Debug for EdriBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdriBuilder")
            .field(
                "explicit",
                &self.explicit.iter().map(|m| m.descriptor().name).collect::<Vec<_>>(),
            )
            .field("only_explicit", &self.only_explicit)
            .field("timeout", &self.timeout)
            .field("capacity", &self.capacity)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl EdriBuilder {
    /// Runs this instance of a manager, replacing the default instance of its type (and an
    /// earlier `.manager(..)` of the same type). Needed for managers without `Default` and for
    /// `#[manager(manual)]` ones.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use edri::prelude::*;
    /// # #[event(notification)] pub struct Tick;
    /// /// No `Default`: started only when given.
    /// pub struct Greeter { greeting: String }
    ///
    /// #[manager]
    /// impl Greeter {
    ///     #[solve]
    ///     fn tick(&mut self, _ev: &Tick) { println!("{}", self.greeting); }
    /// }
    ///
    /// # async fn f() -> edri::Result<()> {
    /// let running = Edri::builder().manager(Greeter { greeting: "hi".into() }).start().await?;
    /// # running.shutdown().await }
    /// ```
    pub fn manager<M: Manager>(mut self, manager: M) -> Self {
        let id = TypeId::of::<M>();
        self.explicit.retain(|m| (m.descriptor().type_id)() != id);
        self.without.retain(|w| *w != id);
        self.explicit.push(Box::new(manager));
        self
    }

    /// Does not start manager `M` (for tests that run several routers in one process).
    pub fn without<M: Manager>(mut self) -> Self {
        let id = TypeId::of::<M>();
        self.explicit.retain(|m| (m.descriptor().type_id)() != id);
        self.without.push(id);
        self
    }

    /// Starts only the managers given with [`manager`](Self::manager).
    ///
    /// # Examples
    ///
    /// Two routers in one test process, each with the managers it is given (plus the
    /// built-in ones):
    ///
    /// ```no_run
    /// # use edri::prelude::*;
    /// # #[derive(Default)] pub struct Billing;
    /// # #[derive(Default)] pub struct Shipping;
    /// # #[event(notification)] pub struct Tick;
    /// # #[manager] impl Billing { #[solve] fn t(&mut self, _e: &Tick) {} }
    /// # #[manager] impl Shipping { #[solve] fn t(&mut self, _e: &Tick) {} }
    /// # async fn f() -> edri::Result<()> {
    /// let billing = Edri::builder().only_explicit().manager(Billing::default()).start().await?;
    /// let shipping = Edri::builder().without::<Billing>().start().await?;
    /// # Ok(()) }
    /// ```
    pub fn only_explicit(mut self) -> Self {
        self.only_explicit = true;
        self
    }

    /// The timeout of requests that do not set their own (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The window of tunnels opened without [`Open::window`](crate::Open::window): items each
    /// side may have in flight, sent and not yet taken by the other side (default 16).
    pub fn tunnel_window(mut self, items: usize) -> Self {
        self.tunnel_window = items.max(1);
        self
    }

    /// How long one call of a process-mode handler may run before its worker is killed and
    /// the call fails with `Timeout` (default: the request timeout).
    pub fn worker_timeout(mut self, timeout: Duration) -> Self {
        self.worker_timeout = Some(timeout);
        self
    }

    /// Where the built-in store keeps its data (default: [`Store::memory`]).
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// A job the scheduler runs from the start (it replaces a job of the same name kept in a
    /// durable store). Checked at start: an invalid job is a start error.
    pub fn job(mut self, job: Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// The mailbox capacity of managers that do not set `capacity = N` (default 1024).
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "mailbox capacity must be at least 1");
        self.capacity = capacity;
        self
    }

    /// Counts and times events for [`Running::metrics`] (always on with the API broker).
    /// Costs two clock reads and three relaxed atomic adds per handled event, all in the
    /// task that handles it. (Sends are counted whatever this says: one relaxed atomic add
    /// per send, for [`Running::topology`] and `edri_events_sent_total`.)
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// The application's own metrics, served after EDRI's in [`Running::metrics`] and
    /// `GET /metrics`: counters, gauges and histograms of
    /// [`prometheus_client`](crate::prometheus_client) (re-exported as
    /// `edri::prometheus_client`), registered in `registry` before the router starts and
    /// updated from anywhere (they are `Clone` handles to shared atomics).
    ///
    /// ```
    /// use edri::prometheus_client::{metrics::counter::Counter, registry::Registry};
    /// let orders = Counter::<u64>::default();
    /// let mut registry = Registry::default();
    /// registry.register("shop_orders", "Orders placed", orders.clone());
    /// let builder = edri::Edri::builder().metrics_registry(registry);
    /// orders.inc(); // in a handler: `shop_orders_total 1` in `GET /metrics`
    /// ```
    pub fn metrics_registry(mut self, registry: prometheus_client::registry::Registry) -> Self {
        self.user_metrics = Some(Arc::new(registry));
        self
    }

    /// Attaches `attachment` (the API broker, a transport), replacing one of the same type.
    #[cfg_attr(
        not(any(feature = "api", feature = "switch", feature = "nats")),
        expect(dead_code, reason = "only the API broker and the transports are attachments")
    )]
    pub(crate) fn attach<A: Attachment>(mut self, attachment: A) -> Self {
        self.attachments.retain(|a| a.as_any().type_id() != std::any::TypeId::of::<A>());
        self.attachments.push(Box::new(attachment));
        self
    }

    /// How long [`Running::shutdown`] lets mailboxes drain (default 10 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts every manager and returns a handle. Must be called inside a tokio runtime.
    ///
    /// Every manager is subscribed before any event flows; then each receives
    /// [`Started`] as the first event in its mailbox.
    ///
    /// # Errors
    /// [`StartError`] for an unusable configuration: no managers, two responders for one
    /// request, two events or managers with one name, a manager that cannot be constructed;
    /// with a switch, a missing secret or the switch's refusal (wrong secret, an event defined
    /// differently elsewhere). An unreachable switch is not an error: the router starts and
    /// keeps trying to join.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use edri::prelude::*;
    /// # #[event(request)] pub struct Divide { pub a: f64, pub b: f64, #[response] pub quotient: f64 }
    /// # async fn f() -> edri::Result<()> {
    /// let running = Edri::builder().start().await?;
    /// let half = running.ctx().request(Divide { a: 1.0, b: 2.0 }).await?;
    /// running.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(mut self) -> Result<Running, Error> {
        if crate::mode::process::is_worker() {
            return Err(
                StartError::StartedAsWorker { env: crate::mode::process::WORKER_ENV }.into()
            );
        }
        crate::logging::at_start();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        table::check_event_names()?;
        for job in &self.jobs {
            job.validate().map_err(|failure| StartError::InvalidJob { failure })?;
        }
        let (timeout, capacity, grace) = (self.timeout, self.capacity, self.grace);
        let worker_timeout = self.worker_timeout.unwrap_or(timeout);
        let tunnel_window = self.tunnel_window;
        let user_metrics = self.user_metrics.take();
        let mut attachments = std::mem::take(&mut self.attachments);
        for attachment in &mut attachments {
            attachment.prepare().await?;
        }
        let metrics = self.metrics || attachments.iter().any(|a| a.counts_calls());
        let mut instances = self.instances()?;
        let before = instances.len();
        instances.extend(attachments.iter_mut().flat_map(|a| a.managers()));
        if instances.len() > before {
            instances.sort_by_key(|m| (m.descriptor().name, m.descriptor().location));
        }
        check_manager_names(&instances)?;
        let descriptors: Vec<_> = instances.iter().map(|m| m.descriptor()).collect();
        let mut uplink = None;
        for attachment in &mut attachments {
            if let Some(link) = attachment.uplink(&descriptors)? {
                uplink = Some(link);
            }
        }
        let attachments: Vec<Arc<dyn Attachment>> =
            attachments.into_iter().map(Arc::from).collect();

        let mut mailboxes = Vec::with_capacity(instances.len());
        let mut receivers = Vec::with_capacity(instances.len());
        for m in &instances {
            let d = m.descriptor();
            let (tx, rx) = crate::mailbox::channel(d.options.capacity.unwrap_or(capacity).max(1));
            mailboxes.push((d, tx));
            receivers.push(rx);
        }
        let routes = table::build(&mailboxes)?;
        let managers = mailboxes
            .into_iter()
            .map(|(descriptor, mailbox)| ManagerSlot {
                descriptor,
                mailbox,
                limits: descriptor
                    .handlers
                    .iter()
                    .map(|h| {
                        (h.mode != Mode::Inline).then(|| Arc::new(Semaphore::new(h.limit.max(1))))
                    })
                    .collect(),
                pools: descriptor
                    .handlers
                    .iter()
                    .map(|h| {
                        (h.mode == Mode::Process)
                            .then(|| Arc::new(Pool::new(descriptor.name, h.method)))
                    })
                    .collect(),
                threads: descriptor
                    .handlers
                    .iter()
                    .map(|h| (h.mode == Mode::Thread).then(Arc::default))
                    .collect(),
                stats: ManagerStats::default(),
                handler_stats: descriptor.handlers.iter().map(|_| Default::default()).collect(),
            })
            .collect();
        let shared = Arc::new(Shared {
            routes,
            managers,
            default_timeout: timeout,
            worker_timeout,
            runtime: runtime.clone(),
            stopping: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            shutdown_requested: Notify::new(),
            started: std::time::Instant::now(),
            uplink,
            attachments: attachments.iter().map(Arc::downgrade).collect(),
            metrics,
            user_metrics,
            tunnel_window,
            senders: Default::default(),
        });
        super::senders::sample(&shared);

        // `Started` goes first into every subscriber's mailbox, before any task runs, so it is
        // the first event each manager sees and nobody misses what others send from it.
        if let Some(route) = shared.route_of_send(TypeId::of::<Started>(), Origin::Router) {
            let started: Arc<dyn std::any::Any + Send + Sync> = Arc::new(Started);
            for target in &route.subscribers {
                target
                    .mailbox
                    .try_send(Envelope::shared(target.handler, 0, started.clone()))
                    .map_err(|_| StartError::TooMany("mailbox full at start"))?;
            }
        }

        let tasks: Vec<JoinHandle<()>> = instances
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(i, (manager, rx))| {
                let ctx = Ctx::new(shared.clone(), Origin::Manager(i as u32));
                manager.spawn(rx, ctx, &runtime)
            })
            .collect();
        let names: Vec<&str> = shared.managers.iter().map(|m| m.descriptor.name).collect();
        tracing::info!(managers = ?names, "edri router started");
        let ctx = Ctx::new(shared.clone(), Origin::Outside);
        for (i, attachment) in attachments.iter().enumerate() {
            if let Err(e) = attachment.start(&ctx).await {
                shared.stopping.store(true, Ordering::Release);
                attachments[..i].iter().for_each(|a| a.abort());
                for task in &tasks {
                    task.abort();
                }
                return Err(e);
            }
        }
        Ok(Running::new(ctx, tasks, grace, attachments))
    }

    /// Starts, then runs until Ctrl-C, SIGTERM or [`Ctx::shutdown`], then shuts down
    /// gracefully.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// #[edri::main]
    /// async fn main() -> edri::Result<()> {
    ///     edri::Edri::builder().run().await
    /// }
    /// ```
    pub async fn run(self) -> Result<(), Error> {
        // Listen before anything starts, so that a signal during start-up stops gracefully too.
        let signals = StopSignals::listen();
        let running = self.start().await?;
        running.wait(signals).await;
        running.shutdown().await
    }

    /// The instances to run, sorted by name (inventory order is unspecified).
    fn instances(mut self) -> Result<Vec<Box<dyn ErasedManager>>, StartError> {
        let mut out: Vec<Box<dyn ErasedManager>> = Vec::new();
        if !self.only_explicit {
            let mut registered: Vec<&'static ManagerDescriptor> =
                crate::registry::managers().collect();
            registered.sort_by_key(|d| (d.name, d.location));
            for d in registered {
                let id = (d.type_id)();
                if d.options.manual
                    || self.without.contains(&id)
                    || self.explicit.iter().any(|m| (m.descriptor().type_id)() == id)
                {
                    continue;
                }
                match (d.make_default)() {
                    Some(m) => out.push(m),
                    None => {
                        return Err(StartError::NoInstance { manager: d.name, at: d.location });
                    }
                }
            }
        }
        out.extend(self.explicit);
        if out.is_empty() {
            return Err(StartError::NoManagers { registered: crate::registry::managers().count() });
        }
        // Every router answers `HealthCheck` and runs a store, unless told otherwise.
        let present = |out: &[Box<dyn ErasedManager>], id: TypeId| {
            self.without.contains(&id) || out.iter().any(|m| (m.descriptor().type_id)() == id)
        };
        if !present(&out, TypeId::of::<Health>()) {
            out.push(Box::new(Health));
        }
        if !present(&out, TypeId::of::<StoreManager>()) {
            let store = self.store.take().unwrap_or_else(Store::memory);
            out.push(Box::new(StoreManager::new(store)));
        }
        if !present(&out, TypeId::of::<SchedulerManager>()) {
            out.push(Box::new(SchedulerManager::new(std::mem::take(&mut self.jobs))));
        }
        out.sort_by_key(|m| (m.descriptor().name, m.descriptor().location));
        Ok(out)
    }
}

fn check_manager_names(instances: &[Box<dyn ErasedManager>]) -> Result<(), StartError> {
    for pair in instances.windows(2) {
        let (a, b) = (pair[0].descriptor(), pair[1].descriptor());
        if a.name == b.name {
            return Err(StartError::DuplicateManagerName {
                name: a.name,
                first_at: a.location,
                second_at: b.location,
            });
        }
    }
    Ok(())
}
