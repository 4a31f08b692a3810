//! The connection to NATS: options from [`Nats`], the first connection, reconnections.

use super::metrics::{Stats, add};
use super::{Auth, Nats};
use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use std::sync::Arc;
use std::time::Duration;

/// Connects to one of the servers of `config` as router `id`; from then on the client
/// reconnects by itself, without limit (counted in `stats`).
///
/// # Errors
/// A message saying why no server took this router (unreachable, authentication failed, TLS).
pub(super) async fn connect(config: &Nats, id: &str, stats: Arc<Stats>) -> Result<Client, String> {
    let mut options = match &config.auth {
        Auth::None => ConnectOptions::new(),
        Auth::UserPassword(user, password) => {
            ConnectOptions::new().user_and_password(user.clone(), password.clone())
        }
        Auth::Token(token) => ConnectOptions::new().token(token.clone()),
        Auth::NKey(seed) => ConnectOptions::new().nkey(seed.clone()),
        Auth::CredentialsFile(path) => {
            ConnectOptions::new().credentials_file(path.clone()).await.map_err(|e| {
                format!("cannot read the credentials file `{}`: {e}", path.display())
            })?
        }
    };
    if config.tls.required {
        options = options.require_tls(true);
    }
    for root in &config.tls.roots {
        options = options.add_root_certificates(root.clone());
    }
    if let Some((cert, key)) = &config.tls.client {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let options = options
        .name(format!("edri {id}"))
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            // Quick first tries, then up to 2 s between them.
            let ms = 10u64.saturating_mul(1 << attempts.min(8)).min(2_000);
            Duration::from_millis(ms)
        })
        .subscription_capacity(64 * 1024)
        .client_capacity(64 * 1024)
        .event_callback(move |event| {
            let stats = stats.clone();
            async move {
                match event {
                    Event::Disconnected => {
                        add(&stats.reconnects, 1);
                        tracing::warn!("disconnected from NATS; reconnecting");
                    }
                    Event::Connected => tracing::info!("connected to NATS"),
                    Event::SlowConsumer(sid) => {
                        tracing::warn!(sid, "a NATS subscription is too slow: messages dropped");
                    }
                    other => tracing::debug!(event = %other, "NATS"),
                }
            }
        });
    let servers: Vec<String> = config.servers.clone();
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .map(|s| s.parse().map_err(|e| format!("`{s}` is not a NATS server URL: {e}")))
        .collect::<Result<_, _>>()?;
    options.connect(addrs).await.map_err(|e| match e.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            format!(
                "authentication failed: the NATS server refused this router's credentials ({e})"
            )
        }
        ConnectErrorKind::Tls => format!("TLS failed: {e}"),
        _ => format!("cannot connect: {e}"),
    })
}
