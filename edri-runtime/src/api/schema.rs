//! JSON schemas of API-exposed events, built with [`schemars`].
//!
//! The catalog (`GET /edri/events`) gives schemas that agree with the server: what a schema
//! accepts is decoded, what it refuses gets `400`. To that end an event's object is closed
//! (`"additionalProperties": false`), its property names are the ones serde decodes by
//! (`rename`, and a container's `rename_all`), every integer carries the `minimum` and
//! `maximum` of its width, and a unit enum variant may be written `{"Variant": null}` as
//! serde takes it too. In turn the server reads a number with no fractional part (`1.0`,
//! `1e2`) as an integer, as JSON Schema does.
//!
//! `#[event]` does not require `JsonSchema` of anyone: for each field (and the response) it
//! probes at the expansion site whether the type implements [`JsonSchema`]. Types that do
//! (every std type, and user types deriving it) get their full schema; others an open schema
//! whose description names the type (the module doc of `api` shows the derive).

use core::marker::PhantomData;
pub use schemars::SchemaGenerator;
pub(crate) use schemars::{JsonSchema, Schema};
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

/// An object schema of `fields`, closed (`"additionalProperties": false`): the API refuses a
/// key that is not a field, so the schema does too.
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
    object.insert("additionalProperties".into(), Value::Bool(false));
    Schema::from(object)
}

/// Gives every integer schema in `schema` (at any depth) the `minimum` and `maximum` of its
/// `format` where it lacks them, so that the schema refuses what the server cannot decode:
/// `u32` is `0..=4294967295`, `i64` is `-2^63..=2^63-1`. A JSON value goes through
/// `serde_json`'s number (an `i64`, a `u64` or an `f64`), so `u128` and `i128` fields take
/// `0..=2^64-1` and `-2^63..=2^64-1`. Bounds already there (`NonZeroU32`'s `minimum: 1`) stay.
#[cfg_attr(not(feature = "api"), allow(dead_code))]
pub(crate) fn bound_integers(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let integer = match map.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
                _ => false,
            };
            let bounds = map.get("format").and_then(Value::as_str).and_then(format_bounds);
            if let (true, Some((min, max))) = (integer, bounds) {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Adds, to each enum definition of `schemars` (in `$defs`), the other form `serde_json`
/// takes for a unit variant: `{"Red": null}` besides `"Red"`, so that the schema accepts
/// what the server does.
#[cfg_attr(not(feature = "api"), allow(dead_code))]
pub(crate) fn unit_variants_as_objects(definition: &mut Value) {
    let Value::Object(map) = definition else { return };
    if let Some(Value::Array(variants)) = map.get_mut("oneOf") {
        let objects: Vec<Value> =
            variants.iter().flat_map(unit_variant_names).map(null_variant).collect();
        variants.extend(objects);
    } else if !unit_variant_names(definition).is_empty() {
        let names = unit_variant_names(definition);
        let Value::Object(map) = definition else { return };
        let strings = Value::Object(std::mem::take(map));
        let mut variants = vec![strings];
        variants.extend(names.into_iter().map(null_variant));
        map.insert("oneOf".into(), Value::Array(variants));
    }
}

/// The names of a unit-variant schema: `{"type": "string", "enum": [..]}` or `"const"`.
fn unit_variant_names(schema: &Value) -> Vec<String> {
    if schema.get("type").and_then(Value::as_str) != Some("string") {
        return Vec::new();
    }
    let names = match (schema.get("enum"), schema.get("const")) {
        (Some(Value::Array(names)), _) => names.iter().collect(),
        (None, Some(name)) => vec![name],
        _ => Vec::new(),
    };
    names.into_iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn null_variant(name: String) -> Value {
    serde_json::json!({
        "type": "object",
        "properties": { name.clone(): { "type": "null" } },
        "required": [name],
        "additionalProperties": false,
    })
}

/// Renames the properties of an event's object schema to the names serde decodes them by
/// (`serde` is the field list of its derived `Deserialize`), for a container
/// `#[serde(rename_all = "..")]` that `#[event]` does not see field by field. A property
/// already named as serde names it stays; the others take the one `rename_all` rule that
/// maps every one of them into `serde`. Nothing changes when no rule does.
#[cfg_attr(not(feature = "api"), allow(dead_code))]
pub(crate) fn follow_serde_names(fields: &mut Value, serde: &[&str]) {
    let Some(Value::Object(properties)) = fields.get_mut("properties") else { return };
    let strays: Vec<String> =
        properties.keys().filter(|k| !serde.contains(&k.as_str())).cloned().collect();
    if strays.is_empty() {
        return;
    }
    let Some(rule) =
        RULES.iter().find(|rule| strays.iter().all(|k| serde.contains(&rule(k).as_str())))
    else {
        return;
    };
    for key in &strays {
        if let Some(schema) = properties.remove(key) {
            properties.insert(rule(key), schema);
        }
    }
    if let Some(Value::Array(required)) = fields.get_mut("required") {
        for name in required.iter_mut() {
            if let Some(key) = name.as_str().filter(|k| strays.iter().any(|s| s == k)) {
                *name = Value::from(rule(key));
            }
        }
    }
}

/// serde's `rename_all` rules, applied to a `snake_case` field name.
/// (`lowercase` and `snake_case` leave it as it is; `SCREAMING_SNAKE_CASE` is `UPPERCASE`.)
const RULES: [fn(&str) -> String; 5] = [
    |name| pascal(name),
    |name| {
        let pascal = pascal(name);
        let mut chars = pascal.chars();
        chars
            .next()
            .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
            .unwrap_or_default()
    },
    |name| name.to_ascii_uppercase(),
    |name| name.replace('_', "-"),
    |name| name.replace('_', "-").to_ascii_uppercase(),
];

fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The range the server accepts for an integer `format` of `schemars`.
fn format_bounds(format: &str) -> Option<(Value, Value)> {
    fn pair(min: impl Into<Value>, max: impl Into<Value>) -> Option<(Value, Value)> {
        Some((min.into(), max.into()))
    }
    match format {
        "int8" => pair(i8::MIN, i8::MAX),
        "int16" => pair(i16::MIN, i16::MAX),
        "int32" => pair(i32::MIN, i32::MAX),
        "int64" => pair(i64::MIN, i64::MAX),
        "int" => pair(isize::MIN as i64, isize::MAX as i64),
        "int128" => pair(i64::MIN, u64::MAX),
        "uint8" => pair(0, u8::MAX),
        "uint16" => pair(0, u16::MAX),
        "uint32" => pair(0, u32::MAX),
        "uint64" | "uint128" => pair(0, u64::MAX),
        "uint" => pair(0, usize::MAX as u64),
        _ => None,
    }
}

/// Rewrites every number with no fractional part (`1.0`, `1e2`, `-0.0`) in `value` as an
/// integer, where one holds it: JSON Schema's `integer` is about the value, not its spelling,
/// so an integer field takes `1e2` as `100`. A float field still reads it as `100.0`.
pub(crate) fn integral_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
            {
                // In range, `as` is exact here: `f` is integral.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                if f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
                    *n = serde_json::Number::from(f as i64);
                } else if f >= 0.0 && f < 2f64.powi(64) {
                    *n = serde_json::Number::from(f as u64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
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
    fn integers_get_the_bounds_of_their_width() {
        let mut g = SchemaGenerator::default();
        let mut u32s = g.subschema_for::<Vec<Option<u32>>>().to_value();
        bound_integers(&mut u32s);
        assert_eq!(u32s["items"]["maximum"], Value::from(u32::MAX));
        assert_eq!(u32s["items"]["minimum"], Value::from(0));
        let mut nz = g.subschema_for::<std::num::NonZeroU64>().to_value();
        bound_integers(&mut nz);
        assert_eq!(nz["minimum"], Value::from(1));
        assert_eq!(nz["maximum"], Value::from(u64::MAX));
        let mut text = g.subschema_for::<String>().to_value();
        bound_integers(&mut text);
        assert_eq!(text, g.subschema_for::<String>().to_value());
    }

    #[test]
    fn rename_all_is_followed() {
        let mut fields = serde_json::json!({
            "properties": {"user_name": {}, "id": {}, "Fixed": {}},
            "required": ["user_name", "Fixed"],
        });
        follow_serde_names(&mut fields, &["userName", "id", "Fixed"]);
        let keys: Vec<&String> = fields["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Fixed", "id", "userName"]);
        assert_eq!(fields["required"], serde_json::json!(["userName", "Fixed"]));
        let mut kebab = serde_json::json!({"properties": {"max_len": {}}});
        follow_serde_names(&mut kebab, &["MAX-LEN"]);
        assert!(kebab["properties"].get("MAX-LEN").is_some());
    }

    #[test]
    fn integral_floats_become_integers() {
        let mut v = serde_json::json!({"a": 1.0, "b": [1e2, -0.0, 0.5], "c": 1.8e19, "d": 1e30});
        integral_numbers(&mut v);
        assert_eq!(v["a"].as_i64(), Some(1));
        assert_eq!(v["b"][0].as_i64(), Some(100));
        assert_eq!(v["b"][1].as_i64(), Some(0));
        assert_eq!(v["b"][2].as_f64(), Some(0.5));
        assert_eq!(v["c"].as_u64(), Some(18_000_000_000_000_000_000));
        assert!(v["d"].is_f64());
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
