use edri::prelude::*;

#[event(notification)]
pub enum Shape {
    Circle,
    Square,
}

fn main() {}
