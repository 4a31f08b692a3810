use edri::prelude::*;

#[event(notification)]
pub struct Wrapped<T> {
    pub inner: T,
}

fn main() {}
