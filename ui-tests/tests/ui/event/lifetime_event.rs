use edri::prelude::*;

#[event(notification)]
pub struct Borrowed<'a> {
    pub path: &'a str,
}

fn main() {}
