//! A WebSocket to the broker's `/edri/ws`: JSON messages both ways.

use crate::error::CliError;
use crate::target::Target;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open WebSocket to a router.
pub(crate) struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    target: Target,
}

impl Socket {
    /// Connects, with the target's token, within its time limit.
    pub(crate) async fn connect(target: &Target) -> Result<Self, CliError> {
        let mut request = target
            .ws_url()
            .into_client_request()
            .map_err(|e| CliError::Usage(format!("`{}`: {e}", target.given())))?;
        if let Some(token) = target.token() {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| CliError::Usage("the token cannot be sent in a header".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        let connected =
            tokio::time::timeout(target.timeout(), tokio_tungstenite::connect_async(request))
                .await
                .map_err(|_| target.timed_out())?;
        match connected {
            Ok((stream, _)) => Ok(Self { stream, target: target.clone() }),
            Err(WsError::Http(response)) if response.status().as_u16() == 401 => {
                Err(CliError::unauthorized(target.token().is_some()))
            }
            Err(WsError::Http(response)) => Err(CliError::Router(format!(
                "the WebSocket endpoint answered HTTP {}",
                response.status()
            ))),
            Err(e) => Err(target.unreachable(e)),
        }
    }

    /// Sends one JSON message.
    pub(crate) async fn send(&mut self, message: &Value) -> Result<(), CliError> {
        let text = message.to_string();
        self.stream.send(Message::text(text)).await.map_err(|e| self.target.unreachable(e))
    }

    /// The next JSON message; an error when the router closes the socket or sends something
    /// that is not JSON.
    pub(crate) async fn next(&mut self) -> Result<Value, CliError> {
        loop {
            let message = match self.stream.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(self.target.unreachable(e)),
                None => return Err(self.closed(None)),
            };
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).map_err(|e| {
                        CliError::Router(format!("the router sent a message that is not JSON: {e}"))
                    });
                }
                Message::Close(frame) => {
                    let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason));
                    return Err(self.closed(why));
                }
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// The next message whose `id` is `id` (an answer to a message sent with it), within the
    /// time limit; pushed notifications on the way are skipped.
    pub(crate) async fn answer(&mut self, id: u64) -> Result<Value, CliError> {
        let timeout = self.target.timeout();
        let wait = async {
            loop {
                let message = self.next().await?;
                if message["id"] == id {
                    return Ok(message);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| self.target.timed_out())?
    }

    fn closed(&self, why: Option<String>) -> CliError {
        let why = why.map(|w| format!(" ({})", w.trim())).unwrap_or_default();
        CliError::Router(format!("the router at {} closed the WebSocket{why}", self.target.given()))
    }
}
