//! JSON schemas of API-exposed events, built with [`schemars`].
//!
//! `#[event]` does not require `JsonSchema` of anyone: for each field (and the response) it
//! probes at the expansion site whether the type implements [`JsonSchema`]. Types that do
//! (every std type, and user types deriving it) get their full schema; others an open schema
//! whose description names the type. Derive `JsonSchema` on your own field types for a full
//! catalog:
//!
//! ```ignore
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, edri::schemars::JsonSchema)]
//! #[schemars(crate = "edri::schemars")]
//! pub struct Point { pub x: f64, pub y: f64 }
//! ```

use core::marker::PhantomData;
pub use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

/// The schemas of one event.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// An object schema of the event's fields (the request body and parameters).
    pub fields: Schema,
    /// The response's schema (requests).
    pub response: Option<Schema>,
}

/// One field, as `#[event]` describes it.
#[derive(Debug)]
pub struct FieldSchema {
    /// The field's name.
    pub name: &'static str,
    /// Its type's schema.
    pub schema: Schema,
    /// Whether a value must be given (not an `Option` and no `#[serde(default)]`).
    pub required: bool,
}

/// An object schema of `fields`.
pub fn object(fields: impl IntoIterator<Item = FieldSchema>) -> Schema {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        if f.required {
            required.push(Value::from(f.name));
        }
        properties.insert(f.name.to_owned(), f.schema.to_value());
    }
    let mut object = Map::new();
    object.insert("type".into(), "object".into());
    object.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        object.insert("required".into(), Value::Array(required));
    }
    Schema::from(object)
}

/// Probes whether `T: JsonSchema` at the expansion site (autoref specialisation):
/// `(&&SchemaProbe::<T>::new()).edri_schema(generator)`.
pub struct SchemaProbe<T: ?Sized>(PhantomData<fn() -> T>);

impl<T: ?Sized> SchemaProbe<T> {
    /// A probe.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: ?Sized> Default for SchemaProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Picked when `T: JsonSchema`.
pub trait ViaJsonSchema {
    /// `T`'s schema.
    fn edri_schema(&self, generator: &mut SchemaGenerator) -> Schema;
}

impl<T: JsonSchema + ?Sized> ViaJsonSchema for &SchemaProbe<T> {
    fn edri_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

/// Picked otherwise: an open schema naming the type.
pub trait ViaNoSchema {
    /// An open schema.
    fn edri_schema(&self, generator: &mut SchemaGenerator) -> Schema;
}

impl<T: ?Sized> ViaNoSchema for SchemaProbe<T> {
    fn edri_schema(&self, _: &mut SchemaGenerator) -> Schema {
        let mut object = Map::new();
        object.insert(
            "description".into(),
            format!(
                "`{}` (no schema: it does not implement `JsonSchema`)",
                std::any::type_name::<T>()
            )
            .into(),
        );
        Schema::from(object)
    }
}

/// How a path or query string becomes the JSON value of a field, read off the field's
/// schema: numbers and booleans are parsed, strings kept, anything else tried as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "api"), allow(dead_code))]
pub(crate) enum Coerce {
    /// Keep the text.
    String,
    /// An integer or a number.
    Number,
    /// `true` / `false`.
    Bool,
    /// Try it as JSON, else keep the text.
    Any,
}

#[cfg_attr(not(feature = "api"), allow(dead_code))]
impl Coerce {
    /// Reads the schema's `type` (the non-null one of `["integer", "null"]`); resolves one
    /// `$ref` into `definitions`.
    pub(crate) fn of(schema: &Value, definitions: &Map<String, Value>) -> Self {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                r.rsplit('/').next().and_then(|name| definitions.get(name)).unwrap_or(schema)
            }
            None => schema,
        };
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        match types.iter().find(|t| **t != "null").copied() {
            Some("integer" | "number") => Self::Number,
            Some("boolean") => Self::Bool,
            Some("string") => Self::String,
            _ if schema.get("enum").is_some() => Self::String,
            _ => Self::Any,
        }
    }

    /// The value of `text`. Unparseable text stays a string, so that decoding reports the
    /// field with the type it expected.
    pub(crate) fn apply(self, text: &str) -> Value {
        match self {
            Self::String => Value::String(text.to_owned()),
            Self::Number => {
                if let Ok(n) = text.parse::<i64>() {
                    Value::from(n)
                } else if let Ok(n) = text.parse::<u64>() {
                    Value::from(n)
                } else if let Some(n) =
                    text.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
                {
                    Value::Number(n)
                } else {
                    Value::String(text.to_owned())
                }
            }
            Self::Bool => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(text.to_owned()),
            },
            Self::Any => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_borrow)] // the probe needs both references
    fn probes_pick_the_schema_when_there_is_one() {
        use {ViaJsonSchema as _, ViaNoSchema as _};
        struct Opaque;
        let mut g = SchemaGenerator::default();
        let n = (&&SchemaProbe::<u32>::new()).edri_schema(&mut g);
        assert_eq!(n.get("type"), Some(&Value::from("integer")));
        let o = (&&SchemaProbe::<Opaque>::new()).edri_schema(&mut g);
        assert!(o.get("description").unwrap().as_str().unwrap().contains("Opaque"));
    }

    #[test]
    fn coercion_follows_the_type() {
        let mut g = SchemaGenerator::default();
        let defs = Map::new();
        let of = |s: Schema| Coerce::of(&s.to_value(), &defs);
        assert_eq!(of(g.subschema_for::<u32>()), Coerce::Number);
        assert_eq!(of(g.subschema_for::<Option<f64>>()), Coerce::Number);
        assert_eq!(of(g.subschema_for::<bool>()), Coerce::Bool);
        assert_eq!(of(g.subschema_for::<String>()), Coerce::String);
        assert_eq!(Coerce::Number.apply("42"), Value::from(42));
        assert_eq!(Coerce::Number.apply("-1.5"), Value::from(-1.5));
        assert_eq!(Coerce::Number.apply("x"), Value::from("x"));
        assert_eq!(Coerce::String.apply("42"), Value::from("42"));
        assert_eq!(Coerce::Any.apply("[1,2]"), serde_json::json!([1, 2]));
    }
}
