//! `#[manager]`'s model: the impl block, its options and its `#[solve]` handlers.

use super::solve::SolveDef;
use crate::attr::{self, Spanned};
use crate::ctxt::Errors;
use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, ImplItem, ItemImpl, LitStr, Path, Type};

pub(crate) const MANAGER_ARGS: &[&str] = &["queue", "capacity", "name", "manual", "crate"];
pub(crate) const SOLVE_ARGS: &[&str] = &["inline", "thread", "process", "limit"];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    Fifo,
    Priority,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Inline,
    Thread,
    Process,
}

impl Mode {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Thread => "thread",
            Self::Process => "process",
        }
    }
}

/// `#[manager(...)]` on an impl block.
pub(crate) struct ManagerDef {
    pub(crate) item: ItemImpl,
    pub(crate) self_ty: Type,
    pub(crate) name: String,
    pub(crate) queue: Queue,
    pub(crate) capacity: Option<usize>,
    pub(crate) manual: bool,
    pub(crate) krate: TokenStream,
    pub(crate) handlers: Vec<SolveDef>,
}

impl ManagerDef {
    pub(crate) fn parse(args: TokenStream, mut item: ItemImpl, errors: &mut Errors) -> Self {
        let mut queue: Option<Spanned<Queue>> = None;
        let mut capacity: Option<Spanned<usize>> = None;
        let mut name: Option<Spanned<LitStr>> = None;
        let mut manual: Option<Spanned<()>> = None;
        let mut krate: Option<Spanned<Path>> = None;
        attr::parse_args(args, errors, |ident, meta, _| match ident.to_string().as_str() {
            "queue" => {
                let value: Ident = meta.value()?.parse()?;
                let q = match value.to_string().as_str() {
                    "fifo" => Queue::Fifo,
                    "priority" => Queue::Priority,
                    _ => {
                        return Err(syn::Error::new(
                            value.span(),
                            format!("unknown queue `{value}`; expected `fifo` or `priority`"),
                        ));
                    }
                };
                attr::set_once(&mut queue, ident, q)
            }
            "capacity" => {
                let n: usize = attr::int(meta, "a mailbox capacity of at least 1")?;
                if n == 0 {
                    return Err(meta.error("a mailbox capacity must be at least 1"));
                }
                attr::set_once(&mut capacity, ident, n)
            }
            "name" => attr::set_once(&mut name, ident, attr::string(meta)?),
            "manual" => {
                attr::flag(meta)?;
                attr::set_once(&mut manual, ident, ())
            }
            "crate" => attr::set_once(&mut krate, ident, attr::path(meta)?),
            _ => Err(attr::unknown("edri manager", ident, MANAGER_ARGS)),
        });

        if let Some((_, path, _)) = &item.trait_ {
            errors.spanned(path, "`#[manager]` goes on an inherent impl block (`impl MyManager { .. }`), not on a trait impl");
        }
        if !item.generics.params.is_empty() {
            errors.spanned(&item.generics, "an edri manager cannot be generic: the router registers each manager type at link time");
        }
        let self_ty = (*item.self_ty).clone();
        let default_name = match &self_ty {
            Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        let name = name
            .map(|n| n.value.value())
            .or(default_name)
            .unwrap_or_else(|| quote::quote!(#self_ty).to_string());

        let mut handlers = Vec::new();
        let mut marked = 0;
        for impl_item in &mut item.items {
            if let ImplItem::Fn(f) = impl_item {
                let solves: Vec<Attribute> =
                    f.attrs.iter().filter(|a| is_solve(a)).cloned().collect();
                if solves.is_empty() {
                    continue;
                }
                marked += 1;
                f.attrs.retain(|a| !is_solve(a));
                for extra in solves.iter().skip(1) {
                    errors.spanned(extra, "duplicate `#[solve]` on one method");
                }
                if let Some(h) = SolveDef::parse(&solves[0], f, errors) {
                    // Thread and process handlers must own their event and context (the shape
                    // edri requires), so pedantic's `needless_pass_by_value` is not theirs to fix.
                    if h.mode != Mode::Inline {
                        f.attrs.push(syn::parse_quote!(#[allow(clippy::needless_pass_by_value)]));
                    }
                    handlers.push(h);
                }
                // Keep the attribute as the user wrote its path (so their `use` of it counts and
                // IDEs resolve it), marked as checked: `#[solve]` then passes the method through.
                let path = solves[0].path();
                f.attrs.insert(0, syn::parse_quote!(#[#path(__edri_checked)]));
            }
        }
        check_one_handler_per_event(&handlers, errors);
        if marked == 0 {
            errors.at(
                Span::call_site(),
                "this manager has no handlers: mark its handler methods with `#[solve]`",
            );
        }

        Self {
            item,
            self_ty,
            name,
            queue: queue.map_or(Queue::Fifo, |q| q.value),
            capacity: capacity.map(|c| c.value),
            manual: manual.is_some(),
            krate: attr::krate(krate),
            handlers,
        }
    }
}

fn is_solve(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "solve")
}

fn check_one_handler_per_event(handlers: &[SolveDef], errors: &mut Errors) {
    for (i, h) in handlers.iter().enumerate() {
        let key = type_key(&h.event);
        if let Some(first) = handlers[..i].iter().find(|o| type_key(&o.event) == key) {
            errors.spanned(
                &h.event,
                format!("`{key}` already has a handler in this manager: `{}`; one manager handles an event once", first.method),
            );
        }
    }
}

pub(crate) fn type_key(ty: &Type) -> String {
    quote::quote!(#ty).to_string().replace(' ', "")
}
