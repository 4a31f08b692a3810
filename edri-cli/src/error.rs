//! What can go wrong, each as one line for the user, and the exit code it gives.

/// An error of the command line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The command line itself is wrong: a bad address, JSON argument or filter (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The router could not be reached, or the connection broke.
    #[error("cannot reach the router at {addr}: {reason}")]
    Unreachable {
        /// The router's address, as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The router wants a token, or refused the one given (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// The router answered with an error, or something it cannot do.
    #[error("{0}")]
    Router(String),
    /// No answer in time.
    #[error("the router at {addr} did not answer within {secs} s (--timeout)")]
    Timeout {
        /// The router's address, as given.
        addr: String,
        /// The limit, in seconds.
        secs: f64,
    },
}

impl CliError {
    /// The process's exit code: 2 for a wrong command line, 1 for the rest.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The 401 answer, worded by whether a token was given.
    pub(crate) fn unauthorized(token_given: bool) -> Self {
        Self::Unauthorized(if token_given {
            "the router refused the token (401): give the right one with --token or EDRI_TOKEN"
                .to_owned()
        } else {
            "the router wants a token (401): give it with --token or EDRI_TOKEN".to_owned()
        })
    }
}
