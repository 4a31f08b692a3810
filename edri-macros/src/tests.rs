//! Snapshots of the expansions (`cargo insta review` after a deliberate change), plus the
//! error messages of the checks that need no compiler.

use crate::ctxt::Errors;
use crate::{expand, model};
use proc_macro2::TokenStream;
use quote::quote;

fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("expansion parses as a file");
    prettyplease::unparse(&file)
}

fn event(args: TokenStream, item: TokenStream) -> String {
    let mut errors = Errors::default();
    let def = model::EventDef::parse(args, syn::parse2(item).unwrap(), &mut errors).unwrap();
    errors.finish().unwrap();
    pretty(expand::event::expand(&def))
}

fn event_errors(args: TokenStream, item: TokenStream) -> String {
    let mut errors = Errors::default();
    let _ = model::EventDef::parse(args, syn::parse2(item).unwrap(), &mut errors);
    errors.finish().unwrap_err().into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

fn manager(args: TokenStream, item: TokenStream) -> String {
    let mut errors = Errors::default();
    let def = model::ManagerDef::parse(args, syn::parse2(item).unwrap(), &mut errors);
    errors.finish().unwrap();
    pretty(expand::manager::expand(&def))
}

fn manager_errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let mut errors = Errors::default();
    let _ = model::ManagerDef::parse(args, syn::parse2(item).unwrap(), &mut errors);
    errors.finish().unwrap_err().into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn request_with_response_fields() {
    insta::assert_snapshot!(event(
        quote!(request),
        quote! {
            #[derive(Debug, Clone)]
            pub struct Divide {
                pub a: f64,
                pub b: f64,
                /// The answer.
                #[response]
                pub quotient: f64,
            }
        }
    ));
}

#[test]
fn notification_with_arguments() {
    insta::assert_snapshot!(event(
        quote!(notification, name = "files.uploaded", priority = 3, ws, local),
        quote! { pub struct FileUploaded { pub path: String, pub size: u64 } }
    ));
}

#[test]
fn request_with_response_type_and_route() {
    insta::assert_snapshot!(event(
        quote!(request, response = Listing, http = "GET /files/{dir}", crate = my_edri),
        quote! { pub(crate) struct ListDir { pub dir: String } }
    ));
}

#[test]
fn tunnel() {
    insta::assert_snapshot!(event(
        quote!(tunnel, send = Chunk, receive = Chunk),
        quote! { pub struct Convert(pub Format); }
    ));
}

#[test]
fn manager_with_every_handler_shape() {
    insta::assert_snapshot!(manager(
        quote!(capacity = 64, name = "calculator"),
        quote! {
            impl Calc {
                #[solve]
                fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> { todo!() }
                #[solve]
                async fn uploaded(&self, ev: FileUploaded, ctx: &Ctx) { }
                #[solve(thread, limit = 4)]
                fn checksum(ev: Checksum, ctx: Ctx) -> ChecksumResponse { todo!() }
                #[solve(process, limit = 2)]
                fn transcode(ev: Transcode) -> Result<TranscodeResponse, Failure> { todo!() }
                #[solve]
                fn convert(&mut self, ev: &Convert, opening: Opening<Convert>, ctx: &Ctx) { }
                #[solve(process)]
                fn compress(ev: Compress, opening: Opening<Compress>, ctx: Ctx) -> Result<(), Failure> { todo!() }
                fn helper(&self) {}
            }
        }
    ));
}

/// The manager of the README's tour, whose expansion the docs of `#[manager]` show.
#[test]
fn manager_of_the_tour() {
    insta::assert_snapshot!(manager(
        quote!(),
        quote! {
            impl Calc {
                #[solve]
                fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> { todo!() }
                #[solve]
                async fn uploaded(&mut self, ev: &FileUploaded, ctx: &Ctx) { }
            }
        }
    ));
}

#[test]
fn fingerprint_changes_with_field_types() {
    let a = event(quote!(notification), quote! { pub struct E { pub x: u32 } });
    let b = event(quote!(notification), quote! { pub struct E { pub x: u64 } });
    let fp =
        |s: &str| s.lines().skip_while(|l| !l.contains("fingerprint")).nth(1).unwrap().to_owned();
    assert_ne!(fp(&a), fp(&b));
}

/// Every piece generated from a field carries the field's `cfg`: its entry in the field list,
/// its piece of the fingerprint, its schema (which names its type); `cfg_attr(c, cfg(p))`
/// becomes `cfg(any(not(c), p))`, other attributes stay out.
#[test]
fn cfg_on_fields_reaches_everything_generated_from_them() {
    let text = event(
        quote!(request, ws),
        quote! {
            pub struct Lookup {
                pub key: String,
                #[cfg(feature = "extra")]
                pub extra: Extra,
                #[cfg_attr(test, cfg(unix), allow(dead_code))]
                #[doc = "kept"]
                pub other: u8,
                #[response]
                pub found: bool,
                #[cfg(feature = "extra")]
                #[response]
                pub detail: Extra,
            }
        },
    );
    insta::assert_snapshot!(text);
    let gated = "#[cfg(feature = \"extra\")]";
    // The struct, the response struct, two field-list entries, two fingerprint pieces, two
    // schemas.
    assert_eq!(text.matches(gated).count(), 8, "{text}");
    assert_eq!(text.matches("#[cfg(any(not(test), unix))]").count(), 3, "{text}");
    assert!(!text.contains("cfg(allow"), "{text}");
}

#[test]
fn event_argument_errors_list_the_valid_ones() {
    let text = event_errors(quote!(reqest), quote! { pub struct E; });
    assert!(text.contains("unknown edri event argument `reqest`"), "{text}");
    assert!(text.contains("did you mean `request`?"), "{text}");
    assert!(text.contains("`notification`, `request`, `tunnel`"), "{text}");
    let text = event_errors(quote!(request, request), quote! { pub struct E; });
    assert!(text.contains("exactly one kind"), "{text}");
    let text = event_errors(quote!(notification, http = "GET /x"), quote! { pub struct E; });
    assert!(text.contains("routes are for requests"), "{text}");
    let text = event_errors(
        quote!(request, http = "GET /x/{nope}"),
        quote! { pub struct E { pub id: u32 } },
    );
    assert!(text.contains("`{nope}` is not a field of `E`"), "{text}");
    let text = event_errors(quote!(request, http = "FETCH /x"), quote! { pub struct E; });
    assert!(text.contains("unknown HTTP method `FETCH`"), "{text}");
}

/// What an argument error leaves of an event: the expansion of the parts that parsed, with the
/// misspelled kind read as the kind it is closest to, the serde derive given by hand taken out
/// and the `#[response]` field moved to the response struct.
#[test]
fn event_with_argument_errors_still_expands_what_parsed() {
    let mut errors = Errors::default();
    let item = quote! {
        #[derive(Debug, serde::Serialize)]
        pub struct PlaceOrder {
            pub order_id: u64,
            #[response]
            pub accepted: bool,
        }
    };
    let args = quote!(reqest, htp = "POST /orders");
    let def = model::EventDef::parse(args, syn::parse2(item).unwrap(), &mut errors).unwrap();
    assert_eq!(errors.finish().unwrap_err().into_iter().count(), 3);
    assert_eq!(def.kind, model::Kind::Request);
    let out = pretty(expand::event::expand(&def));
    assert!(
        out.contains("#[derive(Debug)]\n")
            && out.contains("pub struct PlaceOrder {\n    pub order_id: u64,\n}"),
        "{out}"
    );
    assert!(out.contains("pub struct PlaceOrderResponse {\n    pub accepted: bool,\n}"), "{out}");
    assert!(out.contains("impl ::edri::__private::Request for PlaceOrder {}"), "{out}");
    assert!(out.contains("The `#[response]` field `accepted` is not part of this request: it is in [`PlaceOrderResponse`]"), "{out}");
}

#[test]
fn all_errors_of_one_impl_block_are_reported_together() {
    let errors = manager_errors(
        quote!(),
        quote! {
            impl M {
                #[solve]
                fn a<T>(&mut self, ev: &T) {}
                #[solve(thread)]
                fn b(&self, ev: B) {}
                #[solve(bogus)]
                fn c(&mut self, ev: &C) {}
            }
        },
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].contains("cannot be generic"));
    assert!(errors[1].contains("thread handlers take no `self`"));
    assert!(errors[2].contains("unknown edri solve argument `bogus`"));
}

/// `examples/quickstart-expanded.rs` is `examples/quickstart.rs` with EDRI's macros expanded
/// (other macros, such as serde's derives and `inventory::submit!`, are left as written). It
/// must stay current: regenerate with `EDRI_BLESS=1 cargo test -p edri-macros`.
#[test]
fn quickstart_expansion_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let source = std::fs::read_to_string(root.join("quickstart.rs")).unwrap();
    let mut file: syn::File = syn::parse_str(&source).unwrap();
    let mut items = Vec::new();
    for item in std::mem::take(&mut file.items) {
        items.extend(expand_item(item));
    }
    file.items = items;
    let header = "// Generated from quickstart.rs by `EDRI_BLESS=1 cargo test -p edri-macros`: what\n\
                  // #[event], #[manager] and #[edri::main] expand to (serde's derives and\n\
                  // `inventory::submit!` are left unexpanded). Not compiled; for reading.\n\n";
    let expanded = format!("{header}{}", prettyplease::unparse(&file));
    let path = root.join("quickstart-expanded.rs");
    if std::env::var_os("EDRI_BLESS").is_some() {
        std::fs::write(&path, &expanded).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expanded,
        "{} is stale: run `EDRI_BLESS=1 cargo test -p edri-macros`",
        path.display()
    );
}

fn expand_item(mut item: syn::Item) -> Vec<syn::Item> {
    fn take_attr(attrs: &mut Vec<syn::Attribute>, name: &str) -> Option<TokenStream> {
        let i =
            attrs.iter().position(|a| a.path().segments.last().is_some_and(|s| s.ident == name))?;
        let attr = attrs.remove(i);
        Some(match attr.meta {
            syn::Meta::List(list) => list.tokens,
            _ => TokenStream::new(),
        })
    }
    let tokens = match &mut item {
        syn::Item::Struct(s) => match take_attr(&mut s.attrs, "event") {
            Some(args) => {
                let mut errors = Errors::default();
                let def = model::EventDef::parse(args, s.clone(), &mut errors).unwrap();
                errors.finish().unwrap();
                expand::event::expand(&def)
            }
            None => return vec![item],
        },
        syn::Item::Impl(i) => match take_attr(&mut i.attrs, "manager") {
            Some(args) => {
                let mut errors = Errors::default();
                let def = model::ManagerDef::parse(args, i.clone(), &mut errors);
                errors.finish().unwrap();
                expand::manager::expand(&def)
            }
            None => return vec![item],
        },
        syn::Item::Fn(f) => match take_attr(&mut f.attrs, "main") {
            Some(args) => {
                let mut errors = Errors::default();
                let out = expand::main::expand(args, f.clone(), &mut errors);
                errors.finish().unwrap();
                out
            }
            None => return vec![item],
        },
        _ => return vec![item],
    };
    syn::parse2::<syn::File>(tokens).unwrap().items
}

/// The expansions the docs show (each ```` ```text ```` block of `edri`'s rustdoc and of the
/// README that names `::edri::__private`) are excerpts of current expansions: with `/* … */`
/// marking what is left out, the rest appears, in order and apart from whitespace and
/// trailing commas, in one snapshot of this file's tests or in `examples/quickstart-expanded.rs`.
/// An expansion that changes fails here until its docs show the new text.
#[test]
fn expansions_in_the_docs_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let mut expansions: Vec<String> = std::fs::read_dir(root.join("src/snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "snap"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            // The snapshot without insta's header (`---` … `---`).
            text.splitn(3, "---\n").nth(2).unwrap_or_default().to_owned()
        })
        .collect();
    expansions.push(read("../examples/quickstart-expanded.rs"));
    let expansions: Vec<String> = expansions.iter().map(|e| squeeze(e)).collect();

    let mut shown = Vec::new();
    for path in ["../edri/src/lib.rs", "../README.md"] {
        let text = read(path);
        let text = if path.ends_with(".rs") { doc_text(&text) } else { text };
        shown.extend(text_blocks(&text).into_iter().map(|block| (path, block)));
    }
    let shown: Vec<_> =
        shown.into_iter().filter(|(_, block)| block.contains("::edri::__private")).collect();
    // `#[event]` (a request, its API hooks), `#[manager]` (the tour's, the other arms, a
    // process function), `#[edri::main]`, and the README's two.
    assert!(shown.len() >= 8, "expected the documented expansions, found {}", shown.len());
    for (path, block) in shown {
        let pieces: Vec<String> = elided(&block).iter().map(|p| squeeze(p)).collect();
        let found = expansions.iter().any(|expansion| {
            let mut at = 0;
            pieces.iter().all(|piece| match expansion[at..].find(piece.as_str()) {
                Some(i) => {
                    at += i + piece.len();
                    true
                }
                None => false,
            })
        });
        let missing: Vec<&String> = pieces
            .iter()
            .filter(|piece| !expansions.iter().any(|e| e.contains(piece.as_str())))
            .collect();
        assert!(
            found,
            "an expansion shown in {path} is not (or no longer) what the macros generate:\n\
             {block}\npieces found in no snapshot: {missing:#?}"
        );
    }
}

/// The text of the doc comments (`///`, `//!`) of a source file, one line each.
fn doc_text(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines() {
        let line = line.trim_start();
        if let Some(doc) = line.strip_prefix("///").or_else(|| line.strip_prefix("//!")) {
            out.push_str(doc.strip_prefix(' ').unwrap_or(doc));
            out.push('\n');
        }
    }
    out
}

/// The ```` ```text ```` blocks of a Markdown text.
fn text_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<(bool, String)> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```") => {
                open = Some((fence.trim_start_matches('`').trim() == "text", String::new()));
            }
            Some((is_text, block)) if fence.starts_with("```") => {
                if *is_text {
                    blocks.push(std::mem::take(block));
                }
                open = None;
            }
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The pieces of a shown expansion between its `/* … */` elisions.
fn elided(block: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = block;
    while let Some(start) = rest.find("/*") {
        pieces.push(&rest[..start]);
        let end = rest[start..].find("*/").map_or(rest.len(), |e| start + e + 2);
        rest = &rest[end..];
    }
    pieces.push(rest);
    pieces.retain(|p| !p.trim().is_empty());
    pieces
}

/// Code without its whitespace and without the commas before a closing bracket, so that
/// prettyplease's layout and a shorter one written in the docs compare equal.
fn squeeze(code: &str) -> String {
    let chars: Vec<char> = code.chars().filter(|c| !c.is_whitespace()).collect();
    chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| !(c == ',' && matches!(chars.get(i + 1), Some(')' | ']' | '}' | '>'))))
        .map(|(_, &c)| c)
        .collect()
}
