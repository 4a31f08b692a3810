//! The JSON side of an API-exposed event: decoding it from JSON with errors naming the field,
//! sending it, encoding its response or (for pushes to WebSocket clients) the event itself.
//!
//! `#[event(http = ..)]` and `#[event(ws)]` put one [`ApiHooks`] into the event's
//! registration; the functions are instantiated for that event only.

use super::schema::{EventSchema, SchemaGenerator};
use crate::envelope::Envelope;
use crate::event::{Event, Notification, Request};
use crate::router::BoxFuture;
use crate::{Ctx, Failure};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::time::Duration;

/// Sends an event decoded from JSON: a request answers with its JSON response, a notification
/// with `null` once delivered.
pub(crate) type CallJson =
    fn(Ctx, Value, Duration) -> Result<BoxFuture<Result<Value, Failure>>, FieldError>;

/// The JSON form of a notification taken out of an envelope (for WebSocket pushes).
pub(crate) type EncodeJson = fn(Envelope) -> Option<Value>;

/// The JSON schemas of an event's fields and response.
pub(crate) type SchemaFn = fn(&mut SchemaGenerator) -> EventSchema;

/// What the API broker needs of one event, monomorphised for it by `#[event]`.
#[derive(Debug, Clone, Copy)]
pub struct ApiHooks {
    /// Decodes and sends the event.
    pub call: CallJson,
    /// Encodes a delivered notification.
    pub encode: EncodeJson,
    /// Its schemas, for the catalog and for reading path and query strings.
    pub schema: SchemaFn,
    /// The names serde decodes the event's fields by (after `rename_all`, with aliases), when
    /// it is a struct with named fields.
    pub serde_fields: fn() -> Option<&'static [&'static str]>,
}

impl ApiHooks {
    /// The hooks of request `E`.
    pub const fn request<E: Request>(schema: SchemaFn) -> Self {
        Self {
            call: call_request::<E>,
            encode: encode_json::<E>,
            schema,
            serde_fields: serde_fields::<E>,
        }
    }

    /// The hooks of notification `E`.
    pub const fn notification<E: Notification>(schema: SchemaFn) -> Self {
        Self {
            call: call_notification::<E>,
            encode: encode_json::<E>,
            schema,
            serde_fields: serde_fields::<E>,
        }
    }
}

/// The field names `T`'s derived `Deserialize` asks for (`deserialize_struct`'s `fields`).
fn serde_fields<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    use serde::de::value::Error;
    use serde::de::{Error as _, Visitor};

    /// Answers every request with an error, noting the fields of `deserialize_struct`.
    struct Names(Option<&'static [&'static str]>);

    impl<'de> serde::Deserializer<'de> for &mut Names {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("only the names are read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            self.0 = Some(fields);
            Err(Error::custom("only the names are read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0
}

/// Input that does not decode into the event: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field (a path such as `items[2].name` for nested values); `None` when the input as
    /// a whole is wrong.
    pub field: Option<String>,
    /// What is wrong, for humans.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Decodes `value` into `T`, naming the offending field on error.
///
/// An empty object also decodes a unit struct (`struct Ping;` is `null` in serde's JSON form).
/// A number with no fractional part (`1.0`, `1e2`) is an integer, as in JSON Schema: an
/// integer field takes it.
pub(crate) fn decode<T: DeserializeOwned>(mut value: Value) -> Result<T, FieldError> {
    super::schema::integral_numbers(&mut value);
    let empty = matches!(&value, Value::Object(map) if map.is_empty());
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(decoded) => Ok(decoded),
        Err(error) => {
            if empty && let Ok(unit) = serde_json::from_value::<T>(Value::Null) {
                return Ok(unit);
            }
            let path = error.path().to_string();
            let message = error.into_inner().to_string();
            let field = if path == "." { missing_field(&message) } else { Some(path) };
            Err(FieldError { field, message })
        }
    }
}

/// The field of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

fn call_request<E: Request>(
    ctx: Ctx,
    value: Value,
    timeout: Duration,
) -> Result<BoxFuture<Result<Value, Failure>>, FieldError> {
    let event: E = decode(value)?;
    Ok(Box::pin(async move {
        let output = ctx.request_event(event, timeout, E::META.priority).arm_at_once().await?;
        match serde_json::to_value(&output) {
            // An acknowledgement (`struct XResponse;`, `()`) is the empty object of its schema.
            Ok(Value::Null) if size_of::<E::Output>() == 0 => Ok(Value::Object(Map::new())),
            Ok(value) => Ok(value),
            Err(e) => Err(Failure::failed(format!(
                "cannot encode the response to `{}`: {e}",
                E::META.name
            ))),
        }
    }))
}

fn call_notification<E: Notification>(
    ctx: Ctx,
    value: Value,
    timeout: Duration,
) -> Result<BoxFuture<Result<Value, Failure>>, FieldError> {
    let event: E = decode(value)?;
    Ok(Box::pin(async move {
        match tokio::time::timeout(timeout, ctx.notify_event(event, E::META.priority)).await {
            Ok(delivered) => delivered.map(|()| Value::Null),
            Err(_) => Err(Failure::timeout(format!(
                "`{}` not delivered within {timeout:?}: a subscriber's mailbox stayed full",
                E::META.name
            ))),
        }
    }))
}

fn encode_json<E: Event>(envelope: Envelope) -> Option<Value> {
    let (event, _) = envelope.open::<E, E::Output>()?;
    match serde_json::to_value(&*event) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(event = E::META.name, error = %e, "cannot encode a notification as JSON");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Point {
        x: u32,
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Unit;

    #[test]
    fn errors_name_the_field() {
        let e = decode::<Point>(serde_json::json!({"tags": []})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("x"));
        let e = decode::<Point>(serde_json::json!({"x": "a", "tags": []})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("x"));
        assert!(e.message.contains("invalid type"), "{e}");
        let e = decode::<Point>(serde_json::json!({"x": 1, "tags": [1]})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("tags[0]"));
        let e = decode::<Point>(serde_json::json!([1])).unwrap_err();
        assert_eq!(e.field, None);
    }

    #[test]
    fn empty_object_is_a_unit_struct() {
        assert_eq!(decode::<Unit>(serde_json::json!({})).unwrap(), Unit);
    }
}
