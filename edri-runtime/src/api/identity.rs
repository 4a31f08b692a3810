//! Who calls: bearer tokens with names ([`Api::token_named`](super::Api::token_named)), the
//! check of each request against them, and [`Caller`] as an axum extractor for the routes
//! users merge into the broker.

use super::NamedToken;
use super::rest::error_response;
use crate::{Caller, Status};
use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;

/// The caller of `request`: `Ok(None)` when no token is configured (the API is open),
/// `Ok(Some(name))` for a known token, else the `401` to answer.
///
/// The token comes from `Authorization: Bearer <token>`, or, on `/edri/ws` and the page
/// `/edri` only (browsers cannot set headers there), from `?access_token=<token>` and
/// `?token=<token>` respectively. Every configured token
/// is compared, each in time independent of where it differs.
pub(crate) fn authenticate(
    request: &Request,
    tokens: &[NamedToken],
) -> Result<Option<Caller>, Box<Response>> {
    if tokens.is_empty() {
        return Ok(None);
    }
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim().to_owned());
    // Browsers cannot set the header when opening a WebSocket or a page: those two take the
    // token from the query, form-decoded as browsers encode it (`encodeURIComponent`).
    let from_query = || {
        let param = match request.uri().path() {
            "/edri/ws" => "access_token",
            super::page::PATH => super::page::TOKEN_PARAM,
            _ => return None,
        };
        let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri());
        query.ok()?.0.into_iter().find(|(key, _)| key == param).map(|(_, v)| v)
    };
    let found = [from_header, from_query()].into_iter().flatten().find_map(|given| {
        // Every token is compared, the match kept: no early exit on the first.
        tokens.iter().fold(None, |found, token| {
            if same(given.as_bytes(), token.secret.as_bytes()) {
                Some(token.name.clone())
            } else {
                found
            }
        })
    });
    match found {
        Some(caller) => Ok(Some(caller)),
        None => {
            let message = "a bearer token is required: `Authorization: Bearer <token>`";
            let mut response = error_response(Status::Unauthorized, message, None);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(Box::new(response))
        }
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `caller: Caller` in a route merged into the broker ([`Api::merge`](super::Api::merge)):
/// the name of the token the request presented. Without any token configured there is no
/// caller, and the route answers `401` (take `Option<Caller>` to serve both).
///
/// ```
/// use edri::Caller;
/// use edri::api::{Api, axum::{Router, routing::get}};
/// async fn whoami(caller: Caller) -> String {
///     format!("hello, {caller}")
/// }
/// let api = Api::new("127.0.0.1:0")
///     .token_named("alice", "s3cret")
///     .merge(Router::new().route("/whoami", get(whoami)));
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            let message = "this route needs an authenticated caller, and the API has no token";
            error_response(Status::Unauthorized, message, None).into_response()
        })
    }
}

/// `Option<Caller>`: `None` where the API has no token configured.
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<NamedToken> {
        [("alice", "a-secret"), ("bob", "b-secret"), ("alice", "a-new-secret")]
            .map(|(name, secret)| NamedToken { name: Caller::new(name), secret: secret.into() })
            .to_vec()
    }

    fn with(auth: Option<&str>, uri: &str) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn each_token_names_its_caller() {
        let t = tokens();
        let name = |auth, uri| authenticate(&with(auth, uri), &t).ok().flatten();
        assert_eq!(name(Some("Bearer a-secret"), "/x"), Some(Caller::new("alice")));
        assert_eq!(name(Some("bearer a-new-secret"), "/x"), Some(Caller::new("alice")));
        assert_eq!(name(Some("Bearer b-secret"), "/x"), Some(Caller::new("bob")));
        assert_eq!(name(None, "/edri/ws?access_token=b-secret"), Some(Caller::new("bob")));
        assert_eq!(name(None, "/edri?token=a-secret"), Some(Caller::new("alice")));
        assert!(authenticate(&with(None, "/x?access_token=b-secret"), &t).is_err());
        assert!(authenticate(&with(None, "/edri/events?token=b-secret"), &t).is_err());
        assert!(authenticate(&with(Some("Bearer nope"), "/x"), &t).is_err());
        assert!(authenticate(&with(Some("Basic a-secret"), "/x"), &t).is_err());
        assert_eq!(authenticate(&with(None, "/x"), &[]).ok(), Some(None));
    }
}
