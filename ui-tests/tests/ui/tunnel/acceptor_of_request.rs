use edri::prelude::*;

#[event(request)]
pub struct Lookup {
    pub key: String,
    #[response]
    pub value: String,
}

#[derive(Default)]
pub struct Lookups;

#[manager]
impl Lookups {
    #[solve]
    fn lookup(&mut self, ev: Lookup, opening: Opening<Lookup>) -> LookupResponse {
        let _ = opening;
        LookupResponse { value: ev.key }
    }
}

fn main() {}
