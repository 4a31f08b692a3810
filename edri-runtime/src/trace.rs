//! Traces across events: every handling span (`edri.deliver`) carries the trace id of the
//! chain it belongs to and is linked to the span that sent its event.
//!
//! While a handler runs, the router keeps its [`Link`] (its trace and span ids, and its
//! `tracing` span) as the *current* one of the thread, during each poll of an async handler,
//! for the whole call of a thread handler, in a worker process while it runs a job. Every
//! event sent meanwhile carries that link:
//!
//! - inside one process, the envelope holds the link itself, and the receiving handler's span
//!   is a child of the sender's span (`parent`), so any subscriber shows the chain;
//! - to a worker process, through the switch or through NATS, the envelope's frame holds the
//!   ids ([`TraceContext`], 24 bytes; a W3C `traceparent` header on NATS), and the receiving
//!   span records them.
//!
//! Each `edri.deliver` span records `trace_id` (32 hex digits, the same along the chain),
//! `span_id` and `parent_span_id` (16 hex digits), whatever the distance. A chain starts at
//! the first handler whose event came without a link (from code outside the managers that runs
//! in no handler). Nothing of this runs while `edri.deliver` spans are disabled (no subscriber,
//! or a filter above `debug` for `edri_runtime`): then events carry no link and cost nothing
//! more.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// The ids of one handling span, as they travel between processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceContext {
    /// The chain's id.
    pub(crate) trace: u128,
    /// The sending span's id.
    pub(crate) span: u64,
}

#[cfg_attr(not(any(test, feature = "nats")), allow(dead_code, reason = "NATS headers"))]
impl TraceContext {
    /// The W3C `traceparent` form: `00-<trace>-<span>-01`.
    pub(crate) fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace, self.span)
    }

    /// Reads a W3C `traceparent`; `None` when it is not one.
    pub(crate) fn from_traceparent(text: &str) -> Option<Self> {
        let mut parts = text.split('-');
        let (version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        let trace = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        Some(Self { trace, span })
    }
}

/// What a send carries: the sender's ids and, inside one process, its span and the API
/// caller it acts for ([`crate::Caller`]).
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// `None` for a link that only carries a caller (an API request outside any handler).
    pub(crate) context: Option<TraceContext>,
    /// The sending handler's span; `Span::none()` when the sender was in another process.
    pub(crate) span: tracing::Span,
    /// Who the chain acts for; it stays in this process.
    pub(crate) caller: Option<crate::Caller>,
}

impl Link {
    /// A link to a sender in another process.
    pub(crate) fn remote(context: TraceContext) -> Self {
        Self { context: Some(context), span: tracing::Span::none(), caller: None }
    }

    /// The current link (if any) acting for `caller` instead, or a link carrying `caller`
    /// alone.
    pub(crate) fn caller(caller: crate::Caller) -> Self {
        match current() {
            Some(link) => Self { caller: Some(caller), ..link },
            None => Self { context: None, span: tracing::Span::none(), caller: Some(caller) },
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Link>> = const { RefCell::new(None) };
}

/// How many threads have a current link now: while none has, a send does not look at its
/// thread's (one relaxed load instead of a thread-local access per envelope).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether any thread has a current link now (else none of them has: nothing to look up).
#[inline(always)]
pub(crate) fn any() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// The link of the handler running on this thread, if any.
#[inline]
pub(crate) fn current() -> Option<Link> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// The ids of the handler running on this thread, if any (what goes into a frame).
#[inline]
pub(crate) fn context() -> Option<TraceContext> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    CURRENT.try_with(|c| c.borrow().as_ref().and_then(|l| l.context)).ok().flatten()
}

/// The caller of the handler running on this thread, if any.
pub(crate) fn current_caller() -> Option<crate::Caller> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    CURRENT.try_with(|c| c.borrow().as_ref().and_then(|l| l.caller.clone())).ok().flatten()
}

/// Makes `link` the current one until the guard is dropped (then the previous one is back).
pub(crate) fn enter(link: Option<Link>) -> Entered {
    Entered { previous: swap(link) }
}

/// Makes `link` current, keeping [`ACTIVE`] in step; the previous one back.
fn swap(link: Option<Link>) -> Option<Link> {
    let some = link.is_some();
    CURRENT
        .try_with(|c| {
            let previous = std::mem::replace(&mut *c.borrow_mut(), link);
            match (previous.is_some(), some) {
                (false, true) => ACTIVE.fetch_add(1, Ordering::Relaxed),
                (true, false) => ACTIVE.fetch_sub(1, Ordering::Relaxed),
                _ => 0,
            };
            previous
        })
        .ok()
        .flatten()
}

/// The guard of [`enter`].
#[must_use]
pub(crate) struct Entered {
    previous: Option<Link>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        swap(self.previous.take());
    }
}

/// Runs `f` with `link` current (as [`enter`], but nothing is swapped when there is no link
/// anywhere: the common case of untraced events).
#[cfg(any(feature = "switch", feature = "nats"))]
pub(crate) fn within<T>(link: Option<Link>, f: impl FnOnce() -> T) -> T {
    if link.is_none() && !any() {
        return f();
    }
    let _entered = enter(link);
    f()
}

/// `future`, with `link` current during each of its polls.
pub(crate) fn scope<F: Future>(link: Option<Link>, future: F) -> Scoped<F> {
    Scoped { link, future }
}

pin_project_lite::pin_project! {
    /// The future of [`scope`].
    pub(crate) struct Scoped<F> {
        link: Option<Link>,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.link.is_none() && !any() {
            // No thread has a current link, so this one's is already none: nothing to swap.
            return this.future.poll(cx);
        }
        let _entered = enter(this.link.clone());
        this.future.poll(cx)
    }
}

/// The link of handling span `span` (enabled) of an event sent from `from`: records its ids
/// on the span.
pub(crate) fn handling(span: &tracing::Span, from: Option<&Link>) -> Link {
    let context = child_of(from);
    span.record("trace_id", tracing::field::display(format_args!("{:032x}", context.trace)));
    span.record("span_id", tracing::field::display(format_args!("{:016x}", context.span)));
    if let Some(from) = from.and_then(|l| l.context) {
        let parent = format_args!("{:016x}", from.span);
        span.record("parent_span_id", tracing::field::display(parent));
    }
    Link { context: Some(context), span: span.clone(), caller: from.and_then(|l| l.caller.clone()) }
}

/// The ids of a new handling span: the trace of `from` (or a new one) and a new span id.
pub(crate) fn child_of(from: Option<&Link>) -> TraceContext {
    let trace = from
        .and_then(|l| l.context)
        .map_or_else(|| u128::from(next()) << 64 | u128::from(next()), |context| context.trace);
    TraceContext { trace, span: next() }
}

/// A fresh non-zero 64-bit id: a counter from a random start, mixed (SplitMix64).
fn next() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap_or_default();
        u64::from_le_bytes(bytes) ^ u64::from(std::process::id())
    });
    let mut z = seed.wrapping_add(STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_refuses_garbage() {
        let c = TraceContext {
            trace: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
            span: 0xb7ad_6b71_6920_3331,
        };
        let text = c.traceparent();
        assert_eq!(text, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(TraceContext::from_traceparent(&text), Some(c));
        for bad in [
            "",
            "00",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-zz-yy-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_current_link_is_scoped() {
        assert!(current().is_none());
        let link = Link::remote(child_of(None));
        {
            let _outer = enter(Some(link.clone()));
            assert_eq!(context(), link.context);
            let inner = Link::remote(child_of(Some(&link)));
            let (outer_ids, inner_ids) = (link.context.unwrap(), inner.context.unwrap());
            assert_eq!(inner_ids.trace, outer_ids.trace);
            assert_ne!(inner_ids.span, outer_ids.span);
            {
                let _inner = enter(Some(inner.clone()));
                assert_eq!(context(), inner.context);
            }
            assert_eq!(context(), link.context);
        }
        assert!(current().is_none());
    }

    #[test]
    fn a_caller_keeps_the_trace_and_reaches_children() {
        let alice = crate::Caller::new("alice");
        let only = Link::caller(alice.clone());
        assert!(only.context.is_none());
        {
            let _only = enter(Some(only));
            assert_eq!(context(), None);
            assert_eq!(current_caller().as_ref(), Some(&alice));
        }
        let traced = Link::remote(child_of(None));
        let _traced = enter(Some(traced.clone()));
        let both = Link::caller(alice.clone());
        assert_eq!(both.context, traced.context);
        let child = handling(&tracing::Span::none(), Some(&both));
        assert_eq!(child.caller, Some(alice));
        assert_eq!(child.context.unwrap().trace, traced.context.unwrap().trace);
    }
}
