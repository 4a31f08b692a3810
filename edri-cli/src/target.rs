//! The router a command talks to: its address as the user gave it, the token, the time limit,
//! and the HTTP requests made to it (one connection per request, HTTP/1.1 with hyper).

use crate::error::CliError;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;

/// A router's API broker.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port`.
    authority: String,
    /// A path the broker is mounted under (`/edri-api` behind a proxy), or empty.
    prefix: String,
    /// What the user typed, for messages.
    given: String,
    token: Option<String>,
    timeout: Duration,
}

/// An HTTP answer: its status code and body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Target {
    /// `127.0.0.1:8080`, `localhost:8080/prefix` or `http://host:port[/prefix]`.
    pub(crate) fn parse(
        addr: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, CliError> {
        let rest = match addr.split_once("://") {
            None => addr,
            Some(("http" | "HTTP", rest)) => rest,
            Some((scheme, _)) => {
                return Err(CliError::Usage(format!(
                    "`{addr}`: only plain http is supported, not {scheme} (put a TLS proxy's \
                     plain side or the router's own address here)"
                )));
            }
        };
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(CliError::Usage(format!(
                "`{addr}` is not a router address: expected HOST:PORT, like 127.0.0.1:8080"
            )));
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
        let authority = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        let token = token.filter(|t| !t.is_empty());
        Ok(Self { authority, prefix, given: addr.to_owned(), token, timeout })
    }

    /// The address as the user gave it.
    pub(crate) fn given(&self) -> &str {
        &self.given
    }

    /// The time limit of one exchange with the router.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bearer token, if one is set.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The URL of the WebSocket endpoint.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}{}/edri/ws", self.authority, self.prefix)
    }

    /// The error for an exchange that took longer than the time limit.
    pub(crate) fn timed_out(&self) -> CliError {
        CliError::Timeout { addr: self.given.clone(), secs: self.timeout.as_secs_f64() }
    }

    /// The error for a router that cannot be reached.
    pub(crate) fn unreachable(&self, reason: impl std::fmt::Display) -> CliError {
        CliError::Unreachable { addr: self.given.clone(), reason: reason.to_string() }
    }

    /// `GET path`, answered with JSON and a 2xx status.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Value, CliError> {
        let reply = self.request(Method::GET, path, None).await?;
        if !(200..300).contains(&reply.status) {
            return Err(self.refusal(&format!("GET {path}"), &reply));
        }
        reply.json().map_err(|e| {
            CliError::Router(format!("GET {path}: the router's answer is not JSON: {e}"))
        })
    }

    /// One request; any status is an answer. `path` starts with `/` and may carry a query.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CliError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CliError> {
        let stream = TcpStream::connect(&self.authority).await.map_err(|e| self.unreachable(e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e))?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CliError::Usage(format!("cannot make the request for {path}: {e}")))?;
        let response = sender.send_request(request).await.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| self.unreachable(e))?;
        driver.abort();
        Ok(Reply { status, body: body.to_bytes() })
    }

    /// The error for a non-2xx `reply` to `what` (`GET /edri/events`).
    pub(crate) fn refusal(&self, what: &str, reply: &Reply) -> CliError {
        if reply.status == 401 {
            return CliError::unauthorized(self.token.is_some());
        }
        CliError::Router(format!("{what}: {}", reply.error_text()))
    }
}

impl Reply {
    /// The body as JSON.
    pub(crate) fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// An error answer in one line: `404 not_found: no note 5 (field `id`)`, from the
    /// broker's `{"error": {"status", "message", "field"}}`, else the body's text.
    pub(crate) fn error_text(&self) -> String {
        match self.json() {
            Ok(body) if body["error"].is_object() => {
                format!("{} {}", self.status, error_line(&body["error"]))
            }
            _ => {
                let text = String::from_utf8_lossy(&self.body);
                let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let text: String = text.chars().take(200).collect();
                if text.is_empty() {
                    format!("HTTP {}", self.status)
                } else {
                    format!("HTTP {}: {text}", self.status)
                }
            }
        }
    }
}

/// `{"status", "message", "field"?}` (a REST error or a WebSocket error reply) in one line.
pub(crate) fn error_line(error: &Value) -> String {
    let status = error["status"].as_str().unwrap_or("error");
    let message = error["message"].as_str().unwrap_or("(no message)");
    match error["field"].as_str() {
        Some(field) => format!("{status}: {message} (field `{field}`)"),
        None => format!("{status}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(addr: &str) -> Result<Target, CliError> {
        Target::parse(addr, None, Duration::from_secs(1))
    }

    #[test]
    fn addresses_with_and_without_scheme_port_and_prefix() {
        let t = parse("127.0.0.1:8080").unwrap();
        assert_eq!((t.authority.as_str(), t.prefix.as_str()), ("127.0.0.1:8080", ""));
        let t = parse("http://localhost/api/").unwrap();
        assert_eq!((t.authority.as_str(), t.prefix.as_str()), ("localhost:80", "/api"));
        assert_eq!(t.ws_url(), "ws://localhost:80/api/edri/ws");
        let t = parse("[::1]:9000").unwrap();
        assert_eq!(t.authority, "[::1]:9000");
        assert!(matches!(parse("https://x:1"), Err(CliError::Usage(m)) if m.contains("https")));
        assert!(matches!(parse(""), Err(CliError::Usage(_))));
        assert!(matches!(parse("user@host:1"), Err(CliError::Usage(_))));
    }

    #[test]
    fn error_answers_are_one_line() {
        let reply = Reply {
            status: 400,
            body: Bytes::from_static(
                br#"{"error": {"status": "invalid", "message": "bad", "field": "b"}}"#,
            ),
        };
        assert_eq!(reply.error_text(), "400 invalid: bad (field `b`)");
        let reply =
            Reply { status: 502, body: Bytes::from_static(b"<html>\n bad\n gateway</html>") };
        assert_eq!(reply.error_text(), "HTTP 502: <html> bad gateway</html>");
    }
}
