//! Requests across routers through core NATS. A request goes to the next router that answers
//! it (round-robin over the live ones the routers' bucket shows) on `ns.d.<router>.<event>`;
//! when none is known, or that one just left, to `ns.r.<event>`, answered by one router of
//! the queue group `ns` (none: NATS's "no responders"). `ns.a.<event>` (for `request_all`)
//! is answered by every router that answers the event. A response is
//! `Result<bytes, Failure>` in postcard.

use super::Link;
use crate::event::EventKind;
use crate::framing::decode;
use crate::{Ctx, Failure};
use async_nats::{HeaderMap, Message, RequestErrorKind, StatusCode};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// The requester's timeout, in milliseconds: the responder stops waiting then too.
const TIMEOUT_HEADER: &str = "Edri-Timeout-Ms";
/// The requesting router of a `request_all` (it does not come back to it); other requests
/// go to one router that is not the requester and do not carry it.
const ORIGIN_HEADER: &str = "Edri-Origin";
/// The timeout of a request that does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The subjects of one namespace.
pub(super) struct Subjects {
    /// `ns.n.`: notifications, followed by the event's name.
    pub(super) notify: String,
    /// `ns.r.`: requests, one responder.
    pub(super) request: String,
    /// `ns.a.`: requests to every router.
    pub(super) all: String,
    /// `ns.d.`: requests to one router, followed by its id, `.` and the event's name.
    pub(super) direct: String,
}

impl Subjects {
    pub(super) fn new(namespace: &str) -> Self {
        Self {
            notify: format!("{namespace}.n."),
            request: format!("{namespace}.r."),
            all: format!("{namespace}.a."),
            direct: format!("{namespace}.d."),
        }
    }
}

impl Link {
    /// Subscribes to the requests this router answers (before it tells others it does).
    pub(super) async fn serve_requests(self: &Arc<Self>, ctx: &Ctx) -> Result<(), String> {
        let client = self.client()?;
        for event in &self.responds {
            let Some(registration) = crate::registry::event(event) else { continue };
            if registration.meta.kind != EventKind::Request {
                continue;
            }
            let one = client
                .queue_subscribe(
                    format!("{}{event}", self.subjects.request),
                    self.namespace.clone(),
                )
                .await
                .map_err(|e| format!("cannot subscribe to requests `{event}`: {e}"))?;
            let all = client
                .subscribe(format!("{}{event}", self.subjects.all))
                .await
                .map_err(|e| format!("cannot subscribe to requests `{event}`: {e}"))?;
            let direct = client
                .subscribe(format!("{}{}.{event}", self.subjects.direct, self.id))
                .await
                .map_err(|e| format!("cannot subscribe to requests `{event}`: {e}"))?;
            for subscription in [one, all, direct] {
                let (this, ctx, event) = (self.clone(), ctx.clone(), registration.meta.name);
                self.spawn(this.serve(ctx, event, subscription));
            }
        }
        Ok(())
    }

    /// Answers the requests of `subscription` (event `event`), many at once, in this one
    /// task (no task per request).
    async fn serve(
        self: Arc<Self>,
        ctx: Ctx,
        event: &'static str,
        mut subscription: async_nats::Subscriber,
    ) {
        let mut answering = futures_util::stream::FuturesUnordered::new();
        loop {
            tokio::select! {
                message = subscription.next() => match message {
                    Some(message) => answering.extend(self.answer(&ctx, event, message)),
                    None => break,
                },
                Some(()) = answering.next(), if !answering.is_empty() => {}
            }
        }
        while answering.next().await.is_some() {}
    }

    /// Answers request `message` (event `event`) on its reply subject: the future that
    /// waits for the responder and sends the response.
    fn answer(
        self: &Arc<Self>,
        ctx: &Ctx,
        event: &'static str,
        message: Message,
    ) -> Option<impl Future<Output = ()> + use<>> {
        let Some(reply) = message.reply else {
            self.decode_error(event, &Failure::invalid("a request without a reply subject"));
            return None;
        };
        let header = |name: &str| message.headers.as_ref()?.get(name).map(|v| v.as_str());
        if header(ORIGIN_HEADER) == Some(self.id.as_str()) {
            // Its own `request_all`: this router's responder was asked directly.
            return None;
        }
        let timeout = header(TIMEOUT_HEADER)
            .and_then(|ms| ms.parse().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let registration = crate::registry::event(event)?;
        let answer = (registration.request_bytes)(ctx.clone(), &message.payload, timeout);
        let from = header(super::publish::TRACEPARENT)
            .and_then(crate::trace::TraceContext::from_traceparent)
            .map(crate::trace::Link::remote);
        let answer = crate::trace::scope(from, answer);
        let this = self.clone();
        Some(async move {
            let result = answer.await;
            let bytes = postcard::to_allocvec(&result).or_else(|e| {
                let failure = Failure::failed(format!("cannot encode the response: {e}"));
                postcard::to_allocvec(&Err::<Vec<u8>, _>(failure))
            });
            let Ok(bytes) = bytes else { return };
            let Ok(client) = this.client() else { return };
            if let Err(error) = client.publish(reply, bytes.into()).await {
                tracing::debug!(%error, event, "cannot send a response through NATS");
            }
        })
    }

    /// Sends request `event` to one router that answers it.
    pub(super) async fn call(
        &self,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Failure> {
        let client = self.client().map_err(Failure::unavailable)?;
        let payload = bytes::Bytes::from(payload);
        let queue = format!("{}{event}", self.subjects.request);
        let direct =
            self.peers.responder(event).map(|id| format!("{}{id}.{event}", self.subjects.direct));
        let mut sent = Err(None);
        for subject in direct.into_iter().chain([queue]) {
            let request = async_nats::Request::new()
                .payload(payload.clone())
                .headers(self.request_headers(timeout, false))
                .timeout(Some(timeout));
            sent = client.send_request(subject, request).await.map_err(Some);
            // The router picked left just now: ask the queue group instead.
            if !matches!(&sent, Err(Some(e)) if e.kind() == RequestErrorKind::NoResponders) {
                break;
            }
        }
        match sent {
            Ok(message) => response(&message),
            Err(None) => Err(Failure::unavailable(format!("request `{event}` was not sent"))),
            Err(Some(error)) => Err(match error.kind() {
                RequestErrorKind::NoResponders => Failure::unavailable(format!(
                    "no responder for request `{event}` on this router or any router joined \
                     through NATS"
                )),
                RequestErrorKind::TimedOut => Failure::timeout(format!(
                    "request `{event}` got no response within {timeout:?}"
                )),
                RequestErrorKind::Other => {
                    Failure::unavailable(format!("request `{event}` through NATS failed: {error}"))
                }
            }),
        }
    }

    /// Sends request `event` to every other router that answers it; one result per router
    /// that answered within `timeout`.
    pub(super) async fn call_all(
        &self,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Vec<Result<Vec<u8>, Failure>> {
        let expected = self.peers.responders(event);
        if expected == 0 {
            return Vec::new();
        }
        let Ok(client) = self.client() else { return Vec::new() };
        let inbox = client.new_inbox();
        let Ok(mut answers) = client.subscribe(inbox.clone()).await else { return Vec::new() };
        let subject = format!("{}{event}", self.subjects.all);
        let headers = self.request_headers(timeout, true);
        let sent = client.publish_with_reply_and_headers(subject, inbox, headers, payload.into());
        if let Err(error) = sent.await {
            return vec![Err(Failure::unavailable(format!(
                "request `{event}` through NATS failed: {error}"
            )))];
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut results = Vec::with_capacity(expected);
        while results.len() < expected {
            match tokio::time::timeout_at(deadline, answers.next()).await {
                Ok(Some(message)) if message.status == Some(StatusCode::NO_RESPONDERS) => break,
                Ok(Some(message)) => results.push(response(&message)),
                Ok(None) | Err(_) => break,
            }
        }
        let _ = answers.unsubscribe().await;
        results
    }

    /// The requester's timeout, and with `all` this router's id.
    fn request_headers(&self, timeout: Duration, all: bool) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        headers.insert(TIMEOUT_HEADER, ms.to_string().as_str());
        if all {
            headers.insert(ORIGIN_HEADER, self.id.as_str());
        }
        if let Some(trace) = crate::trace::context() {
            headers.insert(super::publish::TRACEPARENT, trace.traceparent().as_str());
        }
        headers
    }
}

/// A response from another router.
fn response(message: &Message) -> Result<Vec<u8>, Failure> {
    decode::<Result<Vec<u8>, Failure>>(&message.payload).unwrap_or_else(|e| {
        Err(Failure::failed(format!("a malformed response came through NATS: {e}")))
    })
}
