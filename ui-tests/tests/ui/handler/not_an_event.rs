use edri::prelude::*;

#[derive(Default)]
pub struct Calc;

#[manager]
impl Calc {
    #[solve]
    fn handle(&mut self, ev: &String) -> Result<(), Failure> {
        let _ = ev;
        Ok(())
    }
}

fn main() {}
