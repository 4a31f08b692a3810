use edri::prelude::*;

#[event(notification, ws)]
pub struct Temperature(pub f64);

fn main() {}
