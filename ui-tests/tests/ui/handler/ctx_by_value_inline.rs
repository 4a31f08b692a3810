use edri::prelude::*;

#[event(request)]
pub struct Checksum {
    pub data: Vec<u8>,
    #[response]
    pub sum: u64,
}

#[event(notification)]
pub struct Uploaded {
    pub path: String,
}

#[derive(Default)]
pub struct Files;

#[manager]
impl Files {
    #[solve]
    fn uploaded(&mut self, ev: &Uploaded, ctx: Ctx) {
        let _ = (ev, ctx);
    }
}

fn main() {}
