use edri::prelude::*;

#[event(request, send = Vec<u8>)]
pub struct Convert {
    pub to: String,
}

fn main() {}
