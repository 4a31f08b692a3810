use edri::prelude::*;

#[event(reqest)]
pub struct Ping;

fn main() {}
