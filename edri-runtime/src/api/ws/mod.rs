//! `GET /edri/ws`: events both ways over one WebSocket per client.
//!
//! A client sends `{"event": name, "id": n, "data": {..}}` for `ws` events and gets
//! `{"id": n, "ok": ..}` or `{"id": n, "error": {"status", "message", "field"?}}`; it chooses
//! pushed notifications with `{"subscribe": name, "filter": {field: value}}` and
//! `{"unsubscribe": name}`. Pushes are `{"event": name, "data": {..}}`. Messages are read in
//! `message`, clients and their queues kept in `hub`.
//!
//! `ws` notifications reach the broker through a manager, `edri.api` (`bridge`), subscribed to
//! each of them; it encodes a notification once (only when some client subscribes to it) and
//! hands it to every matching client's bounded queue. A client whose queue is full is
//! disconnected (close code 1008, with the reason) instead of growing memory.

mod bridge;
mod hub;
mod message;

pub(crate) use bridge::Bridge;
pub(crate) use hub::Hub;

use super::rest::{error_object, unknown_fields};
use super::server::ApiState;
use crate::event::EventKind;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use message::{Call, ClientMessage, Refused, Subscribe, Unsubscribe};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// `GET /edri/ws`.
pub(crate) async fn upgrade(
    State(state): State<Arc<ApiState>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limit = state.config.body_limit;
    // The socket's own task acts for the caller that opened it, as the request did.
    let caller = crate::Caller::current();
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| async move {
        match caller {
            Some(caller) => caller.scope(connection(state, socket)).await,
            None => connection(state, socket).await,
        }
    })
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
                let message = "binary messages are not understood: send JSON text";
                reply_error(state, id, &Value::Null, &Refused::invalid(message, None));
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

fn reply(state: &ApiState, client: u64, message: &Value) {
    state.hub.send(client, message.to_string().into());
}

fn reply_error(state: &ApiState, client: u64, id: &Value, refused: &Refused) {
    let error = error_object(refused.status, &refused.message, refused.field.as_deref());
    reply(state, client, &json!({ "id": id, "error": error }));
}

/// One text message from client `client`.
fn handle(state: &Arc<ApiState>, client: u64, text: &str, permit: OwnedSemaphorePermit) {
    let (id, message) = ClientMessage::parse(text);
    let answered = message.and_then(|message| match message {
        ClientMessage::Call(call) => send_event(state, client, &id, call, permit),
        ClientMessage::Subscribe(subscribe) => {
            let name = add_subscription(state, client, subscribe)?;
            reply(state, client, &json!({ "id": id, "subscribed": name }));
            Ok(())
        }
        ClientMessage::Unsubscribe(Unsubscribe { unsubscribe: name }) => {
            let was = state.hub.unsubscribe(client, &name);
            let answer = json!({ "id": id, "unsubscribed": name, "was_subscribed": was });
            reply(state, client, &answer);
            Ok(())
        }
    });
    if let Err(refused) = answered {
        reply_error(state, client, &id, &refused);
    }
}

/// Sends the event of a call; its answer is replied once it comes, holding `permit` until
/// then.
fn send_event(
    state: &Arc<ApiState>,
    client: u64,
    id: &Value,
    Call { event: name, data }: Call,
    permit: OwnedSemaphorePermit,
) -> Result<(), Refused> {
    let entry = match state.catalog.events.get(name.as_str()) {
        Some(entry) if entry.registration.meta.ws => entry,
        _ => {
            let message = format!("no event `{name}` is exposed on the WebSocket");
            return Err(Refused::not_found(message, "event"));
        }
    };
    unknown_fields(entry, &data, "field")
        .map_err(|(message, field)| Refused::invalid(message, Some(&field)))?;
    let pending = (entry.hooks.call)(state.ctx.clone(), Value::Object(data), state.timeout)?;
    let (state, id) = (state.clone(), id.clone());
    state.ctx.clone().spawn(async move {
        let _permit = permit;
        match pending.await {
            Ok(ok) => reply(&state, client, &json!({ "id": id, "ok": ok })),
            Err(failure) => reply_error(&state, client, &id, &failure.into()),
        }
    });
    Ok(())
}

/// Subscribes the client to a `ws` notification; returns its name.
fn add_subscription(
    state: &ApiState,
    client: u64,
    Subscribe { subscribe: name, filter }: Subscribe,
) -> Result<&'static str, Refused> {
    match state.catalog.events.get(name.as_str()) {
        Some(entry)
            if entry.registration.meta.ws
                && entry.registration.meta.kind == EventKind::Notification =>
        {
            let name = entry.registration.meta.name;
            state.hub.subscribe(client, name, filter);
            Ok(name)
        }
        _ => {
            let message = format!("no notification `{name}` is exposed on the WebSocket");
            Err(Refused::not_found(message, "subscribe"))
        }
    }
}
