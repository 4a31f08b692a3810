use edri::prelude::*;

#[event(notification)]
pub struct Uploaded {
    pub path: String,
    #[response]
    pub size: u64,
}

fn main() {}
