use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[event(notification)]
pub struct Tock;

#[derive(Default)]
pub struct Clock;

#[manager]
impl Clock {
    #[solve]
    fn tick(&mut self, _: &Tick) {}
}

#[manager]
impl Clock {
    #[solve]
    fn tock(&mut self, _: &Tock) {}
}

fn main() {}
