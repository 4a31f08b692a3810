use edri::prelude::*;

#[event(notification)]
pub struct Tick;

#[derive(Default)]
pub struct Clock<T>(T);

#[manager]
impl<T: Send + 'static> Clock<T> {
    #[solve]
    fn tick(&mut self, _: &Tick) {}
}

fn main() {}
