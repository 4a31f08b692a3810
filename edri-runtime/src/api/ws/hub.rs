//! The connected WebSocket clients: their subscriptions, their bounded outgoing queues, and
//! the counts `/metrics` shows.

use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// Close code of a client dropped for not reading fast enough (policy violation).
const TOO_SLOW: u16 = 1008;

/// The connected clients and their subscriptions.
pub(crate) struct Hub {
    clients: Mutex<HashMap<u64, Client>>,
    next_id: AtomicU64,
    queue: usize,
    dropped: AtomicU64,
    pushed: AtomicU64,
}

struct Client {
    /// Filters by notification name; a push goes out when one of them matches.
    subscriptions: HashMap<&'static str, Vec<Map<String, Value>>>,
    queue: mpsc::Sender<Utf8Bytes>,
    close: Option<oneshot::Sender<(u16, String)>>,
}

impl Client {
    fn wants(&self, event: &str, data: &Value) -> bool {
        self.subscriptions.get(event).is_some_and(|filters| {
            filters.iter().any(|filter| filter.iter().all(|(k, v)| data.get(k) == Some(v)))
        })
    }
}

impl Hub {
    pub(crate) fn new(queue: usize) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue,
            dropped: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Client>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn register(
        &self,
    ) -> (u64, mpsc::Receiver<Utf8Bytes>, oneshot::Receiver<(u16, String)>) {
        let (tx, rx) = mpsc::channel(self.queue);
        let (close, closed) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client = Client { subscriptions: HashMap::new(), queue: tx, close: Some(close) };
        self.clients().insert(id, client);
        (id, rx, closed)
    }

    pub(super) fn remove(&self, id: u64) {
        self.clients().remove(&id);
    }

    /// Whether some client subscribes to `event`.
    pub(super) fn subscribed(&self, event: &str) -> bool {
        self.clients().values().any(|c| c.subscriptions.contains_key(event))
    }

    /// Queues one message for client `id`; a full queue disconnects the client.
    pub(super) fn send(&self, id: u64, text: Utf8Bytes) {
        let mut clients = self.clients();
        let full = match clients.get(&id) {
            Some(client) => {
                matches!(client.queue.try_send(text), Err(mpsc::error::TrySendError::Full(_)))
            }
            None => false,
        };
        if full {
            self.drop_slow(&mut clients, id);
        }
    }

    fn drop_slow(&self, clients: &mut HashMap<u64, Client>, id: u64) {
        if let Some(mut client) = clients.remove(&id) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let reason = format!(
                "edri: too slow, {} messages waiting; reconnect and read faster",
                self.queue
            );
            tracing::warn!(
                client = id,
                queue = self.queue,
                "WebSocket client too slow; disconnected"
            );
            if let Some(close) = client.close.take() {
                close.send((TOO_SLOW, reason)).ok();
            }
        }
    }

    /// Pushes a notification to every client whose subscription matches.
    pub(super) fn push(&self, event: &str, data: Value) {
        let mut clients = self.clients();
        let mut text: Option<Utf8Bytes> = None;
        let mut slow = Vec::new();
        for (id, client) in clients.iter() {
            if !client.wants(event, &data) {
                continue;
            }
            let text = text
                .get_or_insert_with(|| json!({ "event": event, "data": &data }).to_string().into());
            match client.queue.try_send(text.clone()) {
                Ok(()) => {
                    self.pushed.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => slow.push(*id),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for id in slow {
            self.drop_slow(&mut clients, id);
        }
    }

    pub(super) fn subscribe(&self, id: u64, event: &'static str, filter: Map<String, Value>) {
        if let Some(client) = self.clients().get_mut(&id) {
            client.subscriptions.entry(event).or_default().push(filter);
        }
    }

    pub(super) fn unsubscribe(&self, id: u64, event: &str) -> bool {
        self.clients().get_mut(&id).is_some_and(|c| c.subscriptions.remove(event).is_some())
    }

    /// Closes client `id` with `code` and `reason`.
    pub(super) fn close(&self, id: u64, code: u16, reason: String) {
        if let Some(close) = self.clients().get_mut(&id).and_then(|c| c.close.take()) {
            close.send((code, reason)).ok();
        }
    }

    /// Closes every client with `code` and `reason`.
    pub(crate) fn close_all(&self, code: u16, reason: &str) {
        for client in self.clients().values_mut() {
            if let Some(close) = client.close.take() {
                close.send((code, reason.to_owned())).ok();
            }
        }
    }

    pub(crate) fn render_metrics(&self, out: &mut String) {
        let clients = self.clients().len();
        let _ = writeln!(out, "# HELP edri_api_ws_clients Connected WebSocket clients.");
        let _ = writeln!(out, "# TYPE edri_api_ws_clients gauge");
        let _ = writeln!(out, "edri_api_ws_clients {clients}");
        let _ = writeln!(
            out,
            "# HELP edri_api_ws_pushed_total Notifications pushed to WebSocket clients."
        );
        let _ = writeln!(out, "# TYPE edri_api_ws_pushed_total counter");
        let _ = writeln!(out, "edri_api_ws_pushed_total {}", self.pushed.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP edri_api_ws_dropped_total WebSocket clients disconnected for reading too slowly."
        );
        let _ = writeln!(out, "# TYPE edri_api_ws_dropped_total counter");
        let _ = writeln!(out, "edri_api_ws_dropped_total {}", self.dropped.load(Ordering::Relaxed));
    }
}
