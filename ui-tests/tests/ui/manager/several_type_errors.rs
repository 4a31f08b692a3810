// Type errors of several handlers of one impl block are reported in the same build.
use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[event(request)]
pub struct Ping;

#[derive(Default)]
pub struct Clock;

#[manager]
impl Clock {
    #[solve]
    fn tick(&mut self, _: &Tick) -> u32 {
        0
    }

    #[solve]
    fn ping(&mut self, _: &Ping) -> String {
        String::new()
    }

    #[solve]
    fn count(&mut self, _: &u32) {}
}

fn main() {}
