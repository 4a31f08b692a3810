//! Helpers shared by the pass cases: events declared in another crate than the one that handles
//! them (`tests/pass/foreign_event.rs`).

use edri::prelude::*;

/// A notification declared in this library and handled in a pass case.
#[event(notification, name = "ui_tests.Counted")]
#[derive(Debug, Clone)]
pub struct Counted {
    /// How much to add.
    pub by: u64,
}

/// A request declared in this library: its response, `TotalResponse`, is generated here too.
#[event(request, name = "ui_tests.Total")]
#[derive(Debug, Clone)]
pub struct Total {
    /// The running total, filled in by the responder.
    #[response]
    pub total: u64,
}

/// A request whose response is an existing type of this library.
#[event(request, response = Summary)]
#[derive(Debug, Clone)]
pub struct Summarize;

/// The response to [`Summarize`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// How many notifications were counted.
    pub seen: u64,
}
