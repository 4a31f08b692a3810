//! `#[event]`'s model: the kind, the arguments and the struct with its `#[response]` fields
//! moved out.

use super::fields::{parse_http, path_params};
use crate::attr::{self, Spanned};
use crate::ctxt::Errors;
use proc_macro2::{Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, ItemStruct, LitStr, Path, Token, Type};

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
    /// Parses and checks. On error the definition holds what could be understood, every
    /// argument in error left out (a misspelled kind is read as the kind it is closest to), so
    /// that the full expansion can still be emitted beside the errors: then only the user's
    /// mistakes are reported, not their consequences where the event is used.
    pub(crate) fn parse(
        args: TokenStream,
        mut item: ItemStruct,
        errors: &mut Errors,
    ) -> Option<Self> {
        let mut a = EventArgs::default();
        let mut guessed_kind = None;
        attr::parse_args(args.clone(), errors, |ident, meta, _| match ident.to_string().as_str() {
            "notification" | "request" | "tunnel" => {
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
                attr::set_once(&mut a.kind, ident, kind)?;
                // After the kind is set: `request = true` is an error but still a request.
                attr::flag(meta)
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
                attr::set_once(&mut a.local, ident, ())?;
                attr::flag(meta)
            }
            "http" => attr::set_once(&mut a.http, ident, attr::string(meta)?),
            "ws" => {
                attr::set_once(&mut a.ws, ident, ())?;
                attr::flag(meta)
            }
            "crate" => attr::set_once(&mut a.krate, ident, attr::path(meta)?),
            _ => {
                guessed_kind = guessed_kind.or_else(|| kind_like(ident));
                Err(attr::unknown("edri event", ident, EVENT_ARGS))
            }
        });

        let args_ok = errors.is_empty();
        let kind = match &a.kind {
            Some(k) => k.value,
            None => {
                // An argument error (say `reqest`) already explains a missing kind.
                if args_ok {
                    errors.at(
                        Span::call_site(),
                        "an edri event needs its kind: `#[event(notification)]`, `#[event(request)]` or `#[event(tunnel, send = T, receive = U)]`",
                    );
                }
                guessed_kind.unwrap_or_else(|| a.implied_kind(&item))
            }
        };
        if !item.generics.params.is_empty() {
            errors.spanned(&item.generics, "an edri event cannot be generic: the router registers each event type at link time");
        }
        for attr in &mut item.attrs {
            remove_serde_derives(attr, errors);
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
                // The item type given, `()` for the one missing.
                let unit = || syn::parse_quote!(());
                Some((s.map_or_else(unit, |s| s.value), r.map_or_else(unit, |r| r.value)))
            }
            _ => None,
        };
        let http_span = a.http.as_ref().map(|h| h.value.span());
        let http = a.http.and_then(|h| {
            let route = errors.ok(parse_http(&h.value));
            if kind != Kind::Request {
                errors.at(
                    h.span,
                    format!(
                        "`http = ..` routes are for requests; this event is a {}",
                        kind.as_str()
                    ),
                );
                return None;
            }
            route
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
                        // Out of the request all the same: the mark says it is no part of it.
                        response_fields.push(field);
                    } else {
                        response_fields.push(field);
                    }
                }
            }
            fields => {
                for f in fields.iter_mut() {
                    if let Some(mark) = f.attrs.iter().find(|at| at.path().is_ident("response")) {
                        errors
                            .spanned(mark, "`#[response]` fields need a struct with named fields");
                    }
                    f.attrs.retain(|at| !at.path().is_ident("response"));
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
        let mut ws = a.ws.is_some();
        if let Some(w) = &a.ws
            && kind == Kind::Tunnel
        {
            errors.at(w.span, "`ws` exposes requests and notifications; tunnels cannot be used over the WebSocket API");
            ws = false;
        }
        let mut http = http;
        if matches!(item.fields, syn::Fields::Unnamed(_)) {
            let exposed = a.ws.as_ref().map(|w| w.span).or(http_span);
            if let Some(span) = exposed {
                errors.at(span, "an event exposed through `http` or `ws` needs named fields (or none): the API fills fields from JSON by name");
                (ws, http) = (false, None);
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
            ws,
            krate,
            response_fields,
            item,
        })
    }
}

impl EventArgs {
    /// The kind the other arguments and the fields imply, for an event whose kind is missing
    /// or misspelled: a response or a route makes a request, items a tunnel.
    fn implied_kind(&self, item: &ItemStruct) -> Kind {
        let response_field =
            item.fields.iter().any(|f| f.attrs.iter().any(|at| at.path().is_ident("response")));
        if self.send.is_some() || self.receive.is_some() {
            Kind::Tunnel
        } else if self.response.is_some() || self.http.is_some() || response_field {
            Kind::Request
        } else {
            Kind::Notification
        }
    }
}

/// The kind a misspelled argument stands for (`reqest`: a request), if it is close to one.
fn kind_like(ident: &syn::Ident) -> Option<Kind> {
    match attr::closest(&ident.to_string(), &["notification", "request", "tunnel"])? {
        "notification" => Some(Kind::Notification),
        "request" => Some(Kind::Request),
        _ => Some(Kind::Tunnel),
    }
}

/// Reports `Serialize` and `Deserialize` in a `#[derive]` (`#[event]` derives them) and takes
/// them out of it, so that the expansion emitted beside the error does not add conflicting
/// impls.
fn remove_serde_derives(attr: &mut Attribute, errors: &mut Errors) {
    if !attr.path().is_ident("derive") {
        return;
    }
    // A malformed `derive` is rustc's to report.
    let Ok(paths) = attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated) else {
        return;
    };
    let mut kept = Punctuated::<Path, Token![,]>::new();
    for path in paths {
        match path.segments.last() {
            Some(last) if last.ident == "Serialize" || last.ident == "Deserialize" => {
                errors.spanned(
                    &path,
                    format!(
                        "`#[event]` already derives `{}`: remove it from this derive",
                        last.ident
                    ),
                );
            }
            _ => kept.push(path),
        }
    }
    if let syn::Meta::List(list) = &mut attr.meta {
        list.tokens = quote::quote!(#kept);
    }
}
