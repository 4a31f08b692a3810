use edri::prelude::*;

#[event(notification, name = "")]
pub struct Tick;

fn main() {}
