use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[derive(Default)]
pub struct Clock;

#[manager(capacity = 16, capacity = 32)]
impl Clock {
    #[solve]
    fn tick(&mut self, _: &Tick) {}
}

fn main() {}
