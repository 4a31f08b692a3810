// Every mistake of one impl block is reported in the same build.
use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[event(request)]
pub struct Ping;

#[event(notification)]
pub struct Pong;

#[event(notification)]
pub struct Tock;

#[derive(Default)]
pub struct Clock;

#[manager]
impl Clock {
    #[solve(thread)]
    fn tick(&self, _: Tick) {}

    #[solve(limit = 2)]
    fn ping(&mut self, _: &Ping) -> PingResponse {
        PingResponse
    }

    #[solve]
    fn generic<T>(&mut self, _: &Tock) {}

    #[solve(thred)]
    fn pong(&mut self, _: &Pong) {}
}

fn main() {}
