//! The macros' expansions under strict lints: CI's `cargo clippy --all-targets -D warnings`
//! compiles this file with `clippy::pedantic` denied, so generated code that trips a pedantic
//! lint fails the build. The handlers cover every shape; the test itself only starts and stops.
#![deny(clippy::pedantic, missing_docs, unsafe_code, unused, rust_2018_idioms)]

use edri::prelude::*;

/// A notification.
#[event(notification, name = "lints.tick", priority = 2, ws)]
#[derive(Debug, Clone)]
pub struct Tick {
    /// A counter.
    pub n: u64,
}

/// A request with generated response.
#[event(request, http = "GET /lints/{key}")]
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The key.
    pub key: String,
    /// The value.
    #[response]
    pub value: Option<String>,
}

/// A request answered with an existing type.
#[event(request, response = Vec<u64>, local)]
#[derive(Debug, Clone)]
pub struct History;

/// A request answered in a worker thread.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Crunch {
    /// Input.
    pub data: Vec<u8>,
    /// Output.
    #[response]
    pub sum: u64,
}

/// A request answered in a worker process (not started here).
#[event(request)]
#[derive(Debug, Clone)]
pub struct Isolate {
    /// Input.
    pub x: u32,
}

/// A tunnel declaration.
#[event(tunnel, send = Vec<u8>, receive = Vec<u8>)]
#[derive(Debug, Clone)]
pub struct Pipe;

/// Every inline shape.
#[derive(Default)]
pub struct Shapes {
    seen: Vec<u64>,
}

#[manager(capacity = 16, name = "lints.shapes")]
impl Shapes {
    #[solve]
    fn tick(&mut self, ev: &Tick) {
        self.seen.push(ev.n);
    }

    #[solve]
    async fn lookup(&self, ev: Lookup, ctx: &Ctx) -> Result<LookupResponse, Failure> {
        ctx.notify(Tick { n: 0 }).await?;
        Ok(LookupResponse { value: self.seen.first().map(|n| format!("{}={n}", ev.key)) })
    }

    #[solve]
    fn history(&self, _: &History) -> Vec<u64> {
        self.seen.clone()
    }
}

/// Worker shapes.
#[derive(Default)]
pub struct Workers;

#[manager(queue = priority, manual)]
impl Workers {
    #[solve(thread, limit = 2)]
    fn crunch(ev: Crunch, ctx: Ctx) -> CrunchResponse {
        let _ = ctx.is_stopping();
        CrunchResponse { sum: ev.data.iter().map(|b| u64::from(*b)).sum() }
    }

    #[solve(process)]
    fn isolate(ev: Isolate) -> Result<IsolateResponse, Failure> {
        if ev.x == 0 { Err(Failure::invalid("zero")) } else { Ok(IsolateResponse) }
    }
}

#[tokio::test]
async fn strict_lints_compile_and_run() {
    let running = Edri::builder().only_explicit().manager(Shapes::default()).start().await.unwrap();
    let answer = running.ctx().request(Lookup { key: "k".into() }).await.unwrap();
    assert!(answer.value.is_none() || answer.value.is_some());
    assert!(running.ctx().request(History).await.is_ok());
    running.shutdown().await.unwrap();
}
