//! The end of a consumer's run: what was read ahead is let go (trimmed
//! entries among it recorded), handled entries acked, claim requests
//! answered, the pending list handed over (when leaving the group, or with
//! `--handover`, and only while the name is still this task's), owed audit
//! records written, and the name's lease released.

use super::Consumer;
use super::read_ahead::Ahead;
use super::stats::ConsumerStats;
use crate::consumer::control::State;
use crate::consumer::handover::{Handover, hand_over};
use crate::dead_letter::Reason;
use crate::handler::HandlerSource;
use crate::streams::DeadLetterMode;
use anyhow::Result;

impl<S: HandlerSource> Consumer<S> {
    /// Winds the consumer down; `lost` names the holder that took its name
    /// over, if one did (then nothing is handed over and the run fails).
    pub(super) async fn leave(&mut self, lost: Option<String>) -> Result<ConsumerStats> {
        self.finish_commit().await;
        if let Some(ahead) = self.read_ahead.take() {
            // Whatever it read stays in this consumer's pending list: the next
            // start drains it, or a peer's reaper claims it (but what was
            // trimmed meanwhile is pending nowhere: recorded). Its acks are
            // sent again.
            match ahead {
                Ahead::InFlight(read) => read.abort(),
                Ahead::Ready(Ok((_, batch))) => self.abandoned(batch.entries).await,
                Ahead::Ready(Err(_)) => {}
            }
            let acks = self.ahead_acks.take();
            self.unsent(acks);
        }
        if let Err(error) = self.flush_acks().await {
            tracing::warn!(consumer = %self.name, "{} handled entries stay pending: {error:#}", self.unacked.len());
        }
        self.take_drills();
        for claim in std::mem::take(&mut self.claims) {
            let _ = claim.send(Err(format!("consumer {} is stopping", self.name)));
        }
        if lost.is_some() {
            // The name's pending list is the new holder's: no handover.
        } else if let Some(peers) = self.leaving.take() {
            self.hand_over(std::slice::from_ref(&self.name.clone()), &peers).await;
        } else if self.settings.handover {
            self.hand_over(&self.settings.consumers.clone(), &[]).await;
        }
        self.record_unrecorded().await;
        for lost in std::mem::take(&mut self.unrecorded) {
            tracing::error!(consumer = %self.name, stream = %self.settings.stream, entry = %lost.id,
                "trimmed entry could not be recorded in the dead-letter stream before exit: {}",
                crate::wasm::log_budget::one_line(&lost.why));
        }
        if let Some(lease) = self.name_lease.take() {
            lease.release().await;
        }
        if let Some(holder) = lost {
            let error = anyhow::anyhow!(
                "consumer name {:?} was taken over by {holder} (this process could not renew its lease in \
                 time); stopped so that the two do not take each other's entries",
                self.name
            );
            self.control.set_state(State::Failed(format!("{error:#}")));
            return Err(error);
        }
        self.publish();
        self.control.set_state(State::Stopped);
        let s = &self.stats;
        tracing::info!(consumer = %self.name, stream = %self.settings.stream, group = %self.settings.group,
            handled = s.handled, acked = s.acked, retried = s.retried, faulted = s.faulted, rejected = s.rejected,
            dead_lettered = s.dead_lettered, claimed = s.claimed, "consumer stopped");
        Ok(self.stats)
    }

    /// Gives the pending list to a live peer (none of `leaving`; any of
    /// `alive` first) and deletes this consumer, if it still holds its name.
    async fn hand_over(&mut self, leaving: &[String], alive: &[String]) {
        let s = self.settings.clone();
        let Some(lease) = &self.name_lease else { return };
        let (key, token) = (lease.key.clone(), lease.token.clone());
        let result = match self.connection().await {
            Ok(mut conn) => {
                let lease = (key.as_str(), token.as_str());
                hand_over(&mut conn, &s.stream, &s.group, &self.name, leaving, alive, s.min_idle, lease).await
            }
            Err(error) => Err(error),
        };
        let trimmed = match result {
            Ok(Handover::Done { peer, moved, trimmed }) => {
                tracing::info!(consumer = %self.name, stream = %s.stream, group = %s.group,
                    "handed over {moved} pending entries to {}; consumer deleted",
                    peer.as_deref().unwrap_or("nobody (none pending)"));
                trimmed
            }
            Ok(Handover::NameTaken { moved, trimmed }) => {
                tracing::warn!(consumer = %self.name, stream = %s.stream, group = %s.group,
                    "handed over {moved} pending entries; the consumer name is leased by another holder now, \
                     so the consumer was not deleted (its pending list is that holder's)");
                trimmed
            }
            Ok(Handover::NoPeer { pending, trimmed }) => {
                tracing::warn!(consumer = %self.name, stream = %s.stream,
                    "no live peer to hand {pending} pending entries to; they stay pending for the group's reapers");
                trimmed
            }
            Err(error) => {
                tracing::warn!(consumer = %self.name, "handover failed, entries stay pending: {error:#}");
                Vec::new()
            }
        };
        for id in trimmed {
            self.stats.trimmed += 1;
            let why = "payload trimmed from the stream before processing (found at handover)";
            self.dead_letter(&id, &[], 0, Reason::Trimmed, why, DeadLetterMode::Audit).await;
        }
    }
}
