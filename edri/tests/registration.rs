#![allow(missing_docs)]
//! Registration and start-up errors, each naming what collided and where.

use edri::StartError;
use edri::prelude::*;

#[event(request)]
pub struct Ping;

#[derive(Default)]
pub struct PingA;

#[manager(manual)]
impl PingA {
    #[solve]
    fn ping(&mut self, _: &Ping) -> PingResponse {
        PingResponse
    }
}

#[derive(Default)]
pub struct PingB;

#[manager(manual)]
impl PingB {
    #[solve]
    fn ping(&mut self, _: &Ping) -> PingResponse {
        PingResponse
    }
}

/// No `Default`: must be given an instance.
pub struct NeedsConfig {
    pub answer: u32,
}

#[event(request)]
pub struct Answer {
    #[response]
    pub value: u32,
}

#[manager]
impl NeedsConfig {
    #[solve]
    fn answer(&mut self, _: &Answer) -> AnswerResponse {
        AnswerResponse { value: self.answer }
    }
}

/// Same manager name as `PingA`.
#[derive(Default)]
pub struct Impostor;

#[manager(name = "PingA", manual)]
impl Impostor {
    #[solve]
    fn ping(&mut self, _: &Ping) -> PingResponse {
        PingResponse
    }
}

fn start_error(e: edri::Error) -> StartError {
    match e {
        edri::Error::Start(s) => s,
        other => panic!("expected a start error, got {other}"),
    }
}

#[tokio::test]
async fn two_responders_for_one_request_name_both_locations() {
    let err =
        Edri::builder().only_explicit().manager(PingA).manager(PingB).start().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(start_error(err), StartError::DuplicateResponder { event: "Ping", .. }));
    assert!(text.contains("PingA::ping") && text.contains("PingB::ping"), "{text}");
    assert!(text.matches("registration.rs:").count() == 2, "{text}");
    // Each location is its handler method's own line, not the `#[manager]` line.
    let lines: Vec<&str> =
        text.split("registration.rs:").skip(1).map(|s| s.split(')').next().unwrap()).collect();
    assert_ne!(lines[0], lines[1], "{text}");
}

#[tokio::test]
async fn no_managers_is_a_loud_error() {
    let err = Edri::builder().only_explicit().start().await.unwrap_err();
    assert!(err.to_string().contains("use that_crate as _"), "{err}");
    assert!(matches!(start_error(err), StartError::NoManagers { .. }));
}

#[tokio::test]
async fn a_manager_without_default_needs_an_instance() {
    let err = Edri::builder().start().await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(start_error(err), StartError::NoInstance { manager: "NeedsConfig", .. }),
        "{text}"
    );
    assert!(text.contains("registration.rs:"), "{text}");

    let running = Edri::builder().manager(NeedsConfig { answer: 42 }).start().await.unwrap();
    assert_eq!(running.ctx().request(Answer {}).await.unwrap().value, 42);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn manager_replaces_the_instance_of_its_type() {
    let running = Edri::builder()
        .only_explicit()
        .manager(NeedsConfig { answer: 1 })
        .manager(NeedsConfig { answer: 2 })
        .start()
        .await
        .unwrap();
    assert_eq!(running.managers(), ["NeedsConfig", "edri.health", "edri.scheduler", "edri.store"]);
    assert_eq!(running.ctx().request(Answer {}).await.unwrap().value, 2);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_managers_with_one_name_are_refused() {
    let err =
        Edri::builder().only_explicit().manager(PingA).manager(Impostor).start().await.unwrap_err();
    assert!(matches!(start_error(err), StartError::DuplicateManagerName { name: "PingA", .. }));
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    // The future is created inside a runtime-less context and polled by a runtime without a
    // handle lookup problem; `start` itself checks for the runtime.
    let err = rt.block_on(Edri::builder().only_explicit().manager(PingA).start());
    assert!(err.is_ok(), "inside block_on the runtime exists");
}
