//! Several routers as one application, joined through NATS (feature `nats`).
//!
//! A router started with [`EdriBuilder::nats`](crate::EdriBuilder::nats) joins every other
//! router connected to the same NATS servers under the same [`Nats::namespace`]:
//!
//! - a **notification** is published once into a JetStream stream; every router with
//!   subscribers for it reads it through its own durable consumer, hands it to its managers,
//!   and acknowledges it once every local handler returned;
//! - a **request** without a responder on this router is a core NATS request to the next
//!   router that answers it (round-robin over the live ones), or to one router of a queue
//!   group when none is known; "no responders" is an immediate `Unavailable`, the requester's
//!   timeout holds, and a lost request is a `Timeout`;
//! - [`request_all`](crate::Ctx::request_all) gathers one answer per router that answers it;
//! - **tunnels** do not cross routers through NATS: opening one whose acceptor is on another
//!   router fails with `Unavailable` (use the switch, [`crate::switch`], for tunnels).
//!
//! # What lives on the NATS servers
//!
//! All names start with the namespace `ns` (default `edri`):
//!
//! | what | name | settings |
//! |---|---|---|
//! | notifications | stream `ns_notifications`, subjects `ns.n.<event>` | file storage, interest retention (a message stays until every router's consumer acknowledged it), `max_age` = outage window, `duplicate_window` = the outage window up to 2 min, `num_replicas` = [`Nats::replicas`] |
//! | one router's notifications | durable pull consumer `<id>` on that stream | explicit ack, `ack_wait` = [`Nats::ack_wait`] (5 s, `+WPI` while handled), `max_ack_pending` = [`Nats::in_flight`], filter `ns.n.<event>` for a router with one subscribed notification, else `ns.n.>` (the others are acknowledged unread), new messages only when created |
//! | requests | `ns.d.<router>.<event>` (one router), `ns.r.<event>` (queue group `ns`) | core NATS |
//! | `request_all` | `ns.a.<event>` | core NATS, every router answers on the caller's inbox |
//! | routers and their catalogs | key-value bucket `ns_routers`, key = router id | file storage, one value per router, rewritten every second |
//!
//! Streams, consumers and buckets are created at start when missing; an existing stream with
//! other subjects is a start error. NATS 2.10 or newer with JetStream is needed, and must be
//! reachable at start (unlike the switch); later outages are ridden out by reconnecting.
//!
//! # No loss, no duplicates
//!
//! Each message carries `Nats-Msg-Id: <router>/<epoch>/<event>/<seq>`: JetStream drops a
//! second publish of the same id within its duplicate window, so a publish that is retried
//! (its acknowledgement timed out, the connection dropped) is stored once. Publishes are
//! batched: the notifications of one event that wait for the publisher when it wakes share
//! one message (up to 256 of them and 64 KiB; `Edri-Count: n`, `<seq>` is the first one's;
//! a retry sends the same batch again), and pipelined: up to [`Nats::in_flight`] messages
//! wait for their acknowledgement at once; what is not acknowledged stays in memory (bounded
//! by [`Nats::buffer`]: senders then wait, as for a full mailbox) and is published again,
//! until the outage window runs out: then it is given up, counted in `lost`
//! (`edri_nats_lost_total`) and logged.
//!
//! A receiving router acknowledges a message once every handler it went to returned, so one
//! killed with events in its mailboxes gets them again from its durable consumer when it
//! comes back with the same [`Nats::id`] (at least once across its crash: counted in
//! `redelivered`). Within a run, redeliveries (an acknowledgement lost with the connection)
//! are dropped by `(origin, epoch, event, seq)` and counted in `duplicates`.
//!
//! Order: each sender's notifications of one event reach each router in the order they were
//! sent. Each message carries the sender's floor (below it, everything is in the stream
//! before it, so a hole below it was taken by a previous run of this router); a message after
//! a hole (a publish sent again, a delivery lost with a link) waits, unacknowledged, until the
//! hole fills. A delivery lost with a link comes again after `ack_wait`; meanwhile the held
//! messages may fill the consumer's window ([`Nats::in_flight`]): NATS then pauses new
//! deliveries but still sends the lost one again, and the order holds (a gap in the consumer's
//! delivery sequence also stops the floors from skipping holes until then). A hole that has
//! not filled after `ack_wait` + 5 s is given up on: the later ones are delivered, the missing
//! one comes late, out of order, never lost; counted in `out_of_order`
//! (`edri_nats_out_of_order_total`) and logged at warn.
//!
//! # Fingerprints
//!
//! Each router writes its catalog (name, kind and fingerprint of every non-local event) into
//! the `ns_routers` bucket. A router that defines an event differently from a router already
//! there fails to start, with an error naming the event.
//!
//! ```no_run
//! # // `edri::nats` is there with `edri`'s `nats` feature, which this crate's tests leave off.
//! # use edri_runtime::nats;
//! # async fn f() -> edri::Result<()> {
//! use edri::Edri;
//! use nats::Nats; // edri::nats::Nats
//! let running = Edri::builder()
//!     .nats(Nats::new("nats://127.0.0.1:4222").id("billing").token("s3cret"))
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```

mod attach;
mod catalog;
mod connect;
mod consume;
mod link;
mod metrics;
mod publish;
mod requests;

pub(crate) use link::Link;

use std::path::PathBuf;
use std::time::Duration;

/// The default subject prefix.
pub const DEFAULT_NAMESPACE: &str = "edri";
/// How long an unacknowledged notification is kept by its sender and by the stream.
pub const DEFAULT_OUTAGE_WINDOW: Duration = Duration::from_secs(60);
/// How many bytes of unacknowledged publishes a router keeps before senders wait.
pub const DEFAULT_BUFFER: usize = 64 << 20;
/// How many publishes wait for their acknowledgement at once, and how many messages a
/// router's consumer holds unacknowledged.
pub const DEFAULT_IN_FLIGHT: u32 = 4_096;
/// How long JetStream waits for an acknowledgement before it delivers a message again (a
/// message being handled is reported in progress every third of it, and not delivered again).
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(5);
/// The largest event (serialized) a router sends or accepts by default: NATS's own default
/// `max_payload` (1 MiB), which bounds it too.
pub const DEFAULT_MAX_EVENT: usize = 1 << 20;

/// How a router joins NATS: [`EdriBuilder::nats`](crate::EdriBuilder::nats).
///
/// # Examples
///
/// ```no_run
/// # // `edri::nats` is there with `edri`'s `nats` feature, which this crate's tests leave off.
/// # use edri_runtime::nats;
/// # async fn f(secret: &str) -> edri::Result<()> {
/// use nats::Nats; // edri::nats::Nats
/// use std::time::Duration;
/// let nats = Nats::new("nats://10.0.0.5:4222")
///     .server("nats://10.0.0.6:4222") // a cluster
///     .token(secret)
///     .namespace("shop") // subject prefix: applications share one NATS
///     .id("billing") // stable: its durable consumer survives restarts
///     .outage_window(Duration::from_secs(300))
///     .replicas(3);
/// edri::Edri::builder().nats(nats).run().await
/// # }
/// ```
#[derive(Clone)]
pub struct Nats {
    pub(crate) servers: Vec<String>,
    pub(crate) auth: Auth,
    pub(crate) tls: Tls,
    pub(crate) namespace: String,
    pub(crate) id: Option<String>,
    pub(crate) outage_window: Duration,
    pub(crate) buffer: usize,
    pub(crate) in_flight: u32,
    pub(crate) ack_wait: Duration,
    pub(crate) replicas: usize,
    pub(crate) max_event: usize,
}

/// How a router proves who it is to NATS.
#[derive(Clone, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    UserPassword(String, String),
    Token(String),
    CredentialsFile(PathBuf),
    NKey(String),
}

/// TLS towards NATS (rustls; `tls://` server URLs require it too).
#[derive(Clone, Default)]
pub(crate) struct Tls {
    pub(crate) required: bool,
    pub(crate) roots: Vec<PathBuf>,
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::UserPassword(..) => "user and password",
            Auth::Token(_) => "token",
            Auth::CredentialsFile(_) => "credentials file",
            Auth::NKey(_) => "nkey",
        };
        f.debug_struct("Nats")
            .field("servers", &self.servers)
            .field("auth", &auth)
            .field("tls", &self.tls.required)
            .field("namespace", &self.namespace)
            .field("id", &self.id)
            .field("outage_window", &self.outage_window)
            .field("buffer", &self.buffer)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Nats {
    /// The NATS server at `url` (`nats://host:4222`, `tls://host:4222` or `host:4222`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            servers: vec![url.into()],
            auth: Auth::None,
            tls: Tls::default(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            id: None,
            outage_window: DEFAULT_OUTAGE_WINDOW,
            buffer: DEFAULT_BUFFER,
            in_flight: DEFAULT_IN_FLIGHT,
            ack_wait: DEFAULT_ACK_WAIT,
            replicas: 1,
            max_event: DEFAULT_MAX_EVENT,
        }
    }

    /// One more server of the cluster: the client connects to any and fails over.
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.servers.push(url.into());
        self
    }

    /// Authenticates with a user name and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticates with a credentials file (a user JWT and its NKey seed, `.creds`).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredentialsFile(path.into());
        self
    }

    /// Authenticates with an NKey seed (`SU...`).
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::NKey(seed.into());
        self
    }

    /// Requires TLS (rustls with `ring`; the system's root certificates are trusted).
    pub fn require_tls(mut self, required: bool) -> Self {
        self.tls.required = required;
        self
    }

    /// Trusts the CA certificates of PEM file `path` too (and implies TLS).
    pub fn root_certificates(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.roots.push(path.into());
        self.tls.required = true;
        self
    }

    /// Presents a client certificate (PEM files; implies TLS).
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client = Some((cert.into(), key.into()));
        self.tls.required = true;
        self
    }

    /// The prefix of every subject, stream and bucket name (default `edri`): several EDRI
    /// applications share one NATS under different namespaces. Letters, digits, `-` and `_`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// This router's id among the routers of the namespace, and the name of its durable
    /// consumer. Give a stable one (`"billing"`) to a router that may restart: what it had not
    /// handled waits for it in the stream. Default: `<executable>-<pid>`. Letters, digits, `-`
    /// and `_`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// How long a notification is kept unacknowledged, by its sender (retrying its publish)
    /// and by the stream (`max_age`); default 60 s.
    pub fn outage_window(mut self, window: Duration) -> Self {
        self.outage_window = window.max(Duration::from_secs(1));
        self
    }

    /// How many bytes of publishes not yet acknowledged by JetStream are kept (default 64 MiB);
    /// beyond it, senders wait.
    pub fn buffer(mut self, bytes: usize) -> Self {
        self.buffer = bytes.max(1);
        self
    }

    /// How many publishes wait for their acknowledgement at once, and how many messages this
    /// router's consumer holds unacknowledged (default 4 096).
    pub fn in_flight(mut self, events: u32) -> Self {
        self.in_flight = events.max(1);
        self
    }

    /// How long JetStream waits for this router's acknowledgement before delivering a message
    /// again (default 5 s). Messages being handled are reported in progress (`+WPI`) every
    /// third of it, so a slow handler does not get its message again; a message lost on its
    /// way to this router (a cut link, a failed server) comes again after it, and the messages
    /// after it wait for it (up to `ack_wait` + 5 s) to keep each sender's order.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait.max(Duration::from_secs(1));
        self
    }

    /// How many servers of a cluster hold the stream and the bucket (default 1) when this
    /// router creates them.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }
}

impl Nats {
    /// The largest event (serialized) this router sends or accepts (default 1 MiB): a larger
    /// one is refused when sent (`Invalid`) and dropped (counted as a decode error) when
    /// received. The server's `max_payload` bounds it too.
    pub fn max_event(mut self, bytes: usize) -> Self {
        self.max_event = bytes.max(1);
        self
    }
}

impl From<&str> for Nats {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for Nats {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

/// What a router knows about NATS and the other routers: [`Running::nats`](crate::Running::nats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsStatus {
    /// This router's id.
    pub id: String,
    /// This run of it (microseconds since the Unix epoch at start).
    pub epoch: u64,
    /// Whether the client is connected to a NATS server right now.
    pub connected: bool,
    /// The other routers of the namespace, seen within the outage window.
    pub peers: Vec<NatsPeer>,
    /// Notifications published and acknowledged by JetStream.
    pub published: u64,
    /// Notifications from other routers delivered here.
    pub delivered: u64,
    /// Notifications handed to handlers here and not acknowledged yet.
    pub pending_acks: u64,
    /// Messages JetStream delivered more than once (an acknowledgement that did not arrive in
    /// time, or a previous run of this router that stopped before acknowledging).
    pub redelivered: u64,
    /// Messages received twice in this run and dropped.
    pub duplicates: u64,
    /// Notifications delivered here after later ones of the same sender and event: the
    /// hole they left did not fill within `ack_wait` + 5 s (logged at warn).
    pub out_of_order: u64,
    /// Notifications given up: not acknowledged by JetStream within the outage window.
    pub lost: u64,
    /// Messages on this namespace's subjects that could not be decoded (dropped, logged).
    pub decode_errors: u64,
    /// Publishes waiting for their acknowledgement by JetStream.
    pub buffered: u64,
    /// Connections to NATS lost.
    pub reconnects: u64,
    /// Answers to other routers' requests that could not be sent (not connected, or the
    /// client refused them): each such requester gets `Timeout` (logged at warn).
    pub responses_unsent: u64,
}

/// Another router, as [`NatsStatus`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsPeer {
    /// Its id.
    pub id: String,
    /// Whether it wrote its presence within the last few seconds.
    pub connected: bool,
    /// The notifications it has subscribers for.
    pub subscribes: Vec<String>,
    /// The requests it answers.
    pub responds: Vec<String>,
}
