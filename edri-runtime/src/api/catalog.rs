//! `GET /edri/events`: every API-exposed event with its kind, route and JSON schemas; and the
//! per-field rules for reading path and query strings, taken from the same schemas.

use super::hooks::ApiHooks;
use super::schema::{
    Coerce, SchemaGenerator, bound_integers, follow_serde_names, unit_variants_as_objects,
};
use crate::event::EventKind;
use crate::registry::EventRegistration;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The API-exposed events of this binary.
pub(crate) struct Catalog {
    /// What `GET /edri/events` answers.
    pub(crate) document: Value,
    /// What `GET /edri/openapi.json` answers ([`super::openapi`]), made from `document`.
    pub(crate) openapi: Value,
    /// By event name.
    pub(crate) events: HashMap<&'static str, Entry>,
}

/// One API-exposed event.
pub(crate) struct Entry {
    pub(crate) registration: &'static EventRegistration,
    pub(crate) hooks: ApiHooks,
    /// How a path or query string becomes each field's value, by field name.
    pub(crate) fields: HashMap<String, FieldRule>,
}

/// How the text of a path or query parameter becomes a field's value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldRule {
    /// The value's rule; for an array field, its items' rule.
    pub(crate) coerce: Coerce,
    /// Whether the field is an array (a repeated query parameter fills it).
    pub(crate) array: bool,
}

impl Catalog {
    /// Every registration carrying API hooks, sorted by name.
    pub(crate) fn build() -> Self {
        let mut registrations: Vec<(&'static EventRegistration, ApiHooks)> =
            crate::registry::events().filter_map(|r| r.api.map(|h| (r, h))).collect();
        registrations.sort_by_key(|(r, _)| (r.meta.name, r.meta.location));
        registrations.dedup_by_key(|(r, _)| r.meta.name);

        let mut generator = SchemaGenerator::default();
        let mut listed = Vec::new();
        let mut schemas = Vec::new();
        for (reg, hooks) in &registrations {
            let schema = (hooks.schema)(&mut generator);
            let mut fields = schema.fields.to_value();
            bound_integers(&mut fields);
            if let Some(names) = (hooks.serde_fields)() {
                follow_serde_names(&mut fields, names);
            }
            let response = match reg.meta.kind {
                EventKind::Request => schema.response.map(|s| {
                    let mut response = s.to_value();
                    bound_integers(&mut response);
                    response
                }),
                _ => None,
            };
            let meta = reg.meta;
            listed.push(json!({
                "name": meta.name,
                "kind": meta.kind.as_str(),
                "rust_name": meta.rust_name,
                "http": meta.http.map(|h| json!({"method": h.method, "path": h.path})),
                "ws": meta.ws,
                "fields": fields.clone(),
                "response": response,
            }));
            schemas.push(fields);
        }
        let mut definitions: Map<String, Value> = generator.take_definitions(true);
        for definition in definitions.values_mut() {
            bound_integers(definition);
            unit_variants_as_objects(definition);
        }
        let mut events = HashMap::new();
        for ((reg, hooks), fields) in registrations.into_iter().zip(schemas) {
            let rules = fields
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| {
                    props.iter().map(|(name, s)| (name.clone(), rule(s, &definitions))).collect()
                })
                .unwrap_or_default();
            events.insert(reg.meta.name, Entry { registration: reg, hooks, fields: rules });
        }
        let document = json!({ "events": listed, "$defs": definitions });
        Self { document, openapi: Value::Null, events }
    }
}

fn rule(schema: &Value, definitions: &Map<String, Value>) -> FieldRule {
    let is_array = match schema.get("type") {
        Some(Value::String(t)) => t == "array",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "array"),
        _ => false,
    };
    match schema.get("items") {
        Some(items) if is_array => {
            FieldRule { coerce: Coerce::of(items, definitions), array: true }
        }
        _ => FieldRule { coerce: Coerce::of(schema, definitions), array: false },
    }
}
