//! `GET /edri`: a live picture of the router in one self-contained HTML page (`page.html`:
//! inline script and style, no external resource) that polls `GET /edri/topology` every
//! second and draws senders → events → managers with their rates, depths and failures.
//!
//! With a bearer token configured, the page is behind it like every route; a browser passes
//! it once as `/edri?token=..`, and the page's script sends it as an `Authorization` header
//! on its requests. `GET /` redirects to the page unless an event or a merged route serves
//! that path (on the broker's own socket; an embedded broker leaves `/` to your server).

use super::server::ApiState;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};
use std::sync::{Arc, OnceLock};

/// The page's path.
pub(crate) const PATH: &str = "/edri";
/// The query parameter that carries the bearer token on the page's address.
pub(crate) const TOKEN_PARAM: &str = "token";

/// The page, with its script and style inline.
const HTML: &str = include_str!("page.html");

/// Adds `GET /edri`.
pub(crate) fn routes(router: Router<Arc<ApiState>>) -> Router<Arc<ApiState>> {
    router.route(PATH, get(page))
}

/// `GET /` where nothing else serves it (no REST event, no merged route): the page.
pub(crate) fn root(request: &axum::extract::Request) -> Option<Response> {
    let get = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    (get && request.uri().path() == "/").then(|| Redirect::to(PATH).into_response())
}

async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CONTENT_SECURITY_POLICY, csp().clone()),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
    ];
    (headers, HTML).into_response()
}

/// The Content-Security-Policy of the page: nothing but its own inline script and style (by
/// their SHA-256) and requests to this server.
fn csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let policy = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(inline(HTML, "script")),
            hash(inline(HTML, "style")),
        );
        // The policy is ASCII by construction; an empty policy would be the safe fallback.
        HeaderValue::from_str(&policy)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    })
}

/// The text of the first `<tag>..</tag>` element of `html` (empty when there is none).
fn inline<'a>(html: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    html.split_once(open.as_str())
        .and_then(|(_, rest)| rest.split_once(close.as_str()))
        .map_or("", |(text, _)| text)
}

/// A CSP source for `text`: `sha256-<base64 of its SHA-256>`.
fn hash(text: &str) -> String {
    format!("sha256-{}", base64(&Sha256::digest(text.as_bytes())))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn the_page_has_one_script_and_one_style_and_loads_nothing_from_elsewhere() {
        for tag in ["script", "style"] {
            assert_eq!(HTML.matches(&format!("<{tag}")).count(), 1, "one <{tag}>");
            assert!(inline(HTML, tag).len() > 100, "<{tag}> has content");
        }
        // Inline `style=` attributes would need 'unsafe-inline'.
        assert!(!HTML.contains("style="), "no style attributes");
        for needle in ["src=", "@import", "url(http", "https://", "//cdn", "fonts."] {
            assert!(!HTML.contains(needle), "the page refers to {needle}");
        }
        let policy = csp().to_str().unwrap();
        assert!(policy.contains(&hash(inline(HTML, "script"))), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
    }
}
