//! Expansion of `#[manager]`: the user's impl block (with `#[solve]` removed), then in a
//! `const _` the `Manager` impl (descriptor + dispatch) and the `inventory` registration.
//!
//! Each handler reaches its event through `typed::<E>()` spanned at the user's event type:
//! the only `E: Event` obligation, so a non-event parameter is one error on that type. The
//! return value goes through `finish::<R>` spanned at the user's return type, so a wrong
//! return type is one error there.

use crate::model::{ManagerDef, Mode, Queue, SolveDef};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

pub(crate) fn expand(def: &ManagerDef) -> TokenStream {
    let ManagerDef {
        item,
        self_ty,
        name,
        krate,
        ..
    } = def;
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
    let descriptors = def.handlers.iter().map(|h| descriptor(&p, h));
    let arms = def
        .handlers
        .iter()
        .enumerate()
        .map(|(i, h)| arm(&p, self_ty, i, h));

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

fn typed(p: &TokenStream, h: &SolveDef) -> TokenStream {
    let ev = &h.event;
    quote_spanned!(ev.span()=> #p::typed::<#ev>())
}

fn mode(h: &SolveDef) -> TokenStream {
    match h.mode {
        Mode::Inline => quote!(Inline),
        Mode::Thread => quote!(Thread),
        Mode::Process => quote!(Process),
    }
}

fn descriptor(p: &TokenStream, h: &SolveDef) -> TokenStream {
    let typed = typed(p, h);
    let method = h.method.to_string();
    let mode = mode(h);
    let limit = h.limit;
    let line = quote_spanned!(h.method.span()=> ::core::line!());
    quote! {
        #typed.handler(#method, #p::Mode::#mode, #limit, #p::Location { file: ::core::file!(), line: #line })
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
    let index_u16 = proc_macro2::Literal::u16_unsuffixed(u16::try_from(index).unwrap_or(u16::MAX));
    let typed = typed(p, h);
    let method = &h.method;
    let ret = ret(h);
    let finish = quote_spanned!(ret.span()=> t.finish::<#ret>);
    let ctx_arg = if h.has_ctx { quote!(, ctx) } else { quote!() };
    let call_span = h.method.span();
    match h.mode {
        Mode::Inline => {
            let this = if h.receiver { quote!(self,) } else { quote!() };
            let (prepare, ev_arg) = if h.by_ref {
                (quote!(), quote!(&*event))
            } else {
                (
                    quote! {
                        let event = match t.own(event) {
                            ::core::result::Result::Ok(event) => event,
                            ::core::result::Result::Err(failure) => return t.fail(ctx, reply, failure),
                        };
                    },
                    quote!(event),
                )
            };
            let await_ = if h.is_async { quote!(.await) } else { quote!() };
            let call =
                quote_spanned!(call_span=> <#self_ty>::#method(#this #ev_arg #ctx_arg) #await_);
            quote! {
                #index_u16 => {
                    let t = #typed;
                    let (event, reply) = t.open(envelope);
                    #prepare
                    let out = #call;
                    #finish(ctx, reply, out);
                }
            }
        }
        Mode::Thread | Mode::Process => {
            let ctx_param = if h.has_ctx { quote!(ctx) } else { quote!(_) };
            let call = quote_spanned!(call_span=> <#self_ty>::#method(event #ctx_arg));
            let thread = quote_spanned!(ret.span()=> t.thread::<#ret, _>);
            quote! {
                #index_u16 => {
                    let t = #typed;
                    #thread(ctx, #index_u16, envelope, |event, #ctx_param| #call).await;
                }
            }
        }
    }
}
