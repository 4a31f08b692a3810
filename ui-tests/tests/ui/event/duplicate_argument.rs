use edri::prelude::*;

#[event(request, name = "ping", name = "pong")]
pub struct Ping;

fn main() {}
