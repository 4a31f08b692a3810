use edri::prelude::*;

#[event(notification, priority = 256)]
pub struct Tick;

fn main() {}
