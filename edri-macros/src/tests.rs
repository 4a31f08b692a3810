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
                fn helper(&self) {}
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
