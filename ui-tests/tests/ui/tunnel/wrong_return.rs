use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, _: &Convert, opening: Opening<Convert>) -> u32 {
        let _ = opening.accept();
        0
    }
}

fn main() {}
