use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[derive(Default)]
pub struct Clock;

#[manager(queue = fifo, capcity = 16)]
impl Clock {
    #[solve]
    fn tick(&mut self, _: &Tick) {}
}

fn main() {}
