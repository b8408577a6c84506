//! Turns SIGINT/SIGTERM into a cancellation token that every task watches;
//! a second signal exits at once.

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGINT or SIGTERM. A second one
/// ends the process at once with status 128 + its number (130 or 143), for
/// when the graceful stop waits too long (a call in hand may take up to its
/// deadline): entries in hand stay pending and are claimed after `--min-idle-ms`.
/// Must be called inside the tokio runtime.
pub fn on_signals() -> Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let (name, _) = tokio::select! {
            _ = interrupt.recv() => ("SIGINT", libc::SIGINT),
            _ = terminate.recv() => ("SIGTERM", libc::SIGTERM),
        };
        tracing::info!(
            "{name} received: finishing the entry in hand, leaving the rest pending (send it again to exit now)"
        );
        cancel.cancel();
        let (name, number) = tokio::select! {
            _ = interrupt.recv() => ("SIGINT", libc::SIGINT),
            _ = terminate.recv() => ("SIGTERM", libc::SIGTERM),
        };
        tracing::warn!("second {name}: exiting now; entries in hand stay pending (not acked) until claimed");
        std::process::exit(128 + number);
    });
    Ok(token)
}
