use edri::prelude::*;

#[event(tunnel, send = Vec<u8>)]
pub struct Convert {
    pub to: String,
}

fn main() {}
