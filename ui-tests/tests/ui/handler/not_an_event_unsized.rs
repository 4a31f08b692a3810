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
    fn checksum(&mut self, ev: &str) {
        let _ = ev;
    }
}

fn main() {}
