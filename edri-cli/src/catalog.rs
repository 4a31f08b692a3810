//! `GET /edri/events`: the events a router's API exposes, read leniently (unknown keys are
//! ignored, missing ones take their defaults), and `edri events`.

use crate::error::CliError;
use crate::target::Target;
use serde::Deserialize;
use serde_json::Value;

/// The catalog.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Catalog {
    pub(crate) events: Vec<Entry>,
}

/// One exposed event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Entry {
    pub(crate) name: String,
    /// `notification`, `request` or `tunnel`.
    pub(crate) kind: String,
    pub(crate) http: Option<Route>,
    pub(crate) ws: bool,
    /// The JSON schema of its fields.
    pub(crate) fields: Value,
    /// The JSON schema of its response (requests).
    pub(crate) response: Value,
}

/// A REST route.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Route {
    pub(crate) method: String,
    pub(crate) path: String,
}

impl Catalog {
    /// Reads the catalog of `target`.
    pub(crate) async fn fetch(target: &Target) -> Result<(Self, Value), CliError> {
        let document = target.get_json("/edri/events").await?;
        let catalog = serde_json::from_value(document.clone()).map_err(|e| {
            CliError::Router(format!("the router's catalog (/edri/events) is not understood: {e}"))
        })?;
        Ok((catalog, document))
    }

    /// The event named `name`, or an error listing what there is.
    pub(crate) fn find(&self, name: &str) -> Result<&Entry, CliError> {
        self.events.iter().find(|e| e.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.events.iter().map(|e| e.name.as_str()).collect();
            let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            CliError::Router(format!(
                "unknown event `{name}`: the router's API exposes {known} (see `edri events`)"
            ))
        })
    }
}

/// The property names of a JSON object schema, in order.
fn properties(schema: &Value) -> Vec<&str> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// `edri events`: the catalog as a table, or as the router's JSON with `json`.
pub(crate) async fn run(target: &Target, json: bool) -> Result<(), CliError> {
    let (catalog, document) = Catalog::fetch(target).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&document).unwrap_or_default());
        return Ok(());
    }
    print!("{}", table(&catalog));
    Ok(())
}

/// The catalog as a table, one event a line.
fn table(catalog: &Catalog) -> String {
    let rows: Vec<[String; 6]> = catalog
        .events
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.kind.clone(),
                e.http.as_ref().map_or("-".into(), |h| format!("{} {}", h.method, h.path)),
                if e.ws { "ws" } else { "-" }.to_owned(),
                properties(&e.fields).join(", "),
                properties(&e.response).join(", "),
            ]
        })
        .collect();
    let head = ["EVENT", "KIND", "HTTP", "WS", "FIELDS", "RESPONSE"].map(str::to_owned);
    crate::table::render(&head, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_leniently_and_lists_fields() {
        let document = json!({"events": [
            {"name": "CreateNote", "kind": "request", "http": {"method": "POST", "path": "/notes"},
             "ws": true, "fields": {"properties": {"title": {}, "body": {}}},
             "response": {"properties": {"id": {}}}, "something_new": 1},
            {"name": "Tick", "kind": "notification"}
        ], "$defs": {}});
        let catalog: Catalog = serde_json::from_value(document).unwrap();
        let text = table(&catalog);
        assert!(text.contains("CreateNote"), "{text}");
        assert!(text.contains("POST /notes"), "{text}");
        assert!(text.contains("body, title"), "{text}");
        assert!(text.lines().nth(2).unwrap().starts_with("Tick"), "{text}");
        let missing = catalog.find("Nope").unwrap_err().to_string();
        assert!(missing.contains("unknown event `Nope`") && missing.contains("CreateNote, Tick"));
    }
}
