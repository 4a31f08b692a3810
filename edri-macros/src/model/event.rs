//! `#[event]`'s model: the kind, the arguments and the struct with its `#[response]` fields
//! moved out.

use super::fields::{parse_http, path_params};
use crate::attr::{self, Spanned};
use crate::ctxt::Errors;
use proc_macro2::{Span, TokenStream};
use syn::{Attribute, ItemStruct, LitStr, Path, Type};

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
