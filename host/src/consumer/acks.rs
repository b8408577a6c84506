//! Acks: ids handled Ok are queued and go out in one XACK per batch (with
//! the next read), or one per entry before the next read
//! ([`AckMode::EachBeforeRead`]); acks whose fate is unknown are sent again
//! (acking twice is harmless). An [`AckObserver`] hears of each success.

use super::{AckMode, Consumer};
use crate::entry::Entry;
use crate::handler::HandlerSource;
use anyhow::Result;
use std::sync::Arc;

/// Told about entries as they are acked: `host bench` records produce-to-ack
/// latency through one. Given to a consumer at start; without one the
/// consumer keeps nothing per entry for it.
pub trait AckObserver: Send + Sync {
    /// What to keep for `entry`, handled Ok, until its XACK succeeds.
    fn stamp(&self, entry: &Entry) -> u64;
    /// The XACK of the entries stamped `stamps` succeeded.
    fn acked(&self, stamps: &[u64]);
}

/// Ids handled Ok, sent to be acked with a read ahead, and their stamps
/// (when an [`AckObserver`] watches).
pub(super) struct Acks {
    pub(super) ids: Vec<String>,
    pub(super) stamps: Vec<u64>,
}

impl<S: HandlerSource> Consumer<S> {
    /// Acks sent with a read that failed or was abandoned: whether they took
    /// effect is unknown, so they are sent again (acking twice is harmless),
    /// ahead of the later ones.
    pub(super) fn unsent(&mut self, acks: Option<Arc<Acks>>) {
        if let Some(acks) = acks {
            self.unacked.splice(0..0, acks.ids.iter().cloned());
            self.unacked_stamps.splice(0..0, acks.stamps.iter().copied());
        }
    }

    /// XACKs the ids handled Ok so far.
    pub(super) async fn flush_acks(&mut self) -> Result<()> {
        if self.unacked.is_empty() {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        let (stream, group) = (&self.settings.stream, &self.settings.group);
        let acked = if self.settings.ack == AckMode::EachBeforeRead {
            let mut acked = 0;
            for (i, id) in self.unacked.iter().enumerate() {
                match conn.ack(stream, group, std::slice::from_ref(id)).await {
                    Ok(n) => acked += n,
                    Err(error) => {
                        // Keep only what is still unacked for the next try.
                        self.unacked.drain(..i);
                        if let Some(observer) = &self.observer {
                            observer.acked(
                                &self.unacked_stamps.drain(..i.min(self.unacked_stamps.len())).collect::<Vec<_>>(),
                            );
                        }
                        return Err(error);
                    }
                }
            }
            acked
        } else {
            conn.ack(stream, group, &self.unacked).await?
        };
        if let Some(observer) = &self.observer {
            observer.acked(&self.unacked_stamps);
            self.unacked_stamps.clear();
        }
        tracing::debug!(consumer = %self.name, stream = %self.settings.stream, "acked {acked} of {} entries", self.unacked.len());
        self.count_acked(self.unacked.len());
        self.unacked.clear();
        Ok(())
    }

    /// Counts `n` ids acked.
    pub(super) fn count_acked(&mut self, n: usize) {
        self.stats.acked += n as u64;
        crate::metrics::global().acked(&self.settings.stream, &self.settings.group, n as u64);
        self.publish();
    }
}
