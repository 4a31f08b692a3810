use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

pub struct Busy;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    async fn convert(&mut self, _: Convert, opening: Opening<Convert>) -> Result<(), Busy> {
        let _ = opening;
        Err(Busy)
    }
}

fn main() {}
