//! Helpers about an event's fields: the `http` route and its path parameters, the `#[cfg]`
//! under which a field exists, the struct as emitted beside errors.

use proc_macro2::TokenStream;
use syn::{Attribute, ItemStruct, LitStr};

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

pub(super) fn parse_http(lit: &LitStr) -> syn::Result<(String, String)> {
    let value = lit.value();
    let mut parts = value.split_whitespace();
    let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(syn::Error::new(
            lit.span(),
            "expected `http = \"METHOD /path/{param}\"`, e.g. `http = \"GET /files/{dir}\"`",
        ));
    };
    if !HTTP_METHODS.contains(&method) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "unknown HTTP method `{method}`; expected one of GET, POST, PUT, PATCH, DELETE"
            ),
        ));
    }
    if !path.starts_with('/') {
        return Err(syn::Error::new(
            lit.span(),
            format!("the route path must start with `/`, found `{path}`"),
        ));
    }
    let mut depth = 0i32;
    for c in path.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(syn::Error::new(lit.span(), "unbalanced `{`/`}` in the route path"));
        }
    }
    if depth != 0 {
        return Err(syn::Error::new(lit.span(), "unbalanced `{`/`}` in the route path"));
    }
    Ok((method.to_owned(), path.to_owned()))
}

pub(crate) fn path_params(path: &str) -> Vec<String> {
    path.split('{').skip(1).filter_map(|s| s.split_once('}').map(|(p, _)| p.to_owned())).collect()
}

/// The struct as written minus its `#[response]` marks: what is emitted beside errors, so that
/// the marks do not add "cannot find attribute `response`".
pub(crate) fn without_response_marks(mut item: ItemStruct) -> ItemStruct {
    for field in item.fields.iter_mut() {
        field.attrs.retain(|a| !a.path().is_ident("response"));
    }
    item
}

/// The `#[cfg(..)]` attributes under which `field` exists, to put on everything generated
/// from it (its entry in the field list, its piece of the fingerprint, its JSON schema): an
/// attribute macro sees fields before `cfg` is resolved.
///
/// A field's own `#[cfg(p)]` is kept as written; `#[cfg_attr(c, cfg(p))]` (the only form of
/// `cfg_attr` that can remove a field) becomes `#[cfg(any(not(c), p))]`. Other `cfg_attr`
/// contents are not read.
pub(crate) fn field_cfg(field: &syn::Field) -> TokenStream {
    let mut out = TokenStream::new();
    for attr in &field.attrs {
        for predicate in presence(attr) {
            out.extend(quote::quote!(#[cfg(#predicate)]));
        }
    }
    out
}

/// The predicates an attribute puts on the presence of its item: `cfg(p)` gives `p`;
/// `cfg_attr(c, a, b..)` gives `any(not(c), q)` for each `q` that `a`, `b`.. give.
fn presence(attr: &Attribute) -> Vec<TokenStream> {
    let syn::Meta::List(list) = &attr.meta else { return Vec::new() };
    if attr.path().is_ident("cfg") {
        return vec![list.tokens.clone()];
    }
    if !attr.path().is_ident("cfg_attr") {
        return Vec::new();
    }
    // A malformed `cfg_attr` is rustc's to report.
    let Ok(parts) = list.parse_args_with(
        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
    ) else {
        return Vec::new();
    };
    let mut parts = parts.into_iter();
    let Some(condition) = parts.next() else { return Vec::new() };
    parts
        .flat_map(|meta| presence(&syn::parse_quote!(#[#meta])))
        .map(|inner| quote::quote!(any(not(#condition), #inner)))
        .collect()
}
