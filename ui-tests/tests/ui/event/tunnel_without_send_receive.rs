use edri::prelude::*;

#[event(tunnel)]
pub struct Convert {
    pub to: String,
}

fn main() {}
