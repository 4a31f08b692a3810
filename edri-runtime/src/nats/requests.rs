//! Requests across routers through core NATS. A request goes to the next router that answers
//! it (round-robin over the live ones the routers' bucket shows) on `ns.d.<router>.<event>`;
//! when none is known, or that one just left, to `ns.r.<event>`, answered by one router of
//! the queue group `ns` (none: NATS's "no responders"). `ns.a.<event>` (for `request_all`)
//! is answered by every router that answers the event.
//!
//! A request's payload is the requester's timeout in milliseconds (4 bytes, little-endian:
//! the responder stops waiting then too) followed by the event's bytes. Headers travel only
//! when there is something to say: `traceparent` for a traced request, `Edri-Origin` on a
//! `request_all`; so a plain request is a header-less message both ways. A response is a tag
//! byte, then for [`ANSWERED`] the response's bytes, for [`FAILED`] the `Failure` in postcard.

use super::Link;
use crate::event::EventKind;
use crate::framing::decode;
use crate::registry::EventRegistration;
use crate::{Ctx, Failure};
use async_nats::{HeaderMap, Message, RequestErrorKind, StatusCode, Subject};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::Either;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The requesting router of a `request_all` (it does not come back to it); other requests
/// go to one router that is not the requester and do not carry it.
const ORIGIN_HEADER: &str = "Edri-Origin";
/// The bytes of the timeout in front of a request's event.
const TIMEOUT_BYTES: usize = 4;
/// The tag of a response that carries the responder's answer.
const ANSWERED: u8 = 0;
/// The tag of a response that carries a `Failure`.
const FAILED: u8 = 1;

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
    /// `ns.r.<event>` of every request event of this binary, made once.
    queues: HashMap<&'static str, Subject>,
}

impl Subjects {
    pub(super) fn new(namespace: &str) -> Self {
        let request = format!("{namespace}.r.");
        let queues = crate::registry::events()
            .filter(|r| r.meta.kind == EventKind::Request)
            .map(|r| (r.meta.name, Subject::from(format!("{request}{}", r.meta.name))))
            .collect();
        Self {
            notify: format!("{namespace}.n."),
            request,
            all: format!("{namespace}.a."),
            direct: format!("{namespace}.d."),
            queues,
        }
    }

    /// `ns.r.<event>`.
    fn queue(&self, event: &str) -> Subject {
        self.queues
            .get(event)
            .cloned()
            .unwrap_or_else(|| Subject::from(format!("{}{event}", self.request)))
    }
}

/// A request's payload: `timeout` in milliseconds (saturated at `u32::MAX`, 49 days), then
/// `event`.
fn framed(timeout: Duration, event: &[u8]) -> Bytes {
    let mut bytes = BytesMut::with_capacity(TIMEOUT_BYTES + event.len());
    bytes.put_u32_le(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
    bytes.put_slice(event);
    bytes.freeze()
}

/// The timeout and the event of a request's payload; `None` when it is too short to hold
/// them.
fn unframed(payload: &[u8]) -> Option<(Duration, &[u8])> {
    let (timeout, event) = payload.split_first_chunk::<TIMEOUT_BYTES>()?;
    Some((Duration::from_millis(u64::from(u32::from_le_bytes(*timeout))), event))
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
                let (this, ctx) = (self.clone(), ctx.clone());
                self.spawn(this.serve(ctx, registration, subscription));
            }
        }
        Ok(())
    }

    /// Answers the requests of `subscription` (of the event of `registration`), many at
    /// once, in this one task (no task per request).
    async fn serve(
        self: Arc<Self>,
        ctx: Ctx,
        registration: &'static EventRegistration,
        mut subscription: async_nats::Subscriber,
    ) {
        let mut answering = futures_util::stream::FuturesUnordered::new();
        loop {
            tokio::select! {
                message = subscription.next() => match message {
                    Some(message) => answering.extend(self.answer(&ctx, registration, message)),
                    None => break,
                },
                Some(()) = answering.next(), if !answering.is_empty() => {}
            }
        }
        while answering.next().await.is_some() {}
    }

    /// Answers request `message` (of the event of `registration`) on its reply subject: the
    /// future that waits for the responder and sends the response.
    fn answer(
        self: &Arc<Self>,
        ctx: &Ctx,
        registration: &'static EventRegistration,
        message: Message,
    ) -> Option<impl Future<Output = ()> + use<>> {
        let event = registration.meta.name;
        let Some(reply) = message.reply else {
            self.decode_error(event, &Failure::invalid("a request without a reply subject"));
            return None;
        };
        let header = |name: &str| message.headers.as_ref()?.get(name).map(|v| v.as_str());
        if header(ORIGIN_HEADER) == Some(self.id.as_str()) {
            // Its own `request_all`: this router's responder was asked directly.
            return None;
        }
        let answer = match unframed(&message.payload) {
            Some((timeout, bytes)) => {
                let answer = (registration.request_bytes)(ctx.clone(), bytes, timeout);
                let from = header(super::publish::TRACEPARENT)
                    .and_then(crate::trace::TraceContext::from_traceparent)
                    .map(crate::trace::Link::remote);
                Either::Left(crate::trace::scope(from, answer))
            }
            None => {
                // Not from a router: counted, and answered so that its sender does not wait.
                let failure = Failure::invalid(format!(
                    "a request of {} bytes: a request through NATS starts with its timeout \
                     ({TIMEOUT_BYTES} bytes, little-endian milliseconds), then the event",
                    message.payload.len()
                ));
                self.decode_error(event, &failure);
                Either::Right(std::future::ready(Err(failure)))
            }
        };
        let this = self.clone();
        Some(async move {
            let result = answer.await;
            let bytes = encode_response(&result);
            let sent = match this.client() {
                Ok(client) => client.publish(reply, bytes).await.map_err(|e| e.to_string()),
                Err(error) => Err(error),
            };
            if let Err(error) = sent {
                let unsent = this.stats.responses_unsent.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(%error, event, unsent, "cannot send a response through NATS: its requester times out");
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
        let payload = framed(timeout, &payload);
        let direct = self.peers.responder(event);
        let mut sent = Err(None);
        for subject in direct.into_iter().chain([self.subjects.queue(event)]) {
            let mut request =
                async_nats::Request::new().payload(payload.clone()).timeout(Some(timeout));
            if let Some(headers) = trace_headers() {
                request = request.headers(headers);
            }
            sent = client.send_request(subject, request).await.map_err(Some);
            // The router picked left just now: ask the queue group instead.
            if !matches!(&sent, Err(Some(e)) if e.kind() == RequestErrorKind::NoResponders) {
                break;
            }
        }
        match sent {
            Ok(message) => response(&message.payload),
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
        let mut headers = trace_headers().unwrap_or_default();
        headers.insert(ORIGIN_HEADER, self.id.as_str());
        let payload = framed(timeout, &payload);
        let sent = client.publish_with_reply_and_headers(subject, inbox, headers, payload);
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
                Ok(Some(message)) => results.push(response(&message.payload)),
                Ok(None) | Err(_) => break,
            }
        }
        let _ = answers.unsubscribe().await;
        results
    }
}

/// The `traceparent` of a request sent from a traced handler; `None` outside one.
fn trace_headers() -> Option<HeaderMap> {
    let trace = crate::trace::context()?;
    let mut headers = HeaderMap::new();
    headers.insert(super::publish::TRACEPARENT, trace.traceparent().as_str());
    Some(headers)
}

/// A response from another router.
fn response(payload: &[u8]) -> Result<Vec<u8>, Failure> {
    let malformed =
        |why: String| Failure::failed(format!("a malformed response came through NATS: {why}"));
    match payload.split_first() {
        Some((&ANSWERED, bytes)) => Ok(bytes.to_vec()),
        Some((&FAILED, failure)) => {
            Err(decode::<Failure>(failure).unwrap_or_else(|e| malformed(e.to_string())))
        }
        Some((tag, _)) => Err(malformed(format!("unknown tag {tag}"))),
        None => Err(malformed("no bytes".into())),
    }
}

/// A response: [`ANSWERED`] and the answer's bytes (copied once, not element by element), or
/// [`FAILED`] and the failure.
fn encode_response(result: &Result<Vec<u8>, Failure>) -> Bytes {
    match result {
        Ok(bytes) => {
            let mut out = BytesMut::with_capacity(1 + bytes.len());
            out.put_u8(ANSWERED);
            out.put_slice(bytes);
            out.freeze()
        }
        Err(failure) => {
            let failure = postcard::to_allocvec(failure).unwrap_or_else(|e| {
                let failure = Failure::failed(format!("cannot encode the failure: {e}"));
                postcard::to_allocvec(&failure).unwrap_or_default()
            });
            [&[FAILED][..], &failure].concat().into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_round_trip_and_garbage_is_a_failure() {
        let answered = encode_response(&Ok(vec![1, 2, 3]));
        assert_eq!(&answered[..], &[ANSWERED, 1, 2, 3]);
        assert_eq!(response(&answered), Ok(vec![1, 2, 3]));
        let failed = encode_response(&Err(Failure::invalid("no")));
        let failure = response(&failed).expect_err("a failure");
        assert_eq!((failure.status(), failure.message()), (crate::Status::Invalid, "no"));
        for garbage in [&[][..], &[7, 1], &[FAILED, 0xFF, 0xFF]] {
            let failure = response(garbage).expect_err("refused");
            assert!(failure.message().contains("a malformed response"), "{failure}");
        }
    }

    #[test]
    fn a_request_starts_with_its_timeout() {
        let request = framed(Duration::from_millis(1500), b"event");
        assert_eq!(unframed(&request), Some((Duration::from_millis(1500), &b"event"[..])));
        assert_eq!(
            unframed(&framed(Duration::MAX, b"")),
            Some((Duration::from_millis(u64::from(u32::MAX)), &b""[..]))
        );
        assert_eq!(unframed(b"abc"), None);
    }
}
