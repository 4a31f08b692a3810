use edri::prelude::*;

#[event(notification)]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Uploaded {
    pub path: String,
}

fn main() {}
