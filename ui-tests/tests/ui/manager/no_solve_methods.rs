use edri::prelude::*;

#[derive(Default)]
pub struct Idle;

#[manager]
impl Idle {
    fn helper(&self) {}
}

fn main() {}
