//! Ctrl-C and SIGTERM for [`EdriBuilder::run`](super::EdriBuilder::run) and
//! [`Running::wait_for_stop_signal`](super::Running::wait_for_stop_signal).

/// Ctrl-C and SIGTERM, listened to from the moment this is created (from then on they no
/// longer end the process by themselves).
pub(super) struct StopSignals {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    pub(super) fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
            if let Err(e) = &signals {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C / SIGTERM");
            }
            Self { signals: signals.ok() }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    pub(super) async fn recv(self) {
        #[cfg(unix)]
        match self.signals {
            Some((mut int, mut term)) => {
                tokio::select! {
                    _ = int.recv() => tracing::info!("Ctrl-C: stopping"),
                    _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                }
            }
            None => std::future::pending().await,
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.ok();
        }
    }
}
