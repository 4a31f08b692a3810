use edri::prelude::*;

#[event(notification)]
pub struct Uploaded {
    pub path: String,
}

#[derive(Default)]
pub struct Files;

#[manager]
impl Files {
    // `fmt::Result` is `Result<(), fmt::Error>`, and `fmt::Error` is no `Failure`.
    #[solve]
    fn uploaded(&mut self, ev: &Uploaded) -> std::fmt::Result {
        let _ = ev;
        Ok(())
    }
}

fn main() {}
