use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[derive(Default)]
pub struct Clock;

#[manager(queue = lifo)]
impl Clock {
    #[solve]
    fn tick(&mut self, _: &Tick) {}
}

fn main() {}
