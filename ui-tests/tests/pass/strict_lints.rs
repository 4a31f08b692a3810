//! All three macros under strict lints: their expansions add no warning of any kind.

#![deny(
    warnings,
    missing_docs,
    unsafe_code,
    unused,
    rust_2018_idioms,
    unreachable_pub,
    missing_debug_implementations,
    trivial_casts,
    trivial_numeric_casts,
    unused_qualifications,
    unused_results
)]

use edri::prelude::*;

/// Something happened.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Happened {
    /// What.
    pub what: String,
}

/// A question with a generated answer.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Ask {
    /// The question.
    pub question: String,
    /// The answer.
    #[response]
    pub answer: usize,
}

/// A request with no `#[response]` field: its response is an acknowledgement.
#[event(request, name = "strict.Ack", priority = 1, local)]
#[derive(Debug, Clone, Copy)]
pub struct Ack;

/// A REST and WebSocket request with an optional and a defaulted field.
#[event(request, http = "GET /strict/{id}", ws)]
#[derive(Debug, Clone)]
pub struct Lookup {
    /// From the path.
    pub id: u64,
    /// From the query, optional.
    pub verbose: Option<bool>,
    /// Defaulted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The answer.
    #[response]
    pub found: bool,
}

/// A notification pushed to WebSocket clients.
#[event(notification, ws)]
#[derive(Debug, Clone, Copy)]
pub struct Pushed;

/// A tunnel.
#[event(tunnel, send = u8, receive = u8)]
#[derive(Debug)]
pub struct Stream;

/// The manager.
#[derive(Debug, Default)]
pub struct Oracle {
    happened: usize,
}

#[manager(queue = fifo, capacity = 16, name = "strict.Oracle")]
impl Oracle {
    /// Counts what happened.
    #[solve]
    async fn happened(&mut self, ev: &Happened, ctx: &Ctx) {
        let _ = ctx;
        self.happened += ev.what.len();
    }

    /// Answers.
    #[solve]
    fn ask(&self, ev: Ask) -> Result<AskResponse, Failure> {
        Ok(AskResponse { answer: ev.question.len() + self.happened })
    }

    /// Acknowledges, on a thread.
    #[solve(thread, limit = 1)]
    fn ack(_ev: Ack, _ctx: Ctx) -> AckResponse {
        AckResponse
    }
}

#[edri::main(flavor = "current_thread")]
async fn main() -> edri::Result<()> {
    let running = Edri::builder().only_explicit().manager(Oracle::default()).start().await?;
    let ctx = running.ctx();
    ctx.notify(Happened { what: "abc".into() }).await.expect("the oracle is subscribed");
    let answer = ctx.request(Ask { question: "why".into() }).await.expect("the oracle answers");
    assert_eq!(answer.answer, 6);
    let AckResponse = ctx.request(Ack).await.expect("the oracle acknowledges");
    assert_eq!(<Stream as Event>::META.name, "Stream");
    running.shutdown().await
}
