use edri::prelude::*;

#[event(request)]
pub struct Divide {
    pub a: f64,
    pub b: f64,
    #[response]
    pub quotient: f64,
}

#[derive(Default)]
pub struct Calc;

#[manager]
impl Calc {
    #[solve]
    fn divide(&mut self, ev: &Divide) -> String {
        format!("{}", ev.a / ev.b)
    }
}

fn main() {}
