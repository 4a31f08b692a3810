//! A router built with one event defined differently from the conformance suite's routers:
//! the suite starts this binary as a router and checks that it is refused (its case
//! `fingerprint_mismatch_refused`). Run by itself, it does nothing.

#![allow(missing_docs)]

mod support;

use edri::prelude::*;
use support::nats::NatsTransport;
use support::switch::SwitchTransport;

/// `conformance/routing.rs` declares `Drifted { n: u64 }`.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Drifted {
    pub n: u64,
    pub unit: String,
}

fn main() {
    support::run(&[&SwitchTransport, &NatsTransport], &[]);
}
