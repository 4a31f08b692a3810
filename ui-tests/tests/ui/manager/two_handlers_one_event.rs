use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[derive(Default)]
pub struct Clock;

#[manager]
impl Clock {
    #[solve]
    fn tick(&mut self, _: &Tick) {}

    #[solve]
    fn tock(&self, _: Tick) {}
}

fn main() {}
