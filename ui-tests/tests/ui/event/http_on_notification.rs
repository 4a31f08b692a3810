use edri::prelude::*;

#[event(notification, http = "POST /uploads")]
pub struct Uploaded {
    pub path: String,
}

fn main() {}
