use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert, opening: Opening<Convert>, ctx: &Ctx, retries: u32) {
        let _ = (ev, opening.accept(), ctx, retries);
    }
}

fn main() {}
