use edri::prelude::*;

#[manager]
#[derive(Default)]
pub struct Clock;

fn main() {}
