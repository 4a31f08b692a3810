//! `edri call ADDR EVENT '{json}'`: sends one event through the router's API and prints the
//! answer. Over the WebSocket when the event is `ws`, else over its REST route (`--via`
//! chooses).

use crate::catalog::{Catalog, Entry, Route};
use crate::error::CliError;
use crate::target::{Target, error_line};
use crate::ws::Socket;
use hyper::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

/// How `call` reaches the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    /// The WebSocket (`/edri/ws`): events declared with `ws`.
    Ws,
    /// The event's REST route: events declared with `http = ".."`.
    Http,
}

/// What stays as it is in a path segment or a query value.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Reads the JSON argument: an object of the event's fields.
pub(crate) fn fields(text: &str) -> Result<Map<String, Value>, CliError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(CliError::Usage(format!(
            "the event's fields must be a JSON object like '{{\"a\": 1}}', not `{other}`"
        ))),
        Err(e) => Err(CliError::Usage(format!("the event's fields are not valid JSON: {e}"))),
    }
}

/// Sends `event` with `data` and prints the answer as JSON.
pub(crate) async fn run(
    target: &Target,
    event: &str,
    data: &str,
    via: Option<Via>,
) -> Result<(), CliError> {
    let fields = fields(data)?;
    let (catalog, _) = Catalog::fetch(target).await?;
    let entry = catalog.find(event)?;
    let via = match (via, entry.ws, &entry.http) {
        (Some(Via::Ws), false, _) => {
            return Err(CliError::Router(format!("`{event}` is not exposed on the WebSocket")));
        }
        (Some(Via::Http), _, None) => {
            return Err(CliError::Router(format!("`{event}` has no REST route")));
        }
        (Some(via), ..) => via,
        (None, true, _) => Via::Ws,
        (None, false, Some(_)) => Via::Http,
        (None, false, None) => {
            return Err(CliError::Router(format!(
                "`{event}` has neither a REST route nor `ws`: the API cannot send it"
            )));
        }
    };
    let answer = match (via, &entry.http) {
        (Via::Http, Some(route)) => over_rest(target, entry, route, fields).await?,
        _ => over_ws(target, event, fields).await?,
    };
    println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
    Ok(())
}

/// `{"event", "id": 1, "data"}` on the WebSocket; the `ok` of its answer.
async fn over_ws(
    target: &Target,
    event: &str,
    data: Map<String, Value>,
) -> Result<Value, CliError> {
    let mut socket = Socket::connect(target).await?;
    socket.send(&json!({ "event": event, "id": 1, "data": data })).await?;
    let mut answer = socket.answer(1).await?;
    if answer["error"].is_object() {
        return Err(CliError::Router(format!("{event}: {}", error_line(&answer["error"]))));
    }
    Ok(answer["ok"].take())
}

/// The event's REST route: path parameters from the fields, the other fields in the query
/// (GET, DELETE) or as the JSON body.
async fn over_rest(
    target: &Target,
    entry: &Entry,
    route: &Route,
    mut fields: Map<String, Value>,
) -> Result<Value, CliError> {
    let mut path = fill_path(&entry.name, route, &mut fields)?;
    let method = Method::from_bytes(route.method.as_bytes()).map_err(|_| {
        CliError::Router(format!("`{}`: unknown method {}", entry.name, route.method))
    })?;
    let body = if matches!(method, Method::GET | Method::DELETE | Method::HEAD) {
        let query = query(&fields);
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        None
    } else {
        Some(Value::Object(fields).to_string().into_bytes())
    };
    let reply = target.request(method, &path, body).await?;
    if reply.status == 401 {
        return Err(CliError::unauthorized(target.token().is_some()));
    }
    if !(200..300).contains(&reply.status) {
        return Err(CliError::Router(format!("{}: {}", entry.name, reply.error_text())));
    }
    reply
        .json()
        .map_err(|e| CliError::Router(format!("{}: the answer is not JSON: {e}", entry.name)))
}

/// `/notes/{id}` with the field `id` taken out of `fields`, percent-encoded (`{*rest}` keeps
/// its slashes).
fn fill_path(
    event: &str,
    route: &Route,
    fields: &mut Map<String, Value>,
) -> Result<String, CliError> {
    let mut path = String::new();
    let mut rest = route.path.as_str();
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let param = &rest[open + 1..close];
        let (name, wildcard) = param.strip_prefix('*').map_or((param, false), |n| (n, true));
        let value = fields.remove(name).ok_or_else(|| {
            CliError::Usage(format!(
                "`{event}` needs the field `{name}`: it is part of its route {} {}",
                route.method, route.path
            ))
        })?;
        let text = text_of(&value);
        if wildcard {
            let parts: Vec<String> =
                text.split('/').map(|p| utf8_percent_encode(p, KEEP).to_string()).collect();
            path.push_str(&parts.join("/"));
        } else {
            path.extend(utf8_percent_encode(&text, KEEP));
        }
        rest = rest.get(close + 1..).unwrap_or("");
    }
    path.push_str(rest);
    Ok(path)
}

/// The fields as a query string: arrays as repeated parameters, `null`s left out.
fn query(fields: &Map<String, Value>) -> String {
    let mut pairs = Vec::new();
    for (name, value) in fields {
        let values = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            value => vec![value],
        };
        for value in values {
            let text = text_of(value);
            let (name, value) = (utf8_percent_encode(name, KEEP), utf8_percent_encode(&text, KEEP));
            pairs.push(format!("{name}={value}"));
        }
    }
    pairs.join("&")
}

/// A value as path or query text: a string as it is, anything else as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route { method: method.into(), path: path.into() }
    }

    #[test]
    fn path_parameters_come_out_of_the_fields() {
        let mut fields = fields(r#"{"id": 7, "dir": "a b/c", "x": [1, 2], "y": null}"#).unwrap();
        let path = fill_path("E", &route("GET", "/notes/{id}/{*dir}"), &mut fields).unwrap();
        assert_eq!(path, "/notes/7/a%20b/c");
        assert_eq!(query(&fields), "x=1&x=2");
        let mut none = Map::new();
        let e = fill_path("GetNote", &route("GET", "/notes/{id}"), &mut none).unwrap_err();
        assert!(e.to_string().contains("needs the field `id`"), "{e}");
    }

    #[test]
    fn the_json_argument_must_be_an_object() {
        assert!(fields("{}").unwrap().is_empty());
        assert!(matches!(fields("[1]"), Err(CliError::Usage(m)) if m.contains("JSON object")));
        assert!(matches!(fields("{a:"), Err(CliError::Usage(m)) if m.contains("not valid JSON")));
    }
}
