//! Expansion of `#[manager]`: the user's impl block (with `#[solve]` removed), then in a
//! `const _` the `Manager` impl (descriptor + dispatch) and the `inventory` registration.
//!
//! Each handler reaches its event only through `<E as Dispatch>::…` paths whose tokens carry
//! the span of the user's event type: a non-event parameter raises the same `E: Event`
//! obligation at the same place everywhere, which rustc reports once. The result goes through
//! `<R as IntoReply<..>>` and `<R::Error as IntoFailure>`, spanned over the user's return type
//! `R`, so a wrong return type or error type is one error there ([`converted`]).

use crate::model::{ManagerDef, Mode, Queue, SolveDef};
use proc_macro2::TokenStream;
use proc_macro2::{Ident, Span};
use quote::{quote, quote_spanned};

/// A local of the dispatch, for code spanned at the user's tokens: the identifier keeps the
/// call site's hygiene, so it still names the binding when those tokens come from a
/// `macro_rules!` (whose hygiene hides the binding from a name that carries their context).
fn local(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

/// A local passed as an argument of the user's method, spanned (hygiene included) at the
/// user's parameter type, so that a mismatch is reported on that type alone; it is bound
/// with the same span (`let __edri_ctx = ctx;`, a closure parameter), so it resolves in a
/// `macro_rules!` too.
fn argument(name: &str, span: Span) -> Ident {
    quote::format_ident!("__edri_{}", name, span = span)
}

pub(crate) fn expand(def: &ManagerDef) -> TokenStream {
    let ManagerDef { item, self_ty, name, krate, .. } = def;
    let p = quote!(#krate::__private);
    let queue = match def.queue {
        Queue::Fifo => quote!(Fifo),
        Queue::Priority => quote!(Priority),
    };
    let capacity = match def.capacity {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let manual = def.manual;
    let rust_name = quote!(#self_ty).to_string().replace(' ', "");
    let descriptors = def.handlers.iter().enumerate().map(|(i, h)| descriptor(&p, i, h));
    let process_entries =
        def.handlers.iter().enumerate().map(|(i, h)| process_entry(&p, self_ty, i, h));
    let arms = def.handlers.iter().enumerate().map(|(i, h)| arm(&p, self_ty, i, h));

    quote! {
        #item

        const _: () = {
            #[automatically_derived]
            impl #p::Manager for #self_ty {
                const DESCRIPTOR: &'static #p::ManagerDescriptor = &#p::ManagerDescriptor {
                    name: #name,
                    rust_name: ::core::concat!(::core::module_path!(), "::", #rust_name),
                    location: #p::Location { file: ::core::file!(), line: ::core::line!() },
                    options: #p::ManagerOptions {
                        queue: #p::QueueKind::#queue,
                        capacity: #capacity,
                        manual: #manual,
                    },
                    handlers: &[#(#descriptors),*],
                    type_id: #p::type_id_of::<#self_ty>,
                    make_default: __edri_make_default,
                };

                fn dispatch<'__edri>(
                    &'__edri mut self,
                    envelope: #p::Envelope,
                    ctx: &'__edri #p::Ctx,
                ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send + '__edri {
                    async move {
                        match envelope.handler() {
                            #(#arms)*
                            _ => #p::unknown_handler(<Self as #p::Manager>::DESCRIPTOR, &envelope),
                        }
                    }
                }
            }

            #(#process_entries)*

            fn __edri_make_default() -> ::core::option::Option<::std::boxed::Box<dyn #p::ErasedManager>> {
                #[allow(unused_imports)]
                use #p::{ViaDefault as _, ViaNoDefault as _};
                (&&#p::DefaultProbe::<#self_ty>::new()).edri_default()
            }

            #p::inventory::submit! {
                #p::ManagerRegistration(<#self_ty as #p::Manager>::DESCRIPTOR)
            }
        };
    }
}

/// `<E as Dispatch>`, spanned over the user's event type: `<` at its first token, the rest at
/// its last, so that every path or call built on it covers exactly the user's tokens.
fn event(p: &TokenStream, h: &SolveDef) -> TokenStream {
    qualified(h, quote!(#p::Dispatch))
}

/// `<E as Event>`, spanned like [`event`]: for the event's metadata.
fn event_meta(p: &TokenStream, h: &SolveDef) -> TokenStream {
    qualified(h, quote!(#p::Event))
}

/// `<<E as Event>::Kind`, to be closed by `as Trait>`: for the calls made on the event's kind
/// (`Plain`, `Accept`), spanned like [`event`]; the two `<` are separate tokens (rustc would
/// split a joint `<<`'s span in two).
fn kind_of(p: &TokenStream, h: &SolveDef) -> TokenStream {
    let (first, last) = first_last(&h.event);
    let meta = event_meta(p, h);
    let open = quote_spanned!(first=> <);
    let kind = quote_spanned!(last=> ::Kind);
    quote!(#open #meta #kind)
}

/// `<T as Trait>` spanned over the user's type `T`: `<` at its first token, the rest at its
/// last, so that a path or call built on it covers exactly the user's tokens.
fn qualified_over(ty: &impl quote::ToTokens, as_trait: TokenStream) -> TokenStream {
    let (first, last) = first_last(ty);
    let open = quote_spanned!(first=> <);
    let close = quote_spanned!(last=> as #as_trait>);
    quote!(#open #ty #close)
}

fn qualified(h: &SolveDef, as_trait: TokenStream) -> TokenStream {
    qualified_over(&h.event, as_trait)
}

/// The spans of the first and the last token of `tokens`.
fn first_last(tokens: &impl quote::ToTokens) -> (proc_macro2::Span, proc_macro2::Span) {
    fn last(stream: TokenStream) -> Option<proc_macro2::Span> {
        stream.into_iter().last().map(|t| match t {
            proc_macro2::TokenTree::Group(g) => g.span_close(),
            t => t.span(),
        })
    }
    let stream = tokens.to_token_stream();
    let first =
        stream.clone().into_iter().next().map_or_else(proc_macro2::Span::call_site, |t| t.span());
    (first, last(stream).unwrap_or(first))
}

fn mode(h: &SolveDef) -> TokenStream {
    match h.mode {
        Mode::Inline => quote!(Inline),
        Mode::Thread => quote!(Thread),
        Mode::Process => quote!(Process),
    }
}

fn descriptor(p: &TokenStream, index: usize, h: &SolveDef) -> TokenStream {
    let ev = &h.event;
    let event = event_meta(p, h);
    let type_id = quote_spanned!(first_last(ev).1=> #p::type_id_of::<#ev>);
    let method = h.method.to_string();
    let mode = mode(h);
    let limit = h.limit;
    let line = quote_spanned!(h.method.span()=> ::core::line!());
    let process = if h.mode == Mode::Process {
        let f = process_fn(index);
        quote!(::core::option::Option::Some(#f))
    } else {
        quote!(::core::option::Option::None)
    };
    quote! {
        #p::HandlerDescriptor {
            event: #event::META,
            event_type: #type_id,
            method: #method,
            mode: #p::Mode::#mode,
            limit: #limit,
            location: #p::Location { file: ::core::file!(), line: #line },
            process: #process,
        }
    }
}

/// The `FnOnce(E, Ctx) -> R` a thread or process handler is called through: the method itself
/// when it takes the context, else a closure that drops it.
///
/// The closure is generated code (so lints about it stay quiet); the method path carries the
/// method's span and the context argument the span of the user's context type, so that a
/// wrong context type is one error on that type.
fn worker_fn(p: &TokenStream, self_ty: &syn::Type, h: &SolveDef) -> TokenStream {
    let method = &h.method;
    let path = quote_spanned!(method.span()=> <#self_ty>::#method);
    let out = local("out");
    let reply = converted(p, h, &out);
    let (bind_ctx, ctx_arg) = ctx_arg(p, h);
    let ctx = if h.ctx_ty.is_some() { local("ctx") } else { Ident::new("_", Span::call_site()) };
    let (params, args) = match h.acceptor {
        Some(opening_span) => {
            let opening = argument("opening", opening_span);
            (quote!(event, #opening, #ctx), quote!(event, #opening #ctx_arg))
        }
        None => (quote!(event, #ctx), quote!(event #ctx_arg)),
    };
    quote!(|#params| { #bind_ctx let #out = #path(#args); #reply })
}

/// `out`, the handler's value, as `Result<E::Output, Failure>`: through [`IntoReply`] called
/// on the user's return type and [`IntoFailure`] on its error type, each spanned over the
/// user's tokens, so that a wrong return type or error type is one error there, with no note
/// naming the expansion's functions.
///
/// The error type is `X` of a return type written `Result<O, X>`; for any other (an alias
/// such as `io::Result<O>`), it is inferred and an error points at the alias's first token.
///
/// [`IntoReply`]: https://docs.rs/edri/latest/edri/trait.IntoReply.html
/// [`IntoFailure`]: https://docs.rs/edri/latest/edri/trait.IntoFailure.html
fn converted(p: &TokenStream, h: &SolveDef, out: &Ident) -> TokenStream {
    let ret = ret(h);
    let event = event(p, h);
    let as_reply = qualified_over(&ret, quote!(#p::IntoReply<#event::Answer>));
    let last = first_last(&ret).1;
    let into_result = quote_spanned!(last=> ::into_result(#out));
    let error = match h.ret.as_ref().and_then(result_error) {
        Some(x) => {
            let into_failure = quote_spanned!(first_last(x).1=> ::into_failure);
            let x = qualified_over(x, quote!(#p::IntoFailure));
            quote!(#x #into_failure)
        }
        None => {
            let error = quote_spanned!(last=> ::Error);
            let into_failure = quote_spanned!(last=> ::into_failure);
            let error = qualified_over(&quote!(#as_reply #error), quote!(#p::IntoFailure));
            quote!(#error #into_failure)
        }
    };
    // The call, its parentheses and the split's name carry the event's span: the call's type
    // mentions the event's output, so a non-event is reported there, once with the other
    // paths, and not again on the return type.
    let (event_first, span) = first_last(&h.event);
    let split = Ident::new("__edri_split", span);
    let identity = quote_spanned!(event_first=> ::core::convert::identity);
    let arg = quote_spanned!(span=> #identity(#split));
    let block = quote_spanned! {span=>
        {
            let #split = #as_reply #into_result;
            #event::__reply(#arg, #error)
        }
    };
    // The whole, as an argument, spans the event type's first to last token (`identity` at
    // the first, its parentheses at the last), like the other paths a non-event fails on.
    quote_spanned!(span=> #identity(#block))
}

/// `X` of a type written `Result<O, X>` (any path ending in `Result` with two arguments).
fn result_error(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    match (last.ident == "Result", types.next(), types.next(), types.next()) {
        (true, Some(_), Some(x), None) => Some(x),
        _ => None,
    }
}

/// For a handler that takes its context: its binding from the dispatch's `ctx` and `, ctx`
/// as the argument; nothing otherwise. The binding goes through `FromCtx`, called on the
/// user's context type and spanned over it, so a wrong type is one error there (a plain
/// argument would read "expected `&String`, found `&Ctx`", on the user's own type).
fn ctx_arg(p: &TokenStream, h: &SolveDef) -> (TokenStream, TokenStream) {
    match (h.ctx_span, &h.ctx_ty) {
        (Some(span), Some(ty)) => {
            let ctx = argument("ctx", span);
            let source = local("ctx");
            let (first, last) = first_last(ty);
            let open = quote_spanned!(first=> <);
            let held = match h.mode {
                Mode::Inline => quote!(&#p::Ctx),
                Mode::Thread | Mode::Process => quote!(#p::Ctx),
            };
            let from = quote_spanned!(last=> as #p::FromCtx<#held>>::from_ctx(#source));
            (quote!(let #ctx = #open #ty #from;), quote!(, #ctx))
        }
        _ => (TokenStream::new(), TokenStream::new()),
    }
}

/// The name of the worker-side entry of process handler `index`.
fn process_fn(index: usize) -> syn::Ident {
    quote::format_ident!("__edri_process_{}", index)
}

/// The worker-side entry of a process handler: a plain fn the descriptor points to.
fn process_entry(p: &TokenStream, self_ty: &syn::Type, index: usize, h: &SolveDef) -> TokenStream {
    if h.mode != Mode::Process {
        return TokenStream::new();
    }
    let name = process_fn(index);
    let span = first_last(&h.event).1;
    let event = event(p, h);
    let call = worker_fn(p, self_ty, h);
    let (input, ctx) = (local("input"), local("ctx"));
    let body = if h.acceptor.is_some() {
        let (kind_of_event, ev_ty) = (kind_of(p, h), &h.event);
        quote_spanned!(span=> #kind_of_event as #p::Accept<#ev_ty>>::__process_accept(#input, #ctx, #call))
    } else {
        quote_spanned!(span=> #event::__process(#input, #ctx, #call))
    };
    quote! {
        fn #name(input: &[u8], ctx: #p::Ctx) -> ::core::result::Result<::std::vec::Vec<u8>, #p::Failure> {
            #body
        }
    }
}

/// The return type as written, or `()` spanned at the method name when there is none.
fn ret(h: &SolveDef) -> TokenStream {
    match &h.ret {
        Some(ty) => quote!(#ty),
        None => quote_spanned!(h.method.span()=> ()),
    }
}

fn arm(p: &TokenStream, self_ty: &syn::Type, index: usize, h: &SolveDef) -> TokenStream {
    let index = proc_macro2::Literal::u16_unsuffixed(u16::try_from(index).unwrap_or(u16::MAX));
    let span = first_last(&h.event).1;
    let event = event(p, h);
    let method = &h.method;
    let (bind_ctx, ctx_arg) = ctx_arg(p, h);
    let call_span = h.method.span();
    let [ctx, envelope, reply, out, failure, ev] =
        ["ctx", "envelope", "reply", "out", "failure", "event"].map(local);
    let converted = converted(p, h, &out);
    let (kind_of_event, ev_ty) = (kind_of(p, h), &h.event);
    // A plain handler's event must not be a tunnel: a call on its kind, spanned over the
    // event type (a bound on the runtime's functions would add a note naming them).
    let plain = match h.acceptor {
        Some(_) => TokenStream::new(),
        None => {
            let kind = kind_of(p, h);
            quote_spanned!(span=> #kind as #p::kind::Plain>::check();)
        }
    };
    match h.mode {
        Mode::Inline => {
            let this = if h.receiver { quote!(self,) } else { quote!() };
            let (prepare, ev_arg) = if h.by_ref {
                (quote!(), quote!(&*event))
            } else {
                (
                    quote_spanned! {span=>
                        let #ev = match #event::__own(#ev) {
                            ::core::result::Result::Ok(#ev) => #ev,
                            ::core::result::Result::Err(#failure) => return #event::__fail(#ctx, #reply, #failure),
                        };
                    },
                    quote!(event),
                )
            };
            let await_ = if h.is_async { quote!(.await) } else { quote!() };
            if let Some(opening_span) = h.acceptor {
                // The opening argument carries the span of the user's `Opening<..>`: a
                // mismatch with the event is an error there.
                let opening = argument("opening", opening_span);
                let call = quote_spanned!(call_span=> <#self_ty>::#method(#this #ev_arg, #opening #ctx_arg) #await_);
                let accept = quote_spanned!(span=> #kind_of_event as #p::Accept<#ev_ty>>::__accept(#envelope));
                let finish = quote_spanned!(span=> #event::__finish(#ctx, #reply, #converted));
                return quote! {
                    #index => {
                        let (event, opening, reply) = #accept;
                        #prepare
                        let #opening = opening;
                        #bind_ctx
                        let out = #call;
                        #finish;
                    }
                };
            }
            let call =
                quote_spanned!(call_span=> <#self_ty>::#method(#this #ev_arg #ctx_arg) #await_);
            let open = quote_spanned!(span=> #event::__open(#envelope));
            let finish = quote_spanned!(span=> #event::__finish(#ctx, #reply, #converted));
            quote! {
                #index => {
                    #plain
                    let (event, reply) = #open;
                    #prepare
                    #bind_ctx
                    let out = #call;
                    #finish;
                }
            }
        }
        Mode::Process => {
            let process = if h.acceptor.is_some() {
                quote_spanned!(span=> #kind_of_event as #p::Accept<#ev_ty>>::__process_accept_call(#ctx, #index, #envelope))
            } else {
                quote_spanned!(span=> #event::__process_call(#ctx, #index, #envelope))
            };
            quote! {
                #index => { #plain #process.run().await }
            }
        }
        Mode::Thread => {
            let call = worker_fn(p, self_ty, h);
            let thread = quote_spanned!(span=> #event::__thread(#ctx, #index, #envelope, #call));
            quote! {
                #index => { #plain #thread.run().await }
            }
        }
    }
}
