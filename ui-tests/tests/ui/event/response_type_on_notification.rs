use edri::prelude::*;

pub struct Listing;

#[event(notification, response = Listing)]
pub struct Uploaded {
    pub path: String,
}

fn main() {}
