use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert, ctx: &Ctx, opening: Opening<Convert>) {
        let _ = (ev, ctx, opening.accept());
    }
}

fn main() {}
