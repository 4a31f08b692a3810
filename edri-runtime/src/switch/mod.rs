//! Several routers as one application: the switch and each router's connector.
//!
//! `edri-switch` (or [`Server`] in-process) is a small TCP hub. A router started with
//! [`EdriBuilder::switch`](crate::EdriBuilder::switch) keeps one connection to it and from then
//! on behaves as part of one application with every other router joined to the same switch:
//!
//! - a **notification** reaches the subscribers of this router and of every other router that
//!   has subscribers for it;
//! - a **request** goes to this router's responder if there is one, else to one other router
//!   that answers it (round-robin), and its response comes back to the requester only;
//!   no responder anywhere is an immediate `Unavailable`; timeouts hold across routers;
//! - [`request_all`](crate::Ctx::request_all) gathers the answers of every router's responder.
//!
//! # No loss, no duplicates
//!
//! Every event a router sends to another router is numbered in the stream from this router
//! (and this run of it, its *epoch*) to that router, and kept until that router acknowledges
//! that it **handled** it: every local handler it went to returned (a request: its response was
//! sent). An event waiting in a mailbox is not acknowledged yet. When the connection drops (or the switch
//! dies), the connector reconnects with backoff (10 ms, then doubling up to 2 s) and sends
//! again whatever is unacknowledged; the receiver drops what it has already delivered by
//! (origin, epoch, sequence) and keeps each sender's order. The switch itself stores nothing,
//! so killing it loses nothing.
//!
//! What is kept is bounded twice: by memory ([`Switch::buffer`], 64 MiB by default: senders
//! then wait, as they do for a full mailbox) and by time ([`Switch::outage_window`], 60 s by
//! default): an event still unacknowledged after the window is given up, counted in
//! `edri_switch_lost_total` and logged — never silently. Events a router had not sent yet
//! when it crashed are lost with it; the receivers log the restart (a new epoch).
//!
//! A router that crashes (even `kill -9`) with events in its mailboxes loses none of them:
//! they were not acknowledged, so the senders send them again to its next run (same
//! [`Switch::id`]) — provided it comes back within the outage window. An event whose handler
//! returned just before the crash, before its acknowledgement left, is handled again by the
//! next run: delivery is exactly once within a run, at least once across a crash of the
//! receiver. The sender counts those events in [`SwitchStatus::redelivered`]
//! (`edri_switch_redelivered_total`).
//!
//! Acknowledgements are cumulative: an event that takes long to handle holds back the
//! acknowledgement of the events after it, and the sender transmits at most
//! [`Switch::in_flight`] events beyond it before it waits.
//!
//! # Security
//!
//! Routers and the switch share a secret ([`Switch::secret`], or `EDRI_SWITCH_SECRET`). Both
//! sides prove they know it (HMAC-SHA256 challenge-response) before anything but the small
//! handshake messages is decoded; a client with another secret is dropped.
//!
//! # Catalog
//!
//! Each router sends the name, kind and fingerprint of every event its binary declares
//! (except `local` ones). A router defining an event of the same name differently from a
//! router already joined is refused, with an error naming the event: its `start()` fails.
//! The catalog also numbers the events (by name order): each router sends its events under
//! its own numbers, and every other router learns them, with the fingerprints, when it joins,
//! so no event name travels or is looked up per event. A number that does not map to an event
//! declared the same way here is refused, counted and logged with the event's name.
//!
//! ```no_run
//! # async fn f() -> edri::Result<()> {
//! use edri::{Edri, switch::Switch};
//! let running = Edri::builder()
//!     .switch(Switch::new("127.0.0.1:7800").secret("s3cret").id("billing"))
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```

mod attach;
mod connector;
pub(crate) mod frame;
mod server;

pub(crate) use connector::Connector;
pub use frame::PROTOCOL;
pub use server::{ConnectedRouter, ServerStatus, TrafficCounts};
pub use server::{Server, StatusHandle};

use std::time::Duration;

/// The environment variable a router and `edri-switch` read the secret from.
pub const SECRET_ENV: &str = "EDRI_SWITCH_SECRET";
/// How long an unacknowledged event is kept for a router that does not acknowledge it.
pub const DEFAULT_OUTAGE_WINDOW: Duration = Duration::from_secs(60);
/// How many bytes of unacknowledged events a router keeps before senders wait.
pub const DEFAULT_BUFFER: usize = 64 << 20;

/// A connection that received nothing (not even a ping) for this long is considered dead.
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(10);
/// An idle connection sends a ping this often.
pub(crate) const IDLE_PING: Duration = Duration::from_secs(1);
/// Bytes gathered into one write.
pub(crate) const WRITE_BATCH: usize = 256 << 10;

/// How a router joins a switch: [`EdriBuilder::switch`](crate::EdriBuilder::switch).
///
/// `"127.0.0.1:7800".into()` gives the defaults: the secret from `EDRI_SWITCH_SECRET`, an id
/// made of the executable's name and the process id, a 60 s outage window and a 64 MiB buffer.
///
/// # Examples
///
/// ```no_run
/// use edri::{Edri, switch::Switch};
/// use std::time::Duration;
///
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     let secret = std::fs::read("/etc/edri/secret")?;
///     Edri::builder()
///         .switch(
///             Switch::new("10.0.0.5:7800")
///                 .secret(secret)
///                 .id("billing") // stable across restarts: its peers resend what it missed
///                 .outage_window(Duration::from_secs(120))
///                 .buffer(256 << 20),
///         )
///         .run()
///         .await
/// }
/// ```
#[derive(Clone)]
pub struct Switch {
    pub(crate) addr: String,
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) id: Option<String>,
    pub(crate) outage_window: Duration,
    pub(crate) buffer: usize,
    pub(crate) window: u32,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("addr", &self.addr)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("id", &self.id)
            .field("outage_window", &self.outage_window)
            .field("buffer", &self.buffer)
            .finish()
    }
}

impl Switch {
    /// The switch at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            secret: None,
            id: None,
            outage_window: DEFAULT_OUTAGE_WINDOW,
            buffer: DEFAULT_BUFFER,
            window: 16_384,
        }
    }

    /// The shared secret (default: the `EDRI_SWITCH_SECRET` environment variable; starting
    /// fails when neither is given).
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// This router's id among the routers of the switch. Give a stable one (`"billing"`) to a
    /// router that may restart: the others keep what they could not deliver to it for the
    /// outage window and deliver it to the restarted router. Default: `<executable>-<pid>`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// How long events are kept for a router that does not acknowledge them (default 60 s).
    pub fn outage_window(mut self, window: Duration) -> Self {
        self.outage_window = window;
        self
    }

    /// How many bytes of unacknowledged events are kept (default 64 MiB); beyond it, senders
    /// wait until acknowledgements free room.
    pub fn buffer(mut self, bytes: usize) -> Self {
        self.buffer = bytes.max(1);
        self
    }

    /// How many events may be on their way to one router, unacknowledged (default 16 384).
    pub fn in_flight(mut self, events: u32) -> Self {
        self.window = events.max(1);
        self
    }
}

impl From<&str> for Switch {
    fn from(addr: &str) -> Self {
        Self::new(addr)
    }
}

impl From<String> for Switch {
    fn from(addr: String) -> Self {
        Self::new(addr)
    }
}

impl From<std::net::SocketAddr> for Switch {
    fn from(addr: std::net::SocketAddr) -> Self {
        Self::new(addr.to_string())
    }
}

/// What a router's connector knows: [`Running::switch`](crate::Running::switch).
///
/// # Examples
///
/// ```
/// fn report(running: &edri::Running) {
///     if let Some(status) = running.switch() {
///         let state = if status.connected { "connected" } else { "away" };
///         let (sent, lost) = (status.sent, status.lost);
///         println!("{} {state}: {sent} sent, {lost} lost, {} buffered", status.id, status.buffered);
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SwitchStatus {
    /// This router's id.
    pub id: String,
    /// This run of it (microseconds since the Unix epoch at start).
    pub epoch: u64,
    /// Whether it is joined to the switch right now.
    pub connected: bool,
    /// The other routers it knows, connected or not.
    pub peers: Vec<Peer>,
    /// Events sent to other routers (one per destination router).
    pub sent: u64,
    /// Events received from other routers and delivered here.
    pub delivered: u64,
    /// Events sent again after a reconnection or a gap.
    pub resent: u64,
    /// Events received twice and dropped.
    pub duplicates: u64,
    /// Events given up: unacknowledged beyond the outage window, or for a router that left.
    pub lost: u64,
    /// Events sent again to a router that restarted before acknowledging them. A router
    /// acknowledges an event once its handlers returned, so its previous run may have handled
    /// some of these just before it stopped: at most these events are handled twice
    /// (at-least-once across a receiver crash).
    pub redelivered: u64,
    /// Events waiting for an acknowledgement.
    pub buffered: u64,
    /// Connections to the switch lost.
    pub reconnects: u64,
    /// Tunnels open with other routers (opened here or accepted here).
    pub tunnels: u64,
}

/// Another router, as [`SwitchStatus`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// Its id.
    pub id: String,
    /// Whether it is connected to the switch.
    pub connected: bool,
    /// The notifications it has subscribers for.
    pub subscribes: Vec<String>,
    /// The requests it answers and the tunnels it accepts.
    pub responds: Vec<String>,
}
