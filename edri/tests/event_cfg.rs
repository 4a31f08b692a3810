#![allow(missing_docs)]
//! `#[cfg]` on event fields reaches the fingerprint: a build that leaves a field out has the
//! fingerprint of the event declared without it, a build that keeps it the fingerprint of the
//! event declared with it, so routers built with different features refuse each other's
//! layout.

use edri::prelude::*;

mod with_field {
    use edri::prelude::*;

    #[event(request, name = "cfg.Order", ws)]
    pub struct Order {
        pub id: u64,
        pub note: String,
        #[response]
        pub accepted: bool,
        #[response]
        pub reason: String,
    }
}

mod without_field {
    use edri::prelude::*;

    #[event(request, name = "cfg.Order", ws)]
    pub struct Order {
        pub id: u64,
        #[response]
        pub accepted: bool,
    }
}

/// In a test build, `cfg(test)` holds: the fields are in.
mod cfg_on {
    use edri::prelude::*;

    #[event(request, name = "cfg.Order", ws)]
    pub struct Order {
        pub id: u64,
        #[cfg(test)]
        pub note: String,
        #[response]
        pub accepted: bool,
        #[cfg_attr(not(test), cfg(not(test)))]
        #[response]
        pub reason: String,
    }
}

/// In a test build, `cfg(not(test))` does not hold: the fields are out.
mod cfg_off {
    use edri::prelude::*;

    #[event(request, name = "cfg.Order", ws)]
    pub struct Order {
        pub id: u64,
        #[cfg(not(test))]
        pub note: String,
        #[response]
        pub accepted: bool,
        #[cfg_attr(test, cfg(not(test)))]
        #[response]
        pub reason: String,
    }
}

#[test]
fn a_cfg_gated_field_is_in_the_fingerprint_only_when_present() {
    let [on, off, with, without] = [
        cfg_on::Order::META,
        cfg_off::Order::META,
        with_field::Order::META,
        without_field::Order::META,
    ];
    assert_ne!(on.fingerprint, off.fingerprint);
    assert_eq!(on.fingerprint, with.fingerprint);
    assert_eq!(off.fingerprint, without.fingerprint);
    assert_eq!(on.fields, with.fields);
    assert_eq!(off.fields, without.fields);
    assert_eq!(off.fields.iter().map(|f| f.name).collect::<Vec<_>>(), ["id", "accepted"]);
}
