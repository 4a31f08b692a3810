//! What a WebSocket client sends, read with serde, and why a message is refused.
//!
//! A message is a JSON object told apart by the key it carries, looked for in this order:
//!
//! * `{"event": name, "id": n, "data": {..}}` ([`Call`]): sends event `name`;
//! * `{"subscribe": name, "id": n, "filter": {field: value}}` ([`Subscribe`]);
//! * `{"unsubscribe": name, "id": n}` ([`Unsubscribe`]).
//!
//! `id` is any JSON value, echoed in the reply (`null` when absent); other keys are ignored.
//! serde has no enum representation whose tag is a key that also carries the payload, so the
//! key picks the variant and the variant's derived `Deserialize` reads the object: a value of
//! the wrong type is refused naming its key (`"field": "data"`).

use crate::api::hooks::FieldError;
use crate::api::rest::kind_of;
use crate::{Failure, Status};
use serde::de::{Deserialize, DeserializeOwned, Deserializer, Error as _, Unexpected};
use serde_json::{Map, Value};

/// One message from a client.
#[derive(Debug, PartialEq)]
pub(super) enum ClientMessage {
    /// Sends an event.
    Call(Call),
    /// Pushes a notification to this client from now on.
    Subscribe(Subscribe),
    /// Stops pushing a notification to this client.
    Unsubscribe(Unsubscribe),
}

/// `{"event": name, "data": {..}}`.
#[derive(Debug, PartialEq, serde::Deserialize)]
pub(super) struct Call {
    /// The event's name.
    pub(super) event: String,
    /// Its fields (`null` or absent for none).
    #[serde(default, deserialize_with = "json_object")]
    pub(super) data: Map<String, Value>,
}

/// `{"subscribe": name, "filter": {field: value}}`.
#[derive(Debug, PartialEq, serde::Deserialize)]
pub(super) struct Subscribe {
    /// The notification's name.
    pub(super) subscribe: String,
    /// The values its fields must have to be pushed (`null` or absent: every one).
    #[serde(default, deserialize_with = "field_values")]
    pub(super) filter: Map<String, Value>,
}

/// `{"unsubscribe": name}`.
#[derive(Debug, PartialEq, serde::Deserialize)]
pub(super) struct Unsubscribe {
    /// The notification's name.
    pub(super) unsubscribe: String,
}

/// A message refused: its error reply's status, message and the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) status: Status,
    pub(super) message: String,
    pub(super) field: Option<String>,
}

impl Refused {
    pub(super) fn invalid(message: impl Into<String>, field: Option<&str>) -> Self {
        Self { status: Status::Invalid, message: message.into(), field: field.map(str::to_owned) }
    }

    pub(super) fn not_found(message: impl Into<String>, field: &str) -> Self {
        Self { status: Status::NotFound, message: message.into(), field: Some(field.to_owned()) }
    }
}

impl From<FieldError> for Refused {
    fn from(e: FieldError) -> Self {
        Self { status: Status::Invalid, message: e.to_string(), field: e.field }
    }
}

impl From<Failure> for Refused {
    fn from(failure: Failure) -> Self {
        let message = failure.message().to_owned();
        Self { status: failure.status(), message, field: None }
    }
}

/// What a message that is not a JSON object is told.
const SHAPE: &str = "a message is a JSON object: {\"event\", \"id\", \"data\"}, {\"subscribe\"} or {\"unsubscribe\"}";

impl ClientMessage {
    /// Reads one text message: its `id` (`null` when there is none or the text is not a JSON
    /// object) and what it asks.
    pub(super) fn parse(text: &str) -> (Value, Result<Self, Refused>) {
        let mut object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return (Value::Null, Err(Refused::invalid(SHAPE, None))),
            Err(e) => return (Value::Null, Err(Refused::invalid(format!("not JSON: {e}"), None))),
        };
        let id = object.remove("id").unwrap_or(Value::Null);
        let message = if object.contains_key("event") {
            read(object).map(Self::Call)
        } else if object.contains_key("subscribe") {
            read(object).map(Self::Subscribe)
        } else if object.contains_key("unsubscribe") {
            read(object).map(Self::Unsubscribe)
        } else {
            Err(Refused::invalid("expected `event`, `subscribe` or `unsubscribe`", None))
        };
        (id, message)
    }
}

/// Decodes one variant from the message's object, naming the key whose value is wrong.
fn read<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, Refused> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let key = e.path().to_string();
        let message = format!("`{key}`: {}", e.inner());
        Refused::invalid(message, Some(&key))
    })
}

/// `data`: a JSON object, `null` for none.
fn json_object<'de, D: Deserializer<'de>>(value: D) -> Result<Map<String, Value>, D::Error> {
    object_or_null(value, "a JSON object")
}

/// `filter`: an object of field values, `null` for none.
fn field_values<'de, D: Deserializer<'de>>(value: D) -> Result<Map<String, Value>, D::Error> {
    object_or_null(value, "an object of field values")
}

fn object_or_null<'de, D: Deserializer<'de>>(
    value: D,
    expected: &'static str,
) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(value)? {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(Map::new()),
        other => Err(D::Error::invalid_type(Unexpected::Other(kind_of(&other)), &expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Value, Result<ClientMessage, Refused>) {
        ClientMessage::parse(text)
    }

    fn refused(text: &str) -> (Value, Refused) {
        let (id, message) = parse(text);
        (id, message.expect_err(text))
    }

    #[test]
    fn each_key_picks_its_message() {
        let (id, call) = parse(r#"{"id": 1, "event": "Echo", "data": {"text": "hi"}}"#);
        assert_eq!(id, Value::from(1));
        let data = Map::from_iter([("text".to_owned(), Value::from("hi"))]);
        assert_eq!(call, Ok(ClientMessage::Call(Call { event: "Echo".into(), data })));
        let (id, sub) = parse(r#"{"subscribe": "Said", "filter": null, "id": "s"}"#);
        assert_eq!(id, Value::from("s"));
        let expected = Subscribe { subscribe: "Said".into(), filter: Map::new() };
        assert_eq!(sub, Ok(ClientMessage::Subscribe(expected)));
        let (id, unsub) = parse(r#"{"unsubscribe": "Said"}"#);
        assert_eq!(id, Value::Null);
        let expected = Unsubscribe { unsubscribe: "Said".into() };
        assert_eq!(unsub, Ok(ClientMessage::Unsubscribe(expected)));
        // `event` first, then `subscribe`; other keys are ignored.
        let (_, both) = parse(r#"{"subscribe": "Said", "event": "Ping", "extra": [1]}"#);
        assert_eq!(both, Ok(ClientMessage::Call(Call { event: "Ping".into(), data: Map::new() })));
    }

    #[test]
    fn a_wrong_value_is_refused_naming_its_key() {
        for (text, key, expected) in [
            (r#"{"id": 2, "event": 5}"#, "event", "expected a string"),
            (r#"{"id": 2, "event": null}"#, "event", "expected a string"),
            (
                r#"{"id": 2, "event": "Echo", "data": [1]}"#,
                "data",
                "an array, expected a JSON object",
            ),
            (
                r#"{"id": 2, "subscribe": "Said", "filter": 3}"#,
                "filter",
                "expected an object of field values",
            ),
            (r#"{"id": 2, "unsubscribe": {}}"#, "unsubscribe", "expected a string"),
        ] {
            let (id, refused) = refused(text);
            assert_eq!(id, Value::from(2), "{text}");
            assert_eq!(refused.status, Status::Invalid, "{text}");
            assert_eq!(refused.field.as_deref(), Some(key), "{text}");
            assert!(refused.message.starts_with(&format!("`{key}`: ")), "{text}: {refused:?}");
            assert!(refused.message.contains(expected), "{text}: {refused:?}");
        }
    }

    #[test]
    fn what_is_not_a_message_is_refused_whole() {
        for text in ["not json", "[1, 2]", "7", "{\"id\": 9", r#"{"id": 1}"#, r#"{"Event": "x"}"#] {
            let (id, refused) = refused(text);
            assert_eq!(refused.status, Status::Invalid, "{text}");
            assert_eq!(refused.field, None, "{text}");
            let expected_id = if text == r#"{"id": 1}"# { Value::from(1) } else { Value::Null };
            assert_eq!(id, expected_id, "{text}");
        }
    }
}
