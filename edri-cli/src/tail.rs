//! `edri tail ADDR EVENT.. [--filter FIELD=VALUE]..`: subscribes to `ws` notifications on the
//! WebSocket and prints each one pushed, as one JSON line.

use crate::error::CliError;
use crate::target::{Target, error_line};
use crate::ws::Socket;
use serde_json::{Map, Value, json};
use std::io::Write as _;

/// Reads `FIELD=VALUE` filters: the value as JSON when it is JSON (`n=7`, `ok=true`,
/// `name="7"`), else as a string (`title=milk`).
pub(crate) fn filter(pairs: &[String]) -> Result<Map<String, Value>, CliError> {
    let mut filter = Map::new();
    for pair in pairs {
        let Some((field, value)) = pair.split_once('=').filter(|(f, _)| !f.is_empty()) else {
            return Err(CliError::Usage(format!(
                "`--filter {pair}`: expected FIELD=VALUE, like title=milk or id=7"
            )));
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
        filter.insert(field.to_owned(), value);
    }
    Ok(filter)
}

/// Subscribes to `events` (with `filter`) and prints what is pushed until Ctrl-C, or until
/// `count` notifications came.
pub(crate) async fn run(
    target: &Target,
    events: &[String],
    filter: Map<String, Value>,
    count: Option<u64>,
) -> Result<(), CliError> {
    let mut socket = Socket::connect(target).await?;
    for (id, event) in (1u64..).zip(events) {
        socket.send(&json!({ "subscribe": event, "id": id, "filter": filter })).await?;
        let answer = socket.answer(id).await?;
        if answer["error"].is_object() {
            return Err(CliError::Router(format!("{event}: {}", error_line(&answer["error"]))));
        }
        eprintln!("edri: subscribed to {event}");
    }
    let mut seen = 0;
    loop {
        if count.is_some_and(|n| seen >= n) {
            return Ok(());
        }
        let message = tokio::select! {
            message = socket.next() => message?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        if message.get("event").is_none() {
            continue;
        }
        let mut out = std::io::stdout().lock();
        // A closed pipe (`edri tail .. | head -1`) ends the command quietly.
        if writeln!(out, "{message}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
        seen += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_json_or_text() {
        let pairs = ["n=7", "title=milk", "id=\"7\"", "eq=a=b"].map(str::to_owned);
        let f = filter(&pairs).unwrap();
        assert_eq!(Value::Object(f), json!({"n": 7, "title": "milk", "id": "7", "eq": "a=b"}));
        assert!(matches!(filter(&["=x".to_owned()]), Err(CliError::Usage(_))));
        assert!(matches!(filter(&["x".to_owned()]), Err(CliError::Usage(_))));
    }
}
