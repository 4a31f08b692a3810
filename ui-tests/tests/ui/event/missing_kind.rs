use edri::prelude::*;

#[event(name = "ping")]
pub struct Ping;

fn main() {}
