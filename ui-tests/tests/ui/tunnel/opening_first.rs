use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, opening: Opening<Convert>, ctx: &Ctx) {
        let _ = (opening.accept(), ctx);
    }
}

fn main() {}
