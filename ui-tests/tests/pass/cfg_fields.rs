//! `#[cfg]` on event fields reaches everything `#[event]` generates from them: a field left
//! out (`#[cfg(any())]`, never set) is out of the field list, the fingerprint and the JSON
//! schema, and its type (itself cfg-gated) is never named; the same event with the field in
//! (`#[cfg(all())]`, always set) has it everywhere, and another fingerprint. Both are declared
//! by one `macro_rules!`, which hands the predicate to `cfg` and `cfg_attr` as a `meta`.

use edri::prelude::*;

macro_rules! events {
    ($module:ident, $keep:meta) => {
        mod $module {
            use edri::prelude::*;

            #[cfg($keep)]
            #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
            pub struct Gated(pub u8);

            /// A request with a gated field and a gated response field.
            #[event(request, name = "cfg.Lookup", http = "GET /lookup/{key}", ws)]
            #[derive(Debug, Clone)]
            pub struct Lookup {
                pub key: String,
                #[cfg($keep)]
                pub extra: Gated,
                #[response]
                pub found: bool,
                #[cfg($keep)]
                #[response]
                pub detail: Gated,
            }

            /// A notification with a gated field, and one gated through `cfg_attr`.
            #[event(notification, name = "cfg.Seen", ws)]
            #[derive(Debug, Clone)]
            pub struct Seen {
                pub what: String,
                #[cfg($keep)]
                pub gated: Gated,
                #[cfg_attr(not($keep), cfg(any()))]
                pub also_gated: Gated,
            }
        }
    };
}

events!(off, any());
events!(on, all());

fn names(meta: &edri::EventMeta) -> Vec<&'static str> {
    meta.fields.iter().map(|f| f.name).collect()
}

fn main() {
    // The structs as the build sees them.
    let _ = off::Lookup { key: String::new() };
    let _ = off::LookupResponse { found: true };
    let _ = off::Seen { what: String::new() };
    let _ = on::Lookup { key: String::new(), extra: on::Gated(1) };
    let _ = on::LookupResponse { found: true, detail: on::Gated(2) };
    let _ = on::Seen { what: String::new(), gated: on::Gated(3), also_gated: on::Gated(4) };

    let (lookup_off, lookup_on) = (off::Lookup::META, on::Lookup::META);
    assert_eq!(names(lookup_off), ["key", "found"]);
    assert_eq!(names(lookup_on), ["key", "extra", "found", "detail"]);
    assert_ne!(lookup_off.fingerprint, lookup_on.fingerprint);
    let (seen_off, seen_on) = (off::Seen::META, on::Seen::META);
    assert_eq!(names(seen_off), ["what"]);
    assert_eq!(names(seen_on), ["what", "gated", "also_gated"]);
    assert_ne!(seen_off.fingerprint, seen_on.fingerprint);
}
