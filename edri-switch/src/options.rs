//! The command line of `edri-switch`.

use edri_runtime::switch::SECRET_ENV;

/// The hub that joins EDRI routers on several processes or machines.
#[derive(Debug, clap::Parser)]
#[command(name = "edri-switch", version, about)]
pub(crate) struct Options {
    /// Where routers connect.
    #[arg(long, value_name = "ADDR", env = "EDRI_SWITCH_LISTEN", default_value = "127.0.0.1:7800")]
    pub(crate) listen: String,

    /// The secret routers must know.
    #[arg(long, value_name = "SECRET", env = SECRET_ENV, hide_env_values = true)]
    secret: Option<String>,

    /// Read the secret from a file (trailing newlines removed); wins over --secret and
    /// the environment.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<std::path::PathBuf>,

    /// Serve `GET /metrics` (Prometheus text) and `GET /status` (JSON) here: connected
    /// routers, frames and bytes each way, refusals. Unauthenticated: bind it to a private
    /// address.
    #[arg(long, value_name = "ADDR", env = "EDRI_SWITCH_METRICS")]
    pub(crate) metrics: Option<String>,
}

impl Options {
    /// The secret, from the file, the flag or the environment, in that order.
    pub(crate) fn secret(&self) -> Result<Vec<u8>, String> {
        let secret = match (&self.secret_file, &self.secret) {
            (Some(path), _) => {
                let text = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let end = text.iter().rposition(|b| !b"\r\n".contains(b)).map_or(0, |i| i + 1);
                text[..end].to_vec()
            }
            (None, Some(secret)) => secret.clone().into_bytes(),
            (None, None) => {
                return Err(format!(
                    "no secret: give --secret, --secret-file or the {SECRET_ENV} environment \
                     variable"
                ));
            }
        };
        if secret.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(secret)
    }
}
