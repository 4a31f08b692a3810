//! REST routes from `#[event(http = "METHOD /path/{param}")]`: binding path, query and body
//! to the event's fields, and answering with the response or the failure's HTTP status.

use super::catalog::{Catalog, Entry};
use super::schema::Coerce;
use super::server::ApiState;
use crate::error::StartError;
use crate::{Failure, Status};
use axum::Router;
use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Paths the broker serves itself.
const RESERVED: &[&str] = &[
    "/edri",
    "/edri/health",
    "/edri/events",
    "/edri/openapi.json",
    "/edri/topology",
    "/edri/ws",
    "/metrics",
];

/// The HTTP status code of a failure status: `Invalid` 400, `Unauthorized` 401, `Forbidden`
/// 403, `NotFound` 404, `MethodNotAllowed` 405, `Conflict` 409, `TooLarge` 413, `Failed` and
/// `Crashed` 500, `Unavailable` 503, `Timeout` 504.
pub fn http_status(status: Status) -> u16 {
    match status {
        Status::Invalid => 400,
        Status::Unauthorized => 401,
        Status::Forbidden => 403,
        Status::NotFound => 404,
        Status::MethodNotAllowed => 405,
        Status::Conflict => 409,
        Status::TooLarge => 413,
        Status::Failed | Status::Crashed => 500,
        Status::Unavailable => 503,
        Status::Timeout => 504,
    }
}

/// A JSON response.
pub(crate) fn json_response<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => error_response(Status::Failed, &format!("cannot encode the response: {e}"), None),
    }
}

/// `{"error": {"status", "message", "field"?}}` with the HTTP status of `status`.
pub(crate) fn error_response(status: Status, message: &str, field: Option<&str>) -> Response {
    let code =
        StatusCode::from_u16(http_status(status)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &json!({ "error": error_object(status, message, field) }))
}

/// `{"status", "message", "field"?}`: the error of a REST response and of a WebSocket reply.
pub(crate) fn error_object(status: Status, message: &str, field: Option<&str>) -> Value {
    let mut error = json!({ "status": status.as_str(), "message": message });
    if let Some(field) = field {
        error["field"] = Value::from(field);
    }
    error
}

/// The response of a failed request.
pub(crate) fn failure_response(failure: &Failure) -> Response {
    error_response(failure.status(), failure.message(), None)
}

/// One route per `http = ..` event, grouped by path so that a wrong method gets `405`.
pub(crate) fn routes(catalog: &Catalog) -> Result<Router<Arc<ApiState>>, StartError> {
    // Routes by path shape (parameter names erased): axum refuses two paths that differ only
    // in their parameter names, so those are reported here, naming both events.
    let mut by_shape: BTreeMap<String, Vec<(&'static str, &'static str, &'static str)>> =
        BTreeMap::new();
    for entry in catalog.events.values() {
        let meta = entry.registration.meta;
        if let Some(http) = meta.http {
            by_shape.entry(shape(http.path)).or_default().push((http.path, http.method, meta.name));
        }
    }
    let mut router = Router::new();
    for (shape, mut routes) in by_shape {
        routes.sort_unstable();
        if RESERVED.contains(&shape.as_str()) {
            return Err(StartError::ApiRoutes(format!(
                "event `{}` declares `{} {}`, a path the API broker serves itself",
                routes[0].2, routes[0].1, routes[0].0
            )));
        }
        for pair in routes.windows(2) {
            let ((path_a, method_a, a), (path_b, method_b, b)) = (pair[0], pair[1]);
            if path_a != path_b {
                return Err(StartError::ApiRoutes(format!(
                    "events `{a}` (`{method_a} {path_a}`) and `{b}` (`{method_b} {path_b}`) \
                     share a route but name its parameters differently; use the same names"
                )));
            }
            if method_a == method_b {
                return Err(StartError::ApiRoutes(format!(
                    "events `{a}` and `{b}` both declare `{method_a} {path_a}`"
                )));
            }
        }
        let path = routes[0].0;
        let allow: Vec<&str> = routes.iter().map(|(_, m, _)| *m).collect();
        let allow =
            HeaderValue::from_str(&allow.join(", ")).unwrap_or(HeaderValue::from_static(""));
        let mut methods = MethodRouter::new();
        for (_, method, event) in routes {
            methods = methods.on(filter(method), move |state, params, query, body| {
                call(state, event, params, query, body)
            });
        }
        let methods = methods.fallback(move |request: axum::extract::Request| {
            let allow = allow.clone();
            async move {
                let message = format!(
                    "{} is not allowed on {}; allowed: {}",
                    request.method(),
                    request.uri().path(),
                    allow.to_str().unwrap_or("")
                );
                let mut response = error_response(Status::MethodNotAllowed, &message, None);
                response.headers_mut().insert(header::ALLOW, allow);
                response
            }
        });
        router =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| router.route(path, methods)))
                .map_err(|panic| {
                    StartError::ApiRoutes(format!(
                        "the route `{path}` cannot be served: {}",
                        crate::manager::panic_message(&*panic)
                    ))
                })?;
    }
    Ok(router)
}

/// `/files/{dir}` → `/files/{}`.
fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push('{');
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    out.push('}');
                }
            }
            _ if depth > 0 => {}
            c => out.push(c),
        }
    }
    out
}

fn filter(method: &str) -> MethodFilter {
    match method {
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

type Params = Result<Path<Vec<(String, String)>>, PathRejection>;

async fn call(
    State(state): State<Arc<ApiState>>,
    event: &'static str,
    params: Params,
    query: RawQuery,
    body: axum::body::Body,
) -> Response {
    let Some(entry) = state.catalog.events.get(event) else {
        return error_response(Status::NotFound, "no such event", None);
    };
    let body = match read_body(&state, body).await {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let value = match bind(entry, params, query, body) {
        Ok(value) => value,
        Err(response) => return *response,
    };
    let pending = match (entry.hooks.call)(state.ctx.clone(), value, state.timeout) {
        Ok(pending) => pending,
        Err(e) => return error_response(Status::Invalid, &e.to_string(), e.field.as_deref()),
    };
    match pending.await {
        Ok(response) => json_response(StatusCode::OK, &response),
        Err(failure) => failure_response(&failure),
    }
}

/// The body, within the body limit and the body timeout.
async fn read_body(state: &ApiState, body: axum::body::Body) -> Result<Bytes, Box<Response>> {
    let (limit, timeout) = (state.config.body_limit, state.config.body_timeout);
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            Err(Box::new(if too_large {
                let message = format!("the body is over the limit of {limit} bytes");
                error_response(Status::TooLarge, &message, None)
            } else {
                *bad(&format!("cannot read the body: {e}"), None)
            }))
        }
        Err(_) => {
            let message = format!("the body did not arrive within {timeout:?}");
            // `408`: the client was too slow, where `Timeout` otherwise means the server was.
            let mut response = error_response(Status::Timeout, &message, None);
            *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(Box::new(response))
        }
    }
}

fn bad(message: &str, field: Option<&str>) -> Box<Response> {
    Box::new(error_response(Status::Invalid, message, field))
}

/// The event's JSON: the body's object, then query and path parameters (a field given twice
/// is an error).
fn bind(
    entry: &Entry,
    params: Params,
    query: RawQuery,
    body: Bytes,
) -> Result<Value, Box<Response>> {
    let mut object = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                return Err(bad(
                    &format!("the body must be a JSON object, not {}", kind_of(&other)),
                    None,
                ));
            }
            Err(e) => return Err(bad(&format!("the body is not valid JSON: {e}"), None)),
        }
    };
    unknown_fields(entry, &object, "field")
        .map_err(|(message, field)| bad(&message, Some(&field)))?;
    let query =
        super::query::pairs(query.0.as_deref()).map_err(|e| bad(&e.message, Some(&e.key)))?;
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in query {
        // `?count=` for a field that is not a string means "not given".
        let blank = value.is_empty()
            && entry.fields.get(&key).is_some_and(|rule| rule.coerce != Coerce::String);
        let values = grouped.entry(key).or_default();
        if !blank {
            values.push(value);
        }
    }
    grouped.retain(|_, values| !values.is_empty());
    for (key, values) in grouped {
        let Some(rule) = entry.fields.get(&key) else {
            return Err(bad(&unknown(entry, &key, "query parameter"), Some(&key)));
        };
        let value = if rule.array {
            Value::Array(values.iter().map(|v| rule.coerce.apply(v)).collect())
        } else if let [one] = values.as_slice() {
            rule.coerce.apply(one)
        } else {
            return Err(bad(
                &format!("query parameter `{key}` is given {} times", values.len()),
                Some(&key),
            ));
        };
        insert(&mut object, key, value, "query")?;
    }
    let Path(params) = params.map_err(|rejection| match &rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => bad(
                &format!("path parameter `{key}` is not valid UTF-8 once percent-decoded"),
                Some(key),
            ),
            _ => bad(&rejection.body_text(), None),
        },
        _ => bad(&rejection.body_text(), None),
    })?;
    for (key, text) in params {
        let value = match entry.fields.get(&key) {
            Some(rule) => rule.coerce.apply(&text),
            None => Value::String(text),
        };
        insert(&mut object, key, value, "path")?;
    }
    Ok(Value::Object(object))
}

/// "unknown `what` `key`; the fields are: …".
fn unknown(entry: &Entry, key: &str, what: &str) -> String {
    let mut known: Vec<&str> = entry.fields.keys().map(String::as_str).collect();
    known.sort_unstable();
    let known = if known.is_empty() { "(none)".to_owned() } else { known.join(", ") };
    format!("unknown {what} `{key}`; the fields are: {known}")
}

/// Refuses a key of `object` that is not a field of the event: a misspelt field is an error,
/// not a silently missing value. Returns the message and the key.
pub(crate) fn unknown_fields(
    entry: &Entry,
    object: &Map<String, Value>,
    what: &str,
) -> Result<(), (String, String)> {
    match object.keys().find(|key| !entry.fields.contains_key(*key)) {
        Some(key) => Err((unknown(entry, key, what), key.clone())),
        None => Ok(()),
    }
}

fn insert(
    object: &mut Map<String, Value>,
    key: String,
    value: Value,
    from: &str,
) -> Result<(), Box<Response>> {
    if object.contains_key(&key) {
        return Err(bad(
            &format!("field `{key}` is given twice (in the {from} and before)"),
            Some(&key),
        ));
    }
    object.insert(key, value);
    Ok(())
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_erase_parameter_names() {
        assert_eq!(shape("/files/{dir}/x/{name}"), "/files/{}/x/{}");
        assert_eq!(shape("/plain"), "/plain");
    }

    #[test]
    fn every_status_has_its_code() {
        let pairs = [
            (Status::Invalid, 400),
            (Status::Unauthorized, 401),
            (Status::Forbidden, 403),
            (Status::NotFound, 404),
            (Status::MethodNotAllowed, 405),
            (Status::Conflict, 409),
            (Status::TooLarge, 413),
            (Status::Failed, 500),
            (Status::Crashed, 500),
            (Status::Unavailable, 503),
            (Status::Timeout, 504),
        ];
        for (status, code) in pairs {
            assert_eq!(http_status(status), code, "{status}");
        }
    }
}
