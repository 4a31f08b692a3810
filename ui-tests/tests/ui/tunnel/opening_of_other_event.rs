use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Compress;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert, opening: Opening<Compress>, ctx: &Ctx) {
        let _ = (ev, opening.accept(), ctx);
    }
}

fn main() {}
