//! `#[solve]`'s model: one handler method, its mode and the shape of its signature.

use super::manager::{Mode, SOLVE_ARGS};
use crate::attr::{self, Spanned};
use crate::ctxt::Errors;
use proc_macro2::Span;
use syn::{Attribute, FnArg, Ident, ImplItemFn, ReturnType, Type};

/// One `#[solve]` method.
pub(crate) struct SolveDef {
    pub(crate) method: Ident,
    pub(crate) mode: Mode,
    pub(crate) limit: usize,
    pub(crate) is_async: bool,
    pub(crate) receiver: bool,
    pub(crate) event: Type,
    pub(crate) by_ref: bool,
    /// The first token of the context parameter's type, to place type errors on it.
    pub(crate) ctx_span: Option<Span>,
    /// The context parameter's type, passed through `FromCtx` so a wrong one is reported on it.
    pub(crate) ctx_ty: Option<Type>,
    /// The declared return type, or `None` for `()`.
    pub(crate) ret: Option<Type>,
    /// A tunnel acceptor: the span of its second parameter's type, the `Opening<E>`.
    pub(crate) acceptor: Option<Span>,
}

impl SolveDef {
    pub(super) fn parse(attr: &Attribute, f: &ImplItemFn, errors: &mut Errors) -> Option<Self> {
        let mut mode: Option<Spanned<Mode>> = None;
        let mut limit: Option<Spanned<usize>> = None;
        if let syn::Meta::List(list) = &attr.meta {
            attr::parse_args(list.tokens.clone(), errors, |ident, meta, _| {
                match ident.to_string().as_str() {
                    "inline" | "thread" | "process" => {
                        attr::flag(meta)?;
                        let m = match ident.to_string().as_str() {
                            "inline" => Mode::Inline,
                            "thread" => Mode::Thread,
                            _ => Mode::Process,
                        };
                        if let Some(prev) = &mode {
                            return Err(syn::Error::new(
                                ident.span(),
                                format!(
                                    "a handler has one mode; it is already `{}`",
                                    prev.value.as_str()
                                ),
                            ));
                        }
                        attr::set_once(&mut mode, ident, m)
                    }
                    "limit" => {
                        let n: usize = attr::int(meta, "a limit of at least 1")?;
                        if n == 0 {
                            return Err(meta.error("`limit` must be at least 1"));
                        }
                        attr::set_once(&mut limit, ident, n)
                    }
                    _ => Err(attr::unknown("edri solve", ident, SOLVE_ARGS)),
                }
            });
        }
        let mode_v = mode.as_ref().map_or(Mode::Inline, |m| m.value);
        if let Some(l) = &limit
            && mode_v == Mode::Inline
        {
            errors.at(
                l.span,
                "`limit` is for `thread` and `process` handlers; inline handlers run one at a time",
            );
        }
        let sig = &f.sig;
        let mut errs = Errors::default();
        if !sig.generics.params.is_empty() {
            errs.spanned(
                &sig.generics,
                "a handler cannot be generic: its event type must be known to route it",
            );
        }
        if let Some(wc) = &sig.generics.where_clause {
            errs.spanned(wc, "a handler cannot have a `where` clause");
        }
        if let Some(c) = &sig.constness {
            errs.spanned(c, "a handler cannot be `const`");
        }
        if let Some(u) = &sig.unsafety {
            errs.spanned(u, "a handler cannot be `unsafe`");
        }
        if let Some(v) = &sig.variadic {
            errs.spanned(v, "a handler cannot be variadic");
        }
        let is_async = sig.asyncness.is_some();
        if is_async && mode_v != Mode::Inline {
            errs.spanned(sig.asyncness, format!("{} handlers are synchronous (they run on their own thread or process); remove `async` or use an inline handler", mode_v.as_str()));
        }

        let mut receiver = false;
        let mut params = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    receiver = true;
                    if mode_v != Mode::Inline {
                        errs.spanned(r, format!("{} handlers take no `self`: they run away from the manager's state; make it an associated function", mode_v.as_str()));
                    } else if r.reference.is_none() {
                        errs.spanned(r, "a handler borrows its manager: take `&mut self` or `&self`, not `self`");
                    }
                }
                FnArg::Typed(pt) => params.push(pt),
            }
        }
        for pt in &params {
            if contains_impl_trait(&pt.ty) {
                errs.spanned(
                    &pt.ty,
                    "a handler parameter cannot be `impl Trait`: name the event type",
                );
            }
        }
        let (event, by_ref) = match params.first() {
            Some(pt) if last_segment_is(&pt.ty, "Opening") => {
                errs.spanned(
                    &pt.ty,
                    "an acceptor takes the event first, then the opening: `fn accept(&mut self, ev: &E, opening: Opening<E>, ctx: &Ctx)`",
                );
                (None, false)
            }
            None => {
                errs.spanned(
                    &sig.ident,
                    "a handler takes the event it handles: add a parameter like `ev: &MyEvent`",
                );
                (None, false)
            }
            Some(pt) => {
                match &*pt.ty {
                    Type::Reference(r) => {
                        if let Some(m) = &r.mutability {
                            errs.spanned(m, "take the event by shared reference `&E` or by value `E`, not `&mut E`");
                        }
                        if mode_v != Mode::Inline {
                            errs.spanned(
                                &pt.ty,
                                format!(
                                    "{} handlers own their event: take it by value",
                                    mode_v.as_str()
                                ),
                            );
                        }
                        (Some((*r.elem).clone()), true)
                    }
                    ty => (Some(ty.clone()), false),
                }
            }
        };
        if let Some(ty) = &event
            && is_unsized(ty)
        {
            errs.spanned(ty, format!("`{}` is not an edri event: an event is a struct declared with `#[edri::event(..)]`", quote::quote!(#ty)));
        }
        let acceptor = params.get(1).is_some_and(|pt| last_segment_is(&pt.ty, "Opening"));
        if let Some(pt) = params.iter().skip(2).find(|pt| last_segment_is(&pt.ty, "Opening")) {
            errs.spanned(
                &pt.ty,
                "the opening comes right after the event: `fn accept(&mut self, ev: &E, opening: Opening<E>, ctx: &Ctx)`",
            );
        }
        if acceptor {
            if let Some(pt) = params.get(1)
                && matches!(&*pt.ty, Type::Reference(_))
            {
                errs.spanned(&pt.ty, "an acceptor owns its opening: `opening: Opening<E>`");
            }
            if mode_v == Mode::Thread {
                errs.spanned(
                    &sig.ident,
                    "a tunnel acceptor runs inline (it answers at once, then moves its end into a task or a thread) or in a worker process (`#[solve(process)]`); remove `thread`",
                );
            }
        }
        let ctx_param = if acceptor { params.get(2) } else { params.get(1) };
        let mut ctx_span = None;
        if let Some(pt) = ctx_param {
            ctx_span = Some(first_token_span(&pt.ty));
            if mode_v == Mode::Inline && !matches!(&*pt.ty, Type::Reference(_)) {
                errs.spanned(&pt.ty, "an inline handler borrows its context: `ctx: &Ctx`");
            } else if mode_v != Mode::Inline && matches!(&*pt.ty, Type::Reference(_)) {
                errs.spanned(
                    &pt.ty,
                    format!("{} handlers own their context: `ctx: Ctx`", mode_v.as_str()),
                );
            }
        }
        for extra in params.iter().skip(if acceptor { 3 } else { 2 }) {
            if acceptor {
                errs.spanned(extra, "a tunnel acceptor takes the event, the opening and, optionally, the context (`ctx: &Ctx`); nothing else");
            } else if !last_segment_is(&extra.ty, "Opening") {
                errs.spanned(extra, "a handler takes the event and, optionally, the context (`ctx: &Ctx`); nothing else");
            }
        }
        let ret = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => {
                if contains_impl_trait(ty) {
                    errs.spanned(
                        ty,
                        "a handler cannot return `impl Trait`: name the response type",
                    );
                }
                Some((**ty).clone())
            }
        };
        if let Err(e) = errs.finish() {
            errors.push(e);
        }
        Some(Self {
            method: sig.ident.clone(),
            mode: mode_v,
            limit: limit.map_or(1, |l| l.value),
            is_async,
            receiver,
            event: event?,
            by_ref,
            ctx_span,
            ctx_ty: ctx_param.map(|pt| (*pt.ty).clone()),
            ret,
            acceptor: params.get(1).filter(|_| acceptor).map(|pt| first_token_span(&pt.ty)),
        })
    }
}

fn first_token_span(tokens: &impl quote::ToTokens) -> Span {
    tokens.to_token_stream().into_iter().next().map_or_else(Span::call_site, |t| t.span())
}

/// `str`, `[T]` and `dyn Trait` can never be events (events are sized structs); said here
/// because the type system's own message for them is confusing.
fn is_unsized(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.qself.is_none() && p.path.is_ident("str"),
        Type::Slice(_) | Type::TraitObject(_) => true,
        Type::Paren(p) => is_unsized(&p.elem),
        _ => false,
    }
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        Type::Reference(r) => last_segment_is(&r.elem, name),
        _ => false,
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Reference(r) => contains_impl_trait(&r.elem),
        Type::Paren(p) => contains_impl_trait(&p.elem),
        Type::Path(p) => p.path.segments.iter().any(|s| match &s.arguments {
            syn::PathArguments::AngleBracketed(a) => a
                .args
                .iter()
                .any(|g| matches!(g, syn::GenericArgument::Type(t) if contains_impl_trait(t))),
            _ => false,
        }),
        Type::Tuple(t) => t.elems.iter().any(contains_impl_trait),
        _ => false,
    }
}
