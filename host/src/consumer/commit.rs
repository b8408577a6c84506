//! Entries handled ok that recorded effects: their effects are applied and
//! they are acked in one fenced server-side step (`streams/commit.rs`),
//! only while this consumer owns them. Not owned: nothing applied, the
//! peer's delivery decides. Refused (an effect cannot be applied): nothing
//! applied, the entry stays pending and comes back — on its last allowed
//! delivery it is dead-lettered with the refusal. Redis away: the outcome is
//! unknown; the entry is either committed or still pending (then
//! redelivered and committed later), never half-applied.

use super::Consumer;
use crate::dead_letter::Reason;
use crate::effects::Effect;
use crate::entry::Entry;
use crate::handler::HandlerSource;
use crate::streams::{Committed, DeadLetterMode};
use crate::wasm::log_budget::one_line;
use anyhow::Result;

/// A commit sent and not yet answered: its entries come back with the
/// results (or the failure).
pub(super) type Committing = tokio::task::JoinHandle<(Vec<(Entry, Vec<Effect>)>, Result<Vec<Committed>>)>;

impl<S: HandlerSource> Consumer<S> {
    /// Sends the commit of `entries`' effects with their acks, without
    /// waiting: Redis runs it while the plugin handles the next batch. Its
    /// results are taken by [`Self::finish_commit`]: before the next commit,
    /// at a step without a batch read ahead (before its reap or read), and on
    /// the way out. During a backlog they are taken one batch late (so a
    /// reap may run while a commit is in flight: harmless, the script applies
    /// nothing for an entry this consumer no longer owns). A commit still in
    /// flight is finished first: one at a time, in order.
    pub(super) async fn commit(&mut self, entries: Vec<(Entry, Vec<Effect>)>) {
        self.finish_commit().await;
        if entries.is_empty() {
            return;
        }
        let s = self.settings.clone();
        let (name, conn) = (self.name.clone(), self.connection().await);
        self.committing = Some(tokio::spawn(async move {
            let mut conn = match conn {
                Ok(conn) => conn,
                Err(error) => return (entries, Err(error)),
            };
            let refs: Vec<(&str, &[Effect])> = entries.iter().map(|(e, fx)| (e.id.as_str(), fx.as_slice())).collect();
            let results = conn.commit(&s.stream, &s.group, &name, &refs).await;
            drop(refs);
            (entries, results)
        }));
    }

    /// Takes the results of the commit in flight, if any: counts what was
    /// applied, logs what was not, and leaves refused entries pending (or
    /// dead-letters them at their last delivery).
    pub(super) async fn finish_commit(&mut self) {
        let Some(task) = self.committing.take() else { return };
        let (entries, results) = match task.await {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(consumer = %self.name, "effects commit task failed: {error}");
                return;
            }
        };
        let s = self.settings.clone();
        let results = match results {
            Ok(results) => results,
            Err(error) => {
                self.conn = None;
                tracing::warn!(stream = %s.stream, group = %s.group, consumer = %self.name,
                    "committing the effects of {} entries failed; each is committed or still pending (then \
                     redelivered), never half-applied: {error:#}", entries.len());
                return;
            }
        };
        let metrics = crate::metrics::global();
        let mut applied = 0;
        for ((entry, effects), result) in entries.into_iter().zip(results) {
            match result {
                Committed::Applied => {
                    applied += 1;
                    self.forget(&entry.id);
                    if let Some(observer) = &self.observer {
                        observer.acked(&[observer.stamp(&entry)]);
                    }
                    for kind in ["emit", "incr", "set", "del"] {
                        let n = effects.iter().filter(|e| e.kind() == kind).count() as u64;
                        if n > 0 {
                            metrics.effects_committed(&s.stream, &s.group, kind, n);
                        }
                    }
                }
                Committed::NotOwned(owner) => {
                    metrics.commit_refused(&s.stream, &s.group, "not_owner");
                    self.forget(&entry.id);
                    let now = if owner.is_empty() {
                        "pending for nobody (acked)".into()
                    } else {
                        format!("owned by {owner}")
                    };
                    tracing::info!(stream = %s.stream, group = %s.group, consumer = %self.name, entry = %entry.id,
                        "effects not applied: the entry is now {now}, whose delivery decides");
                }
                Committed::Refused(error) => {
                    metrics.commit_refused(&s.stream, &s.group, "error");
                    let error = format!("effects refused by Redis, nothing applied: {error}");
                    self.control.set_last_error(&entry.id, &error);
                    if entry.delivery_count >= s.max_deliveries {
                        let (fields, count) = (&entry.fields, entry.delivery_count);
                        self.dead_letter(
                            &entry.id,
                            fields,
                            count,
                            Reason::MaxDeliveries,
                            &error,
                            DeadLetterMode::Settle,
                        )
                        .await;
                        continue;
                    }
                    tracing::warn!(stream = %s.stream, group = %s.group, consumer = %self.name, entry = %entry.id,
                        deliveries = entry.delivery_count, "left pending: {}", one_line(&error));
                    self.leave_pending(vec![(entry, None, error)]).await;
                }
            }
        }
        if applied > 0 {
            self.count_acked(applied);
        }
    }
}
