//! Settling an entry once its verdict is in: [`decide`] says what the
//! verdict calls for (ack, dead-letter, or leave pending, perhaps held back
//! for a retry delay); the consumer then carries it out — acks queued for
//! one XACK per batch (see `acks.rs`), dead letters written in one
//! server-side step with their XACK (only while the entry is still this
//! consumer's), retries left pending (confirmed still pending, held for
//! their delay), and audit records of trimmed entries, written again at
//! every step until Redis takes them, since nothing else is left of those
//! entries.

use super::{Consumer, MAX_REMEMBERED_ERRORS};
use crate::dead_letter::{self, Origin, Reason};
use crate::effects::Effects;
use crate::entry::Entry;
use crate::handler::{Handler, HandlerSource};
use crate::streams::{DeadLetterMode, DeadLettered};
use crate::verdict::Verdict;
use crate::wasm::log_budget::one_line;
use std::time::Duration;

/// The action a verdict calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// XACK.
    Ack,
    /// XADD to the dead-letter stream and XACK, atomically.
    DeadLetter {
        /// Why.
        reason: Reason,
        /// The last error text.
        error: String,
    },
    /// Leave pending: the reaper redelivers it after `--min-idle-ms`, or
    /// after `hold` when the plugin asked for a longer delay.
    Leave {
        /// The error text, kept in case a later delivery is the last.
        error: String,
        /// The plugin's retry delay, if any.
        hold: Option<Duration>,
    },
}

/// Decides the action for an entry delivered `deliveries` times (this
/// delivery included) that got `verdict`. A failure on the last allowed
/// delivery is dead-lettered at once rather than left to time out again.
pub fn decide(verdict: Verdict, deliveries: u32, max_deliveries: u32) -> Action {
    let (error, hold) = match verdict {
        Verdict::Ack => return Action::Ack,
        Verdict::Reject { reason } => return Action::DeadLetter { reason: Reason::Rejected, error: reason },
        Verdict::Retry { reason, delay } => (reason, delay),
        Verdict::Fault { reason } => (reason, None),
    };
    if deliveries >= max_deliveries {
        Action::DeadLetter { reason: Reason::MaxDeliveries, error }
    } else {
        Action::Leave { error, hold }
    }
}

/// The error text recorded for an entry that arrives already past its
/// delivery limit (the host that delivered it last may have died mid-call).
pub fn over_limit_error(deliveries: u32, max_deliveries: u32, last_error: Option<&str>) -> String {
    match last_error {
        Some(error) => error.to_string(),
        None => format!(
            "delivered {deliveries} times, more than --max-deliveries {max_deliveries}; \
             last error unknown (a previous handler may have crashed or timed out)"
        ),
    }
}

/// An audit record still to be written (see `Consumer::unrecorded`).
pub(super) struct Unrecorded {
    pub(super) id: String,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    deliveries: u32,
    pub(super) why: String,
}

/// Audit records held for a retry at most; past it the entry is named in
/// the log (an error) instead, so a long outage cannot grow memory for ever.
const MAX_UNRECORDED: usize = 100_000;

impl<S: HandlerSource> Consumer<S> {
    /// Writes the audit records still owed (see `unrecorded`), stopping at
    /// the first failure (Redis is still away: the rest waits for the next step).
    pub(super) async fn record_unrecorded(&mut self) {
        let mut owed = std::mem::take(&mut self.unrecorded).into_iter();
        while let Some(u) = owed.next() {
            self.dead_letter(&u.id, &u.fields, u.deliveries, Reason::Trimmed, &u.why, DeadLetterMode::Audit).await;
            if !self.unrecorded.is_empty() {
                self.unrecorded.extend(owed);
                return;
            }
        }
    }

    /// Acts on each verdict: acks (queued for one XACK, sent with the next
    /// read), dead letters, and retries left pending (held back when their
    /// delay needs it).
    pub(super) async fn settle(&mut self, outcomes: Vec<(Entry, Verdict)>, mut effects: Effects) {
        let (stream, group) = (self.settings.stream.clone(), self.settings.group.clone());
        let mut left = Vec::new();
        let mut commits = Vec::new();
        for (entry, verdict) in outcomes {
            self.stats.handled += 1;
            match &verdict {
                Verdict::Retry { .. } => self.stats.retried += 1,
                Verdict::Fault { reason } => {
                    self.stats.faulted += 1;
                    let (s, deliveries) = (&self.settings, entry.delivery_count.to_string());
                    crate::streams::events::record(
                        "fault",
                        &[
                            ("stream", &s.stream),
                            ("group", &s.group),
                            ("consumer", &self.name),
                            ("entry", &entry.id),
                            ("deliveries", &deliveries),
                            ("error", reason),
                        ],
                    );
                }
                Verdict::Reject { .. } => self.stats.rejected += 1,
                Verdict::Ack => {}
            }
            // Text only for what is not acked: no formatting on the hot path.
            let verdict_text = if verdict == Verdict::Ack { String::new() } else { verdict.to_string() };
            if !self.trimmed_in_hand.is_empty() && self.trimmed_in_hand.remove(&entry.id) && verdict != Verdict::Ack {
                // Redis no longer has it pending, so leaving it pending would
                // lose it: record it, with the payload the host still holds.
                self.stats.trimmed += 1;
                self.control.set_last_error(&entry.id, &verdict_text);
                let why = format!("payload trimmed from the stream while being handled; {verdict_text}");
                let (fields, count) = (&entry.fields, entry.delivery_count);
                self.dead_letter(&entry.id, fields, count, Reason::Trimmed, &why, DeadLetterMode::Audit).await;
                continue;
            }
            match decide(verdict, entry.delivery_count, self.settings.max_deliveries) {
                Action::Ack => {
                    if let Some(effects) = effects.take(&entry.id) {
                        // Acked by the commit of its effects, below.
                        commits.push((entry, effects));
                        continue;
                    }
                    self.forget(&entry.id);
                    if let Some(observer) = &self.observer {
                        self.unacked_stamps.push(observer.stamp(&entry));
                    }
                    self.unacked.push(entry.id);
                }
                Action::DeadLetter { reason, error } => {
                    self.control.set_last_error(&entry.id, &verdict_text);
                    let (fields, count) = (&entry.fields, entry.delivery_count);
                    self.dead_letter(&entry.id, fields, count, reason, &error, DeadLetterMode::Settle).await;
                }
                Action::Leave { error, hold } => {
                    let hold = self.settings.retry_delay(entry.delivery_count, hold);
                    self.control.set_last_error(&entry.id, &verdict_text);
                    tracing::warn!(%stream, %group, consumer = %self.name, entry = %entry.id,
                        deliveries = entry.delivery_count, "left pending: {}", one_line(&verdict_text));
                    left.push((entry, hold, error));
                }
            }
        }
        self.commit(commits).await;
        self.leave_pending(left).await;
    }

    /// Entries left pending for a retry: first confirms they still are, in
    /// one lease refresh (which also restarts their idle clock, so the
    /// reaper's wait counts from the verdict). One whose payload was trimmed
    /// is pending nowhere: recorded now, with its payload, or it would be
    /// lost. One a peer took over (or that was acked) is not held.
    pub(super) async fn leave_pending(&mut self, left: Vec<(Entry, Option<Duration>, String)>) {
        if left.is_empty() {
            return;
        }
        let s = self.settings.clone();
        let ids: Vec<String> = left.iter().map(|(entry, ..)| entry.id.clone()).collect();
        let checked = match self.connection().await {
            Ok(mut conn) => conn.lease(&s.stream, &s.group, &self.name, &ids).await,
            Err(error) => Err(error),
        };
        let leases = checked.unwrap_or_else(|error| {
            tracing::warn!(consumer = %self.name, "cannot confirm entries left pending (kept as they are): {error:#}");
            Default::default()
        });
        for (entry, hold, error) in left {
            if leases.deleted.contains(&entry.id) {
                self.stats.trimmed += 1;
                let why = format!("payload trimmed from the stream while being handled; {error}");
                let (fields, count) = (&entry.fields, entry.delivery_count);
                self.dead_letter(&entry.id, fields, count, Reason::Trimmed, &why, DeadLetterMode::Audit).await;
                continue;
            }
            if leases.lost.contains(&entry.id) {
                tracing::info!(stream = %s.stream, consumer = %self.name, entry = %entry.id,
                    "no longer pending for this consumer (a peer took it over, or it was acked)");
                self.forget(&entry.id);
                continue;
            }
            if let Some(delay) = hold {
                let delay = delay.min(s.max_retry_delay);
                if !self.holds.hold(entry.id.clone(), delay, s.min_idle) {
                    tracing::warn!(stream = %s.stream, consumer = %self.name, entry = %entry.id,
                        "{} retries held already: this one comes back after --min-idle-ms, sooner than the {} ms \
                         asked", crate::consumer::lease::MAX_HOLDS, delay.as_millis());
                }
            }
            if self.last_errors.len() < MAX_REMEMBERED_ERRORS || self.last_errors.contains_key(&entry.id) {
                self.last_errors.insert(entry.id, error);
            }
        }
    }

    /// Writes a dead-letter record and acks the original in one server-side
    /// step, only while this consumer owns the entry (`Settle`; an `Audit`
    /// of a trimmed entry is always written). On failure nothing was written
    /// and the entry stays pending, to be retried later.
    pub(super) async fn dead_letter(
        &mut self,
        id: &str,
        fields: &[(Vec<u8>, Vec<u8>)],
        deliveries: u32,
        reason: Reason,
        error: &str,
        mode: DeadLetterMode,
    ) {
        let (s, name) = (self.settings.clone(), self.name.clone());
        let tag = match &self.instance {
            Some(instance) => instance.tag().clone(),
            None => self.plugin.borrow().tag().clone(),
        };
        let origin =
            Origin { stream: &s.stream, group: &s.group, consumer: &name, plugin: &tag.name, version: &tag.version };
        let record = dead_letter::record(&origin, id, fields, deliveries, reason, error);
        let result = match self.connection().await {
            Ok(mut conn) => {
                conn.dead_letter(&s.stream, &s.group, &self.name, id, &s.dead_letter, mode, &record, None).await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(DeadLettered::Written(dead_id)) => {
                dead_letter_event(&origin, id, deliveries, reason, error, &s.dead_letter, &dead_id);
                self.stats.dead_lettered += 1;
                crate::metrics::global().dead_lettered(&s.stream, &s.group, &tag, reason.as_str());
                self.forget(id);
                tracing::warn!(stream = %s.stream, group = %s.group, consumer = %self.name, entry = %id,
                    dead_letter = %s.dead_letter, %dead_id, deliveries, reason = reason.as_str(), "dead-lettered: {}", one_line(error));
            }
            Ok(DeadLettered::NotOwned(owner)) => {
                self.forget(id);
                let now =
                    if owner.is_empty() { "pending for nobody (acked)".into() } else { format!("owned by {owner}") };
                tracing::warn!(stream = %s.stream, group = %s.group, consumer = %self.name, entry = %id,
                    "not dead-lettered: the entry is now {now}, whose verdict counts");
            }
            Err(failure) if mode == DeadLetterMode::Audit => {
                self.conn = None;
                if self.unrecorded.len() >= MAX_UNRECORDED {
                    tracing::error!(consumer = %self.name, entry = %id,
                        "trimmed entry could not be recorded in the dead-letter stream: {failure:#}");
                    return;
                }
                tracing::warn!(consumer = %self.name, entry = %id,
                    "recording a trimmed entry failed, trying again at the next step: {failure:#}");
                let (id, fields, why) = (id.to_string(), fields.to_vec(), error.to_string());
                self.unrecorded.push(Unrecorded { id, fields, deliveries, why });
            }
            Err(failure) => {
                tracing::warn!(consumer = %self.name, entry = %id, "dead-lettering failed, entry stays pending: {failure:#}");
                self.conn = None;
            }
        }
    }

    pub(super) fn forget(&mut self, id: &str) {
        // Both are usually empty: skip hashing the id then (this runs per acked entry).
        if !self.last_errors.is_empty() {
            self.last_errors.remove(id);
        }
        if !self.holds.is_empty() {
            self.holds.release(id);
        }
    }
}

/// A dead letter written: its failure event (`host:events`), with the
/// metadata of the log line.
pub(crate) fn dead_letter_event(
    origin: &Origin<'_>,
    id: &str,
    deliveries: u32,
    reason: Reason,
    error: &str,
    dead_letter: &str,
    dead_id: &str,
) {
    let deliveries = deliveries.to_string();
    crate::streams::events::record(
        "dead-letter",
        &[
            ("stream", origin.stream),
            ("group", origin.group),
            ("consumer", origin.consumer),
            ("entry", id),
            ("deliveries", &deliveries),
            ("reason", reason.as_str()),
            ("error", error),
            ("plugin", origin.plugin),
            ("version", origin.version),
            ("dead-letter", dead_letter),
            ("dead-id", dead_id),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(delay: Option<u64>) -> Verdict {
        Verdict::Retry { reason: "busy".into(), delay: delay.map(Duration::from_millis) }
    }

    #[test]
    fn verdicts_become_actions() {
        assert_eq!(decide(Verdict::Ack, 5, 5), Action::Ack);
        assert_eq!(
            decide(Verdict::Reject { reason: "bad".into() }, 1, 5),
            Action::DeadLetter { reason: Reason::Rejected, error: "bad".into() }
        );
        assert_eq!(
            decide(retry(Some(9)), 4, 5),
            Action::Leave { error: "busy".into(), hold: Some(Duration::from_millis(9)) }
        );
        assert_eq!(
            decide(retry(None), 5, 5),
            Action::DeadLetter { reason: Reason::MaxDeliveries, error: "busy".into() }
        );
        assert_eq!(
            decide(Verdict::Fault { reason: "trap".into() }, 6, 5),
            Action::DeadLetter { reason: Reason::MaxDeliveries, error: "trap".into() }
        );
    }
}
