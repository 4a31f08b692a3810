//! `GET /edri/openapi.json`: an OpenAPI 3.1 document of the REST routes, made from the
//! catalog (`GET /edri/events`) and its JSON schemas (draft 2020-12, OpenAPI 3.1's dialect).
//!
//! Each `http = "METHOD /path/{param}"` event is an operation (`operationId` = the event's
//! name): its path parameters, then, for `GET` and `DELETE`, its other fields as query
//! parameters, for `POST`, `PUT` and `PATCH` as a JSON body (the broker takes either way;
//! the document gives the usual one). Responses: `200` with the response's schema, and each
//! error status the broker can answer, with the error object. The catalog's `$defs` become
//! `components/schemas`. Built-in routes (`/edri/health`, `/edri/events`, this document,
//! `/edri/topology`, `/metrics`, `/edri/ws`, the page `/edri`) are listed too; routes merged with
//! [`Api::merge`](super::Api::merge) are not (the broker cannot see their shapes).

use super::Api;
use super::catalog::Catalog;
use crate::Status;
use serde_json::{Map, Value, json};

/// The error statuses of an event's route, with why each comes.
const ERRORS: &[(u16, &str)] = &[
    (400, "bad input (`invalid`): a field missing, mistyped or unknown, named in `field`"),
    (401, "no valid bearer token (`unauthorized`), or the handler's `Failure::unauthorized`"),
    (403, "the handler's `Failure::forbidden` (`forbidden`)"),
    (404, "the handler's `Failure::not_found` (`not_found`)"),
    (408, "the body did not arrive within the body timeout (`timeout`)"),
    (409, "the handler's `Failure::conflict` (`conflict`)"),
    (413, "the body is over the body limit (`too_large`)"),
    (500, "the handler failed (`failed`) or panicked (`crashed`)"),
    (503, "no responder (`unavailable`), or the connection limit is reached"),
    (504, "no answer within the request timeout (`timeout`)"),
];

/// The document for the events of `catalog`, served with `config`'s tokens.
pub(crate) fn document(catalog: &Catalog, config: &Api) -> Value {
    let secured = !config.tokens.is_empty();
    let mut schemas = match catalog.document.get("$defs") {
        Some(Value::Object(defs)) => defs.clone(),
        _ => Map::new(),
    };
    schemas.insert("Error".into(), error_schema());
    let mut paths = Map::new();
    let events = catalog.document["events"].as_array().map_or(&[][..], Vec::as_slice);
    for event in events {
        let (Some(method), Some(path)) =
            (event["http"]["method"].as_str(), event["http"]["path"].as_str())
        else {
            continue;
        };
        let (path, operation) = operation(event, method, path);
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method.to_ascii_lowercase()] = operation;
    }
    builtin(&mut paths, secured);
    let mut responses = Map::new();
    for (code, why) in ERRORS.iter().chain(&[(405, "the path exists, not with this method")]) {
        responses.insert(code.to_string(), error_response(why));
    }
    let mut components = json!({ "schemas": schemas, "responses": responses });
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "EDRI API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST routes of an EDRI router's API broker, made from its \
                events (`GET /edri/events` lists them with their WebSocket use). Every error \
                is `{\"error\": {\"status\", \"message\", \"field\"?}}`; a known path with \
                another method answers 405 with `Allow`.",
        },
        "paths": paths,
    });
    if secured {
        components["securitySchemes"] = json!({ "bearer": { "type": "http", "scheme": "bearer" } });
        document["security"] = json!([{ "bearer": [] }]);
    }
    document["components"] = components;
    to_components(&mut document);
    document
}

/// One event's operation, under its path in OpenAPI's form.
fn operation(event: &Value, method: &str, path: &str) -> (String, Value) {
    let fields = &event["fields"];
    let properties = fields["properties"].as_object().cloned().unwrap_or_default();
    let required: Vec<&str> = fields["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (path, in_path) = openapi_path(path);
    let mut parameters = Vec::new();
    for name in &in_path {
        let schema = properties.get(name).cloned().unwrap_or_else(|| json!({"type": "string"}));
        parameters.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
    }
    let rest: Map<String, Value> =
        properties.into_iter().filter(|(name, _)| !in_path.contains(name)).collect();
    let rest_required: Vec<&str> =
        required.into_iter().filter(|name| !in_path.iter().any(|p| p == name)).collect();
    let mut op = json!({
        "operationId": event["name"],
        "summary": format!("`{}` ({})", event["rust_name"].as_str().unwrap_or("?"), event["name"].as_str().unwrap_or("?")),
    });
    if matches!(method, "GET" | "DELETE") {
        for (name, schema) in rest {
            let required = rest_required.contains(&name.as_str());
            parameters
                .push(json!({"name": name, "in": "query", "required": required, "schema": schema}));
        }
    } else {
        let mut body =
            json!({ "type": "object", "properties": rest, "additionalProperties": false });
        if !rest_required.is_empty() {
            body["required"] = json!(rest_required);
        }
        op["requestBody"] = json!({
            "required": !rest_required.is_empty(),
            "content": { "application/json": { "schema": body } },
        });
    }
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    let ok = event.get("response").filter(|r| !r.is_null()).cloned().unwrap_or(json!({}));
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({ "description": "the response", "content": { "application/json": { "schema": ok } } }),
    );
    for (code, _) in ERRORS {
        responses
            .insert(code.to_string(), json!({ "$ref": format!("#/components/responses/{code}") }));
    }
    op["responses"] = Value::Object(responses);
    (path, op)
}

/// `/files/{dir}` stays; axum's catch-all `{*rest}` is `{rest}`. Returns the parameters too.
fn openapi_path(path: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        let name = rest[open + 1..open + close].trim_start_matches('*');
        out.push_str(&rest[..open]);
        out.push_str(&format!("{{{name}}}"));
        names.push(name.to_owned());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    (out, names)
}

/// The broker's own routes.
fn builtin(paths: &mut Map<String, Value>, secured: bool) {
    let get = |id: &str, summary: &str, content: &str, schema: Value| {
        let mut responses = json!({
            "200": { "description": summary, "content": { content: { "schema": schema } } },
        });
        if secured {
            responses["401"] = json!({ "$ref": "#/components/responses/401" });
        }
        json!({ "get": { "operationId": id, "summary": summary, "responses": responses } })
    };
    let any = json!({});
    let text = json!({"type": "string"});
    for (path, id, summary, content, schema) in [
        (
            "/edri/health",
            "edri.health",
            "the router's health (`HealthCheck`)",
            "application/json",
            any.clone(),
        ),
        (
            "/edri/events",
            "edri.events",
            "the event catalog, with JSON schemas",
            "application/json",
            any.clone(),
        ),
        ("/edri/openapi.json", "edri.openapi", "this document", "application/json", any.clone()),
        (
            "/edri/topology",
            "edri.topology",
            "managers, events, senders and routers",
            "application/json",
            any,
        ),
        (
            "/metrics",
            "edri.metrics",
            "metrics in the Prometheus text format",
            "text/plain",
            text.clone(),
        ),
        ("/edri", "edri.page", "a live HTML picture of the topology", "text/html", text),
    ] {
        paths.insert(path.into(), get(id, summary, content, schema));
    }
    let mut ws =
        get("edri.ws", "the WebSocket endpoint (events both ways)", "application/json", json!({}));
    ws["get"]["responses"] =
        json!({ "101": { "description": "switching to the WebSocket protocol" } });
    if secured {
        ws["get"]["responses"]["401"] = json!({ "$ref": "#/components/responses/401" });
        ws["get"]["parameters"] = json!([{
            "name": "access_token", "in": "query", "required": false,
            "description": "the bearer token, for clients that cannot set headers",
            "schema": {"type": "string"},
        }]);
    }
    paths.insert("/edri/ws".into(), ws);
    if let Some(page) = paths.get_mut("/edri").filter(|_| secured) {
        page["get"]["parameters"] = json!([{
            "name": "token", "in": "query", "required": false,
            "description": "the bearer token, for a browser opening the page",
            "schema": {"type": "string"},
        }]);
    }
}

/// `{"error": {"status", "message", "field"?}}`.
fn error_schema() -> Value {
    let statuses: Vec<&str> = [
        Status::Invalid,
        Status::Unauthorized,
        Status::Forbidden,
        Status::NotFound,
        Status::Conflict,
        Status::Failed,
        Status::Unavailable,
        Status::Timeout,
        Status::Crashed,
        Status::MethodNotAllowed,
        Status::TooLarge,
    ]
    .map(Status::as_str)
    .to_vec();
    json!({
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "status": { "type": "string", "enum": statuses },
                    "message": { "type": "string" },
                    "field": { "type": "string", "description": "the field or parameter at fault" },
                },
                "required": ["status", "message"],
                "additionalProperties": false,
            },
        },
        "required": ["error"],
        "additionalProperties": false,
    })
}

fn error_response(why: &str) -> Value {
    json!({
        "description": why,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

/// Points the catalog's `#/$defs/..` references at `#/components/schemas/..`.
fn to_components(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            *target = format!("#/components/schemas/{name}");
                        }
                    }
                    _ => to_components(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_components),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_their_parameters() {
        assert_eq!(openapi_path("/a/{id}/b"), ("/a/{id}/b".into(), vec!["id".into()]));
        assert_eq!(openapi_path("/f/{*rest}"), ("/f/{rest}".into(), vec!["rest".into()]));
        assert_eq!(openapi_path("/plain"), ("/plain".into(), vec![]));
    }

    #[test]
    fn refs_point_at_components() {
        let mut v = json!({"a": {"$ref": "#/$defs/Point"}, "b": [{"$ref": "#/$defs/X"}]});
        to_components(&mut v);
        assert_eq!(v["a"]["$ref"], "#/components/schemas/Point");
        assert_eq!(v["b"][0]["$ref"], "#/components/schemas/X");
    }
}
