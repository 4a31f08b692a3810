//! Procedural macros of EDRI. Use them through the `edri` crate (`edri::prelude::*`), which
//! documents each with its expansion.
//!
//! Each macro parses its input into its own model (`model.rs`), checks it (collecting every error
//! of the invocation), and expands it. On error the user's item is still emitted, so the rest
//! of the crate keeps compiling and only the real mistakes are reported: `#[event]` and
//! `#[edri::main]` emit their full expansion of the parts that parsed (an event's uses then
//! add no errors of their own), `#[manager]` the impl block without its `#[solve]` marks.

mod attr;
mod ctxt;
mod expand;
mod model;

use ctxt::Errors;
use proc_macro::TokenStream;
use quote::ToTokens;

// Declares an event. Each macro is documented (with examples and its expansion) where `edri`
// re-exports it, `edri::event` and so on: rustdoc appends the docs of the re-exported item to
// the re-export's, so docs here would show at the end of those pages.
#[proc_macro_attribute]
#[allow(missing_docs)]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::ItemStruct>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            return with_errors(
                input.into(),
                syn::Error::new(proc_macro2::Span::call_site(), "`#[event]` goes on a struct"),
            );
        }
    };
    let mut errors = Errors::default();
    let def = model::EventDef::parse(args.into(), item.clone(), &mut errors);
    match (errors.finish(), def) {
        (Ok(()), Some(def)) => expand::event::expand(&def).into(),
        // The full expansion of what parsed, so that the event's uses (a handler, a request,
        // its response struct) do not add errors of their own; a generic struct cannot be an
        // event at all, and goes out as written.
        (Err(e), Some(def)) if def.item.generics.params.is_empty() => {
            with_errors(expand::event::expand(&def), e)
        }
        (Err(e), _) => with_errors(model::without_response_marks(item).into_token_stream(), e),
        (Ok(()), None) => item.into_token_stream().into(),
    }
}

// Declares a manager from an impl block; documented at `edri::manager`.
#[proc_macro_attribute]
#[allow(missing_docs)]
pub fn manager(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::ItemImpl>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            return with_errors(
                input.into(),
                syn::Error::new(
                    proc_macro2::Span::call_site(),
                    "`#[manager]` goes on an impl block",
                ),
            );
        }
    };
    let mut errors = Errors::default();
    let def = model::ManagerDef::parse(args.into(), item, &mut errors);
    match errors.finish() {
        Ok(()) => expand::manager::expand(&def).into(),
        // The impl block without its `#[solve]` attributes, so its methods still resolve.
        Err(e) => with_errors(def.item.into_token_stream(), e),
    }
}

// Marks a handler inside a `#[manager]` impl block; documented at `edri::solve`.
//
// `#[manager]` checks these attributes and leaves each as `#[solve(__edri_checked)]`, which
// passes the method through; any other that reaches this function stands outside such a
// block.
#[proc_macro_attribute]
#[allow(missing_docs)]
pub fn solve(args: TokenStream, input: TokenStream) -> TokenStream {
    if args.to_string() == "__edri_checked" {
        return input;
    }
    with_errors(
        input.into(),
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "`#[solve]` marks a handler method inside an impl block that carries `#[edri::manager]`; add `#[manager]` to the impl block",
        ),
    )
}

// The entry point of an EDRI program; documented at `edri::main`.
#[proc_macro_attribute]
#[allow(missing_docs)]
pub fn main(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::ItemFn>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            return with_errors(
                input.into(),
                syn::Error::new(
                    proc_macro2::Span::call_site(),
                    "`#[edri::main]` goes on `async fn main`",
                ),
            );
        }
    };
    let mut errors = Errors::default();
    let out = expand::main::expand(args.into(), item.clone(), &mut errors);
    match errors.finish() {
        Ok(()) => out.into(),
        // A synchronous `main` that still type-checks the body, so that only the argument
        // error is reported (not also "`main` is not allowed to be `async`").
        Err(e) => with_errors(expand::main::fallback(item), e),
    }
}

fn with_errors(item: proc_macro2::TokenStream, err: syn::Error) -> TokenStream {
    let mut out = err.to_compile_error();
    out.extend(item);
    out.into()
}

#[cfg(test)]
mod tests;
