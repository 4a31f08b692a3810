//! Expansion of `#[edri::main]`: a plain `fn main` that asks for logs at the router's start
//! (unless `tracing = false`), serves as a process worker when started as one, builds the tokio
//! runtime and blocks on the user's body.

use crate::attr::{self, Spanned};
use crate::ctxt::Errors;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr, Path};

/// What is emitted beside an argument error: the body type-checked inside an async block of a
/// plain `fn main` that never runs it.
pub(crate) fn fallback(mut item: ItemFn) -> TokenStream {
    item.sig.asyncness = None;
    item.sig.inputs = syn::punctuated::Punctuated::new();
    item.sig.generics = syn::Generics::default();
    let ret = match &item.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let body = &item.block;
    let (attrs, vis, sig) = (&item.attrs, &item.vis, &item.sig);
    quote! {
        #(#attrs)*
        #vis #sig {
            let _ = async move {
                let out: #ret = #body;
                out
            };
            ::core::unreachable!()
        }
    }
}

pub(crate) const MAIN_ARGS: &[&str] = &["flavor", "worker_threads", "tracing", "crate"];

pub(crate) fn expand(args: TokenStream, mut item: ItemFn, errors: &mut Errors) -> TokenStream {
    let mut flavor: Option<Spanned<bool>> = None;
    let mut workers: Option<Spanned<usize>> = None;
    let mut krate: Option<Spanned<Path>> = None;
    let mut tracing: Option<Spanned<bool>> = None;
    attr::parse_args(args, errors, |ident, meta, _| match ident.to_string().as_str() {
        "flavor" => {
            let lit: LitStr = attr::string(meta)?;
            let current = match lit.value().as_str() {
                "current_thread" => true,
                "multi_thread" => false,
                other => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "unknown flavor `{other}`; expected `current_thread` or `multi_thread`"
                        ),
                    ));
                }
            };
            attr::set_once(&mut flavor, ident, current)
        }
        "worker_threads" => {
            let n: usize = attr::int(meta, "a number of worker threads of at least 1")?;
            if n == 0 {
                return Err(meta.error("`worker_threads` must be at least 1"));
            }
            attr::set_once(&mut workers, ident, n)
        }
        "tracing" => attr::set_once(&mut tracing, ident, attr::boolean(meta)?),
        "crate" => attr::set_once(&mut krate, ident, attr::path(meta)?),
        _ => Err(attr::unknown("edri main", ident, MAIN_ARGS)),
    });
    let current = flavor.as_ref().is_some_and(|f| f.value);
    let logs = tracing.as_ref().is_none_or(|t| t.value);
    if let (true, Some(w)) = (current, &workers) {
        errors.at(w.span, "`worker_threads` is for the `multi_thread` flavor");
    }
    if item.sig.asyncness.is_none() {
        errors.spanned(item.sig.fn_token, "`#[edri::main]` goes on an `async fn`");
    }
    if !item.sig.inputs.is_empty() {
        errors.spanned(&item.sig.inputs, "`main` takes no arguments");
    }
    if !item.sig.generics.params.is_empty() {
        errors.spanned(&item.sig.generics, "`main` cannot be generic");
    }
    let krate = attr::krate(krate);
    let p = quote!(#krate::__private);
    let workers = match workers {
        Some(w) => {
            let n = w.value;
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    };
    item.sig.asyncness = None;
    let body = &item.block;
    let attrs = &item.attrs;
    let vis = &item.vis;
    let sig = &item.sig;
    quote! {
        #(#attrs)*
        #vis #sig {
            #p::logs_at_start(#logs);
            #p::serve_if_worker();
            #p::build_runtime(#current, #workers).block_on(async move #body)
        }
    }
}
