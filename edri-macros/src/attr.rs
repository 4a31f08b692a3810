//! Parsing of the macros' arguments: `key`, `key = value`, with every unknown or repeated key
//! reported on its own token, listing the valid keys.

use crate::ctxt::Errors;
use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Ident, LitInt, LitStr, Path, Type};

/// A value with the span of the key that set it.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// Parses `args` as a comma-separated list of nested metas, calling `each` for every key.
/// Errors from `each` are collected and parsing goes on with the next key.
pub(crate) fn parse_args(
    args: TokenStream,
    errors: &mut Errors,
    mut each: impl FnMut(&Ident, &ParseNestedMeta<'_>, &mut Errors) -> syn::Result<()>,
) {
    let parser = syn::meta::parser(|meta| {
        let Some(ident) = meta.path.get_ident().cloned() else {
            return Err(meta.error("expected a plain argument name"));
        };
        if let Err(e) = each(&ident, &meta, errors) {
            errors.push(e);
            // Skip the rest of this argument so the following ones are still checked.
            if meta.input.peek(syn::Token![=]) {
                let _ = meta.value().and_then(|v| v.parse::<syn::Expr>());
            }
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args) {
        errors.push(e);
    }
}

/// Sets `slot` once; a second time is an error on the repeated key.
pub(crate) fn set_once<T>(
    slot: &mut Option<Spanned<T>>,
    ident: &Ident,
    value: T,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(ident.span(), format!("duplicate argument `{ident}`")));
    }
    *slot = Some(Spanned { value, span: ident.span() });
    Ok(())
}

pub(crate) fn flag(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
        let name = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
        return Err(meta.error(format!("`{name}` takes no value")));
    }
    Ok(())
}

pub(crate) fn string(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    meta.value()?.parse()
}

pub(crate) fn ty(meta: &ParseNestedMeta<'_>) -> syn::Result<Type> {
    meta.value()?.parse()
}

pub(crate) fn path(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let input = meta.value()?;
    if input.peek(LitStr) {
        return input.parse::<LitStr>()?.parse();
    }
    Path::parse_mod_style(input)
}

/// `name = true` or `name = false`.
pub(crate) fn boolean(meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
    let input = meta.value()?;
    if input.peek(syn::LitBool) {
        return Ok(input.parse::<syn::LitBool>()?.value);
    }
    Err(input.error("expected `true` or `false`"))
}

pub(crate) fn int<T: std::str::FromStr>(meta: &ParseNestedMeta<'_>, what: &str) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    let lit: LitInt = meta.value()?.parse()?;
    lit.base10_parse::<T>().map_err(|_| syn::Error::new(lit.span(), format!("expected {what}")))
}

/// "unknown edri event argument `reqest`; expected one of `a`, `b`, …"
pub(crate) fn unknown(what: &str, ident: &Ident, valid: &[&str]) -> syn::Error {
    let list = valid.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ");
    let mut message = format!("unknown {what} argument `{ident}`; expected one of {list}");
    if let Some(close) = closest(&ident.to_string(), valid) {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    syn::Error::new(ident.span(), message)
}

pub(crate) fn closest<'a>(word: &str, valid: &[&'a str]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (distance(word, v), *v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min()
        .map(|(_, v)| v)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The path generated code uses to reach the facade: `::edri` or `crate = path`.
pub(crate) fn krate(path: Option<Spanned<Path>>) -> TokenStream {
    match path {
        Some(p) => {
            let p = p.value;
            quote::quote!(#p)
        }
        None => quote::quote!(::edri),
    }
}
