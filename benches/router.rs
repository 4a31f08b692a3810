//! Placeholder replaced by the router benches.
fn main() {}
