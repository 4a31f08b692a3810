use edri::prelude::*;

#[event(notification)]
pub struct Chunk {
    pub bytes: Vec<u8>,
}

#[event(tunnel, send = Chunk, receive = Chunk, ws)]
pub struct Convert {
    pub to: String,
}

fn main() {}
