use edri::prelude::*;

#[event(request, notification)]
pub struct Ping;

fn main() {}
