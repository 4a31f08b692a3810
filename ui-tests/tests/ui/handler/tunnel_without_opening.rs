// PENDING (not run): should fail to compile, compiles today. DESIGN.md section 3: "a tunnel
// handler takes `Opening<ThatEvent>`"; a handler of a tunnel event without it should be one
// error on `Convert` (or on the method). Move to `tests/ui/handler/` once the macro rejects it.
use edri::prelude::*;

#[event(tunnel, send = Vec<u8>, receive = Vec<u8>)]
pub struct Convert {
    pub to: String,
}

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert) {
        let _ = ev;
    }
}

fn main() {}
