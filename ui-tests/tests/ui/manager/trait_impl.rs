use edri::prelude::*;

#[event(notification)]
pub struct Tick;

pub trait Clocked {
    fn tick(&mut self, ev: &Tick);
}

#[derive(Default)]
pub struct Clock;

#[manager]
impl Clocked for Clock {
    #[solve]
    fn tick(&mut self, _: &Tick) {}
}

fn main() {}
