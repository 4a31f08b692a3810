// A process-mode acceptor owns its context, as every process handler does.
use edri::Chunk;
use edri::prelude::*;

#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert;

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve(process)]
    fn convert(ev: Convert, opening: Opening<Convert>, ctx: &Ctx) {
        let _ = (ev, opening.accept(), ctx);
    }
}

fn main() {}
