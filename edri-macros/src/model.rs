//! The macros' own model of what the user wrote, built from the syntax and checked before
//! anything is generated.

use crate::attr::{self, Spanned};
use crate::ctxt::Errors;
use proc_macro2::{Span, TokenStream};
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, ItemStruct, LitStr, Path, ReturnType,
    Type,
};

// ---------------------------------------------------------------- #[event]

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Notification,
    Request,
    Tunnel,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "notification",
            Self::Request => "request",
            Self::Tunnel => "tunnel",
        }
    }
}

pub(crate) const EVENT_ARGS: &[&str] = &[
    "notification",
    "request",
    "tunnel",
    "name",
    "response",
    "send",
    "receive",
    "priority",
    "local",
    "http",
    "ws",
    "crate",
];

/// `#[event(...)]` after parsing and checking.
pub(crate) struct EventDef {
    pub(crate) item: ItemStruct,
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) response: Option<Type>,
    pub(crate) tunnel: Option<(Type, Type)>,
    pub(crate) priority: u8,
    pub(crate) local: bool,
    pub(crate) http: Option<(String, String)>,
    pub(crate) ws: bool,
    pub(crate) krate: TokenStream,
    /// Fields marked `#[response]`, removed from `item`.
    pub(crate) response_fields: Vec<syn::Field>,
}

#[derive(Default)]
struct EventArgs {
    kind: Option<Spanned<Kind>>,
    name: Option<Spanned<LitStr>>,
    response: Option<Spanned<Type>>,
    send: Option<Spanned<Type>>,
    receive: Option<Spanned<Type>>,
    priority: Option<Spanned<u8>>,
    local: Option<Spanned<()>>,
    http: Option<Spanned<LitStr>>,
    ws: Option<Spanned<()>>,
    krate: Option<Spanned<Path>>,
}

impl EventDef {
    /// Parses; on error returns what could be understood of the item so it can still be
    /// emitted alongside the errors.
    pub(crate) fn parse(
        args: TokenStream,
        mut item: ItemStruct,
        errors: &mut Errors,
    ) -> Option<Self> {
        let mut a = EventArgs::default();
        attr::parse_args(args.clone(), errors, |ident, meta, _| match ident.to_string().as_str() {
            "notification" | "request" | "tunnel" => {
                attr::flag(meta)?;
                let kind = match ident.to_string().as_str() {
                    "notification" => Kind::Notification,
                    "request" => Kind::Request,
                    _ => Kind::Tunnel,
                };
                if let Some(prev) = &a.kind {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!(
                            "an event has exactly one kind; it is already a {}",
                            prev.value.as_str()
                        ),
                    ));
                }
                attr::set_once(&mut a.kind, ident, kind)
            }
            "name" => {
                let lit = attr::string(meta)?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new(lit.span(), "an event name cannot be empty"));
                }
                attr::set_once(&mut a.name, ident, lit)
            }
            "response" => attr::set_once(&mut a.response, ident, attr::ty(meta)?),
            "send" => attr::set_once(&mut a.send, ident, attr::ty(meta)?),
            "receive" => attr::set_once(&mut a.receive, ident, attr::ty(meta)?),
            "priority" => attr::set_once(
                &mut a.priority,
                ident,
                attr::int(meta, "a priority from 0 (most urgent) to 255")?,
            ),
            "local" => {
                attr::flag(meta)?;
                attr::set_once(&mut a.local, ident, ())
            }
            "http" => attr::set_once(&mut a.http, ident, attr::string(meta)?),
            "ws" => {
                attr::flag(meta)?;
                attr::set_once(&mut a.ws, ident, ())
            }
            "crate" => attr::set_once(&mut a.krate, ident, attr::path(meta)?),
            _ => Err(attr::unknown("edri event", ident, EVENT_ARGS)),
        });

        let args_ok = errors.is_empty();
        let kind = match &a.kind {
            Some(k) => k.value,
            // An argument error (say `reqest`) already explains a missing kind.
            None if !args_ok => Kind::Notification,
            None => {
                errors.at(
                    Span::call_site(),
                    "an edri event needs its kind: `#[event(notification)]`, `#[event(request)]` or `#[event(tunnel, send = T, receive = U)]`",
                );
                Kind::Notification
            }
        };
        if !item.generics.params.is_empty() {
            errors.spanned(&item.generics, "an edri event cannot be generic: the router registers each event type at link time");
        }
        for attr in &item.attrs {
            check_no_serde_derive(attr, errors);
        }
        let krate = attr::krate(a.krate);

        // Kind-specific arguments.
        if let Some(r) = &a.response
            && kind != Kind::Request
        {
            errors.at(
                r.span,
                format!("`response = ..` is for requests; this event is a {}", kind.as_str()),
            );
        }
        for (slot, name) in [(&a.send, "send"), (&a.receive, "receive")] {
            if let Some(s) = slot
                && kind != Kind::Tunnel
            {
                errors.at(
                    s.span,
                    format!("`{name} = ..` is for tunnels; this event is a {}", kind.as_str()),
                );
            }
        }
        let tunnel = match (kind, a.send, a.receive) {
            (Kind::Tunnel, Some(s), Some(r)) => Some((s.value, r.value)),
            (Kind::Tunnel, s, r) => {
                let missing = if s.is_none() && r.is_none() {
                    "`send = T, receive = U`"
                } else if s.is_none() {
                    "`send = T`"
                } else {
                    "`receive = U`"
                };
                errors.at(
                    a.kind.as_ref().map_or_else(Span::call_site, |k| k.span),
                    format!("a tunnel needs the item types it carries: add {missing}"),
                );
                None
            }
            _ => None,
        };
        let http_span = a.http.as_ref().map(|h| h.value.span());
        let http = a.http.and_then(|h| {
            if kind != Kind::Request {
                errors.at(
                    h.span,
                    format!(
                        "`http = ..` routes are for requests; this event is a {}",
                        kind.as_str()
                    ),
                );
            }
            errors.ok(parse_http(&h.value))
        });

        // `#[response]` fields move into the response struct.
        let mut response_fields = Vec::new();
        match &mut item.fields {
            syn::Fields::Named(named) => {
                let fields = std::mem::take(&mut named.named);
                for mut field in fields {
                    let marks: Vec<_> = field
                        .attrs
                        .iter()
                        .filter(|at| at.path().is_ident("response"))
                        .cloned()
                        .collect();
                    if marks.is_empty() {
                        named.named.push(field);
                        continue;
                    }
                    field.attrs.retain(|at| !at.path().is_ident("response"));
                    for mark in &marks {
                        if !matches!(mark.meta, syn::Meta::Path(_)) {
                            errors.spanned(mark, "`#[response]` takes no arguments");
                        }
                    }
                    if kind != Kind::Request {
                        errors.spanned(
                            &marks[0],
                            format!(
                                "`#[response]` fields are for requests; this event is a {}",
                                kind.as_str()
                            ),
                        );
                        named.named.push(field);
                    } else if a.response.is_some() {
                        errors.spanned(&marks[0], "`#[response]` fields and `response = ..` cannot be combined: the response is either generated from the fields or the given type");
                        named.named.push(field);
                    } else {
                        response_fields.push(field);
                    }
                }
            }
            fields => {
                for f in fields.iter() {
                    if let Some(mark) = f.attrs.iter().find(|at| at.path().is_ident("response")) {
                        errors
                            .spanned(mark, "`#[response]` fields need a struct with named fields");
                    }
                }
            }
        }

        // `http` path parameters must name fields of the event.
        if let Some((_, path)) = &http {
            for param in path_params(path) {
                let found =
                    item.fields.iter().any(|f| f.ident.as_ref().is_some_and(|i| *i == param));
                if !found {
                    errors.at(
                        http_span.unwrap_or_else(Span::call_site),
                        format!("path parameter `{{{param}}}` is not a field of `{}`", item.ident),
                    );
                }
            }
        }

        // The API binds JSON objects to fields by name.
        if let Some(ws) = &a.ws
            && kind == Kind::Tunnel
        {
            errors.at(ws.span, "`ws` exposes requests and notifications; tunnels cannot be used over the WebSocket API");
        }
        if matches!(item.fields, syn::Fields::Unnamed(_)) {
            let exposed = a.ws.as_ref().map(|w| w.span).or(http_span);
            if let Some(span) = exposed {
                errors.at(span, "an event exposed through `http` or `ws` needs named fields (or none): the API fills fields from JSON by name");
            }
        }

        let name = a.name.map_or_else(|| item.ident.to_string(), |n| n.value.value());
        Some(Self {
            kind,
            name,
            response: a.response.map(|r| r.value),
            tunnel,
            priority: a.priority.map_or(0, |p| p.value),
            local: a.local.is_some(),
            http,
            ws: a.ws.is_some(),
            krate,
            response_fields,
            item,
        })
    }
}

fn check_no_serde_derive(attr: &Attribute, errors: &mut Errors) {
    if !attr.path().is_ident("derive") {
        return;
    }
    let _ = attr.parse_nested_meta(|meta| {
        if let Some(last) = meta.path.segments.last()
            && (last.ident == "Serialize" || last.ident == "Deserialize")
        {
            errors.spanned(
                &meta.path,
                format!("`#[event]` already derives `{}`: remove it from this derive", last.ident),
            );
        }
        Ok(())
    });
}

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

fn parse_http(lit: &LitStr) -> syn::Result<(String, String)> {
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

// ---------------------------------------------------------------- #[manager] / #[solve]

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
    fn as_str(self) -> &'static str {
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
    /// The declared return type, or `None` for `()`.
    pub(crate) ret: Option<Type>,
    /// A tunnel acceptor: the span of its second parameter's type, the `Opening<E>`.
    pub(crate) acceptor: Option<Span>,
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

impl SolveDef {
    fn parse(attr: &Attribute, f: &ImplItemFn, errors: &mut Errors) -> Option<Self> {
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
