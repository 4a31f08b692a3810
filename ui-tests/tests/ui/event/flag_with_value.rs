use edri::prelude::*;

#[event(notification, local = true)]
pub struct Tick;

fn main() {}
