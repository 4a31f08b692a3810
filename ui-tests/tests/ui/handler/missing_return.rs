use edri::prelude::*;

#[event(request)]
pub struct Ping;

#[derive(Default)]
pub struct Pong;

#[manager]
impl Pong {
    #[solve]
    fn ping(&mut self, _: &Ping) {}
}

fn main() {}
