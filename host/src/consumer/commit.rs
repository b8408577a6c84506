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

impl<S: HandlerSource> Consumer<S> {
    /// Commits the effects of `entries` (handled ok) with their acks.
    pub(super) async fn commit(&mut self, entries: Vec<(Entry, Vec<Effect>)>) {
        if entries.is_empty() {
            return;
        }
        let s = self.settings.clone();
        let refs: Vec<(&str, &[Effect])> = entries.iter().map(|(e, fx)| (e.id.as_str(), fx.as_slice())).collect();
        let results = match self.connection().await {
            Ok(mut conn) => conn.commit(&s.stream, &s.group, &self.name, &refs).await,
            Err(error) => Err(error),
        };
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
