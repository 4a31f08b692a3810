//! `GET /edri/ws`: events both ways over one WebSocket per client.
//!
//! A client sends `{"event": name, "id": n, "data": {..}}` for `ws` events and gets
//! `{"id": n, "ok": ..}` or `{"id": n, "error": {"status", "message"}}`; it chooses pushed
//! notifications with `{"subscribe": name, "filter": {field: value}}` and
//! `{"unsubscribe": name}`. Pushes are `{"event": name, "data": {..}}`.
//!
//! `ws` notifications reach the broker through an ordinary manager, `edri.api`, subscribed to
//! each of them; it encodes a notification once (only when some client subscribes to it) and
//! hands it to every matching client's bounded queue. A client whose queue is full is
//! disconnected (close code 1008, with the reason) instead of growing memory.

use super::server::ApiState;
use crate::Ctx;
use crate::envelope::{Envelope, Payload};
use crate::event::{EventKind, Location};
use crate::manager::{
    ErasedManager, HandlerDescriptor, ManagerDescriptor, ManagerOptions, Mode, QueueKind,
};
use crate::registry::EventRegistration;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Map, Value, json};
use std::any::TypeId;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

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

    fn register(&self) -> (u64, mpsc::Receiver<Utf8Bytes>, oneshot::Receiver<(u16, String)>) {
        let (tx, rx) = mpsc::channel(self.queue);
        let (close, closed) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client = Client { subscriptions: HashMap::new(), queue: tx, close: Some(close) };
        self.clients().insert(id, client);
        (id, rx, closed)
    }

    fn remove(&self, id: u64) {
        self.clients().remove(&id);
    }

    /// Whether some client subscribes to `event`.
    fn subscribed(&self, event: &str) -> bool {
        self.clients().values().any(|c| c.subscriptions.contains_key(event))
    }

    /// Queues one message for client `id`; a full queue disconnects the client.
    fn send(&self, id: u64, text: Utf8Bytes) {
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
    fn push(&self, event: &str, data: Value) {
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

    fn subscribe(&self, id: u64, event: &'static str, filter: Map<String, Value>) {
        if let Some(client) = self.clients().get_mut(&id) {
            client.subscriptions.entry(event).or_default().push(filter);
        }
    }

    fn unsubscribe(&self, id: u64, event: &str) -> bool {
        self.clients().get_mut(&id).is_some_and(|c| c.subscriptions.remove(event).is_some())
    }

    /// Closes client `id` with `code` and `reason`.
    fn close(&self, id: u64, code: u16, reason: String) {
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

/// `GET /edri/ws`.
pub(crate) async fn upgrade(
    State(state): State<Arc<ApiState>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limit = state.config.body_limit;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection(state, socket))
}

async fn connection(state: Arc<ApiState>, socket: WebSocket) {
    let hub = state.hub.clone();
    let (id, outgoing, closed) = hub.register();
    let (sink, stream) = socket.split();
    let writer = write(sink, outgoing, closed);
    tokio::pin!(writer);
    tokio::select! {
        () = &mut writer => {}
        ended = read(&state, id, stream) => {
            // A message the protocol refuses (too big, malformed frame): say why, then close.
            if let Some((code, reason)) = ended {
                hub.close(id, code, reason);
                let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
            }
        }
    }
    hub.remove(id);
}

async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Utf8Bytes>,
    mut closed: oneshot::Receiver<(u16, String)>,
) {
    loop {
        let text = tokio::select! {
            biased;
            close = &mut closed => {
                if let Ok((code, reason)) = close {
                    let frame = CloseFrame { code, reason: reason.into() };
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
                }
                return;
            }
            text = outgoing.recv() => match text {
                Some(text) => text,
                None => return,
            },
        };
        tokio::select! {
            biased;
            _ = &mut closed => return,
            sent = sink.send(Message::Text(text)) => if sent.is_err() { return },
        }
    }
}

async fn read(
    state: &Arc<ApiState>,
    id: u64,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
) -> Option<(u16, String)> {
    let in_flight = Arc::new(Semaphore::new(state.config.ws_in_flight));
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Text(text)) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else { return None };
                handle(state, id, &text, permit);
            }
            Ok(Message::Binary(_)) => {
                reply_error(
                    state,
                    id,
                    &Value::Null,
                    "invalid",
                    "binary messages are not understood: send JSON text",
                    None,
                );
            }
            Ok(Message::Close(_)) => return None,
            Err(e) => {
                let text = e.to_string();
                let code = if text.contains("too long") || text.contains("Space limit") {
                    1009
                } else {
                    1002
                };
                let reason: String = text.chars().take(100).collect();
                tracing::debug!(client = id, error = %text, "WebSocket read failed; closing");
                return Some((code, reason));
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
        }
    }
    None
}

fn reply(state: &ApiState, id: u64, message: &Value) {
    state.hub.send(id, message.to_string().into());
}

fn reply_error(
    state: &ApiState,
    client: u64,
    id: &Value,
    status: &str,
    message: &str,
    field: Option<&str>,
) {
    let error = super::rest::error_object(status, message, field);
    reply(state, client, &json!({ "id": id, "error": error }));
}

/// One text message from client `client`.
fn handle(
    state: &Arc<ApiState>,
    client: u64,
    text: &str,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let message: Map<String, Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return reply_error(
                state,
                client,
                &Value::Null,
                "invalid",
                "a message is a JSON object: {\"event\", \"id\", \"data\"}, {\"subscribe\"} or {\"unsubscribe\"}",
                None,
            );
        }
        Err(e) => {
            return reply_error(
                state,
                client,
                &Value::Null,
                "invalid",
                &format!("not JSON: {e}"),
                None,
            );
        }
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    if let Some(name) = message.get("event") {
        let Some(name) = name.as_str() else {
            return reply_error(
                state,
                client,
                &id,
                "invalid",
                "`event` must be a string",
                Some("event"),
            );
        };
        let entry = match state.catalog.events.get(name) {
            Some(entry) if entry.registration.meta.ws => entry,
            _ => {
                return reply_error(
                    state,
                    client,
                    &id,
                    "not_found",
                    &format!("no event `{name}` is exposed on the WebSocket"),
                    Some("event"),
                );
            }
        };
        let data = match message.get("data") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(data)) => {
                if let Err((message, field)) = super::rest::unknown_fields(entry, data, "field") {
                    return reply_error(state, client, &id, "invalid", &message, Some(&field));
                }
                Value::Object(data.clone())
            }
            Some(_) => {
                return reply_error(
                    state,
                    client,
                    &id,
                    "invalid",
                    "`data` must be a JSON object",
                    Some("data"),
                );
            }
        };
        match (entry.hooks.call)(state.ctx.clone(), data, state.timeout) {
            Err(e) => {
                reply_error(state, client, &id, "invalid", &e.to_string(), e.field.as_deref())
            }
            Ok(pending) => {
                let state = state.clone();
                state.ctx.clone().spawn(async move {
                    let _permit = permit;
                    match pending.await {
                        Ok(ok) => reply(&state, client, &json!({ "id": id, "ok": ok })),
                        Err(f) => {
                            reply_error(&state, client, &id, f.status().as_str(), f.message(), None)
                        }
                    }
                });
            }
        }
    } else if let Some(name) = message.get("subscribe") {
        let Some(name) = name.as_str() else {
            return reply_error(
                state,
                client,
                &id,
                "invalid",
                "`subscribe` must be a string",
                Some("subscribe"),
            );
        };
        let entry = match state.catalog.events.get(name) {
            Some(e)
                if e.registration.meta.ws
                    && e.registration.meta.kind == EventKind::Notification =>
            {
                e
            }
            _ => {
                return reply_error(
                    state,
                    client,
                    &id,
                    "not_found",
                    &format!("no notification `{name}` is exposed on the WebSocket"),
                    Some("subscribe"),
                );
            }
        };
        let filter = match message.get("filter") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(filter)) => filter.clone(),
            Some(_) => {
                return reply_error(
                    state,
                    client,
                    &id,
                    "invalid",
                    "`filter` must be an object of field values",
                    Some("filter"),
                );
            }
        };
        state.hub.subscribe(client, entry.registration.meta.name, filter);
        reply(state, client, &json!({ "id": id, "subscribed": name }));
    } else if let Some(name) = message.get("unsubscribe") {
        let Some(name) = name.as_str() else {
            return reply_error(
                state,
                client,
                &id,
                "invalid",
                "`unsubscribe` must be a string",
                Some("unsubscribe"),
            );
        };
        let was = state.hub.unsubscribe(client, name);
        reply(state, client, &json!({ "id": id, "unsubscribed": name, "was_subscribed": was }));
    } else {
        reply_error(
            state,
            client,
            &id,
            "invalid",
            "expected `event`, `subscribe` or `unsubscribe`",
            None,
        );
    }
}

/// The `edri.api` manager: subscribed to every `ws` notification, it pushes them to clients.
pub(crate) struct Bridge {
    hub: Arc<Hub>,
    /// By handler index: the event's registration.
    events: &'static [&'static EventRegistration],
}

/// The `ws` notifications of this binary and the descriptor of the manager receiving them.
fn descriptor() -> &'static (Vec<&'static EventRegistration>, ManagerDescriptor) {
    static DESCRIPTOR: OnceLock<(Vec<&'static EventRegistration>, ManagerDescriptor)> =
        OnceLock::new();
    DESCRIPTOR.get_or_init(|| {
        let mut events: Vec<&'static EventRegistration> = crate::registry::events()
            .filter(|r| r.meta.ws && r.meta.kind == EventKind::Notification && r.api.is_some())
            .collect();
        events.sort_by_key(|r| r.meta.name);
        events.dedup_by_key(|r| r.meta.name);
        let location = Location { file: file!(), line: line!() };
        let handlers: Vec<HandlerDescriptor> = events
            .iter()
            .map(|r| HandlerDescriptor {
                event: r.meta,
                event_type: r.type_id,
                method: "push",
                mode: Mode::Inline,
                limit: 1,
                location,
                process: None,
            })
            .collect();
        // Descriptors are 'static; this one is built once per program, like a generated one.
        let handlers: &'static [HandlerDescriptor] = Box::leak(handlers.into_boxed_slice());
        let descriptor = ManagerDescriptor {
            name: "edri.api",
            rust_name: "edri::api::Bridge",
            location,
            options: ManagerOptions { queue: QueueKind::Fifo, capacity: None, manual: true },
            handlers,
            type_id: || TypeId::of::<Bridge>(),
            make_default: || None,
        };
        (events, descriptor)
    })
}

impl Bridge {
    /// The bridge, when this binary has `ws` notifications.
    pub(crate) fn boxed(hub: Arc<Hub>) -> Option<Box<dyn ErasedManager>> {
        let (events, _) = descriptor();
        if events.is_empty() {
            return None;
        }
        Some(Box::new(Self { hub, events: events.as_slice() }))
    }

    async fn serve(self, mut mailbox: mpsc::Receiver<Envelope>, ctx: Ctx) {
        let shared = ctx.shared().clone();
        let stats = shared.stats(ctx.origin());
        while let Some(envelope) = mailbox.recv().await {
            if matches!(envelope.payload, Payload::Stop) {
                break;
            }
            stats.begin();
            let since = shared.clock();
            let handler = envelope.handler;
            if let Some(reg) = self.events.get(usize::from(handler))
                && self.hub.subscribed(reg.meta.name)
                && let Some(encode) = reg.api.map(|h| h.encode)
                && let Some(data) = encode(envelope)
            {
                self.hub.push(reg.meta.name, data);
            }
            shared.record_call(ctx.origin(), handler, since);
            stats.end();
        }
    }
}

impl ErasedManager for Bridge {
    fn descriptor(&self) -> &'static ManagerDescriptor {
        &descriptor().1
    }

    fn spawn(
        self: Box<Self>,
        mailbox: mpsc::Receiver<Envelope>,
        ctx: Ctx,
        runtime: &tokio::runtime::Handle,
    ) -> tokio::task::JoinHandle<()> {
        runtime.spawn(self.serve(mailbox, ctx))
    }
}
