//! Helpers shared by pass cases: an event declared in another crate.
