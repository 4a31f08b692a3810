use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert, opening: &Opening<Convert>, ctx: &Ctx) {
        let _ = (ev, opening.window(), ctx);
    }
}

fn main() {}
