//! Handing an owned stream's entries to the plugin and settling each
//! verdict, in order: ok acks (an entry's effects committed with its ack
//! before the next entry is handled, so the plugin reads its own writes);
//! a reject, or a failure on the last allowed delivery, is dead-lettered
//! and the stream goes on; a retry holds the entry and everything after it
//! back until its delay is over. An end marker, or the plugin's `finish`,
//! ends the stream. Every write is fenced by the lease.

use super::assignment::is_end;
use super::stream::{Halt, OwnedStream, Step, retrying};
use crate::consumer::settle::{Action, dead_letter_event, decide, over_limit_error};
use crate::dead_letter::{self, Origin, Reason};
use crate::effects::{Effect, Effects};
use crate::entry::Entry;
use crate::handler::{Handler, HandlerSource};
use crate::streams::{Committed, DeadLetterMode, DeadLettered};
use crate::verdict::Verdict;
use crate::wasm::log_budget::one_line;
use std::time::{Duration, Instant};

/// What handling one entry came to, in the blocking loop.
pub(super) enum Handled {
    /// The plugin's verdict, and whether it finished the stream.
    Verdict(Verdict, bool),
    /// The end marker: not handed to the plugin.
    End,
    /// Delivered more often than allowed already (its handler may have
    /// crashed the process each time): dead-lettered without a call.
    OverLimit,
}

impl<S: HandlerSource> OwnedStream<S> {
    /// Hands the held entries to the plugin in order, up to the first that
    /// is to be retried, records effects, or ends the stream; settles each.
    pub(super) async fn handle(&mut self) -> Step {
        let mut lent = tokio::select! {
            lent = self.shared.pool.lend() => lent,
            _ = self.stop.cancelled() => return Ok(()),
            _ = self.disowned.cancelled() => return Ok(()),
        };
        let mut held = std::mem::take(&mut self.held);
        let (shared, stream, info) =
            (self.shared.clone(), self.assignment.stream.clone(), self.assignment.info.clone());
        let max = shared.settings.max_deliveries;
        let (halt, halted) = (self.stop.clone(), self.disowned.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let mut outcomes = Vec::new();
            let handler = match lent.handler(&shared.pool) {
                Ok(handler) => handler,
                Err(error) => return (lent, held, Err(error), Effects::default()),
            };
            handler.assign(&stream, &info);
            let mut effects = Effects::default();
            while let Some(mut entry) = held.pop_front() {
                if halt.is_cancelled() || halted.is_cancelled() {
                    held.push_front(entry);
                    break;
                }
                if is_end(&entry) {
                    outcomes.push((entry, Handled::End));
                    break;
                }
                if entry.delivery_count > max {
                    outcomes.push((entry, Handled::OverLimit));
                    break;
                }
                let verdict = handler.handle(&mut entry);
                let finished = handler.take_finished().is_some();
                let held_back = matches!(decide(verdict.clone(), entry.delivery_count, max), Action::Leave { .. });
                // Effects are committed before the next entry is handled, so
                // it reads (through `state`) what the one before it wrote.
                let recorded = handler.take_effects();
                let wrote = !recorded.is_empty();
                effects.append(recorded);
                outcomes.push((entry, Handled::Verdict(verdict, finished)));
                if finished || held_back || wrote {
                    break;
                }
            }
            (lent, held, Ok(outcomes), effects)
        })
        .await;
        let (lent, held, outcomes, effects) = match joined {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(stream = %self.assignment.stream, "plugin call task failed: {error}");
                return Err(Halt::Reread);
            }
        };
        self.shared.pool.give_back(lent);
        self.held = held;
        match outcomes {
            Ok(outcomes) => self.settle(outcomes, effects).await,
            Err(error) => {
                tracing::error!(stream = %self.assignment.stream, "cannot instantiate the plugin: {error:#}");
                Err(Halt::Retry)
            }
        }
    }

    async fn settle(&mut self, outcomes: Vec<(Entry, Handled)>, mut effects: Effects) -> Step {
        let s = self.shared.settings.clone();
        let mut oks: Vec<(Entry, Vec<Effect>)> = Vec::new();
        let mut rest = outcomes.into_iter();
        while let Some((entry, handled)) = rest.next() {
            let (verdict, finished) = match handled {
                Handled::End => {
                    if self.flushed(&mut oks, Some(entry.clone()), &mut rest).await? {
                        return Ok(());
                    }
                    return Err(Halt::Done(self.finish("end_marker", Some(&entry.id)).await));
                }
                Handled::OverLimit => {
                    if self.flushed(&mut oks, Some(entry.clone()), &mut rest).await? {
                        return Ok(());
                    }
                    let error = over_limit_error(entry.delivery_count, s.max_deliveries, self.last_error.as_deref());
                    self.dead_letter(&entry, Reason::MaxDeliveries, &error, false).await?;
                    continue;
                }
                Handled::Verdict(verdict, finished) => (verdict, finished),
            };
            self.stats.handled += 1;
            match &verdict {
                Verdict::Retry { .. } => self.stats.retried += 1,
                Verdict::Fault { reason } => {
                    self.stats.faulted += 1;
                    let deliveries = entry.delivery_count.to_string();
                    crate::streams::events::record(
                        "fault",
                        &[
                            ("stream", &self.assignment.stream),
                            ("group", &s.group),
                            ("consumer", &self.shared.worker),
                            ("entry", &entry.id),
                            ("deliveries", &deliveries),
                            ("error", reason),
                        ],
                    );
                }
                Verdict::Reject { .. } => self.stats.rejected += 1,
                Verdict::Ack => {}
            }
            let text = if verdict.is_ack() { String::new() } else { verdict.to_string() };
            match decide(verdict, entry.delivery_count, s.max_deliveries) {
                Action::Ack if finished => {
                    let fx = effects.take(&entry.id).unwrap_or_default();
                    // Without effects, its ack goes with the assignment's (one step).
                    let last = if fx.is_empty() { Some(entry.id.clone()) } else { None };
                    if last.is_none() {
                        oks.push((entry, fx));
                    }
                    let dead_before = self.stats.dead_lettered;
                    if self.flushed(&mut oks, None, &mut rest).await? {
                        return Ok(());
                    }
                    if self.stats.dead_lettered > dead_before {
                        // Its effects refused at its last delivery: dead-lettered,
                        // not ok, so `finish` has no effect and the stream goes on.
                        continue;
                    }
                    return Err(Halt::Done(self.finish("plugin", last.as_deref()).await));
                }
                Action::Ack => {
                    let fx = effects.take(&entry.id).unwrap_or_default();
                    oks.push((entry, fx));
                }
                Action::DeadLetter { reason, error } => {
                    if self.flushed(&mut oks, Some(entry.clone()), &mut rest).await? {
                        return Ok(());
                    }
                    self.dead_letter(&entry, reason, &error, false).await?;
                }
                Action::Leave { error, hold } => {
                    if self.flushed(&mut oks, Some(entry.clone()), &mut rest).await? {
                        return Ok(());
                    }
                    tracing::warn!(stream = %self.assignment.stream, entry = %entry.id, deliveries = entry.delivery_count,
                        "held back for a retry (the entries after it wait): {}", one_line(&text));
                    self.hold_back(entry, hold, error);
                }
            }
        }
        self.flushed(&mut oks, None, &mut rest).await.map(|_| ())
    }

    /// Holds `entry` (and so the ones after it) back for a retry.
    fn hold_back(&mut self, entry: Entry, hold: Option<Duration>, error: String) {
        let s = &self.shared.settings;
        let delay = s.retry_delay(entry.delivery_count, hold).unwrap_or(s.min_idle).min(s.max_retry_delay);
        self.retry_at = Some(Instant::now() + delay);
        self.last_error = Some(error);
        self.held.push_front(entry);
    }

    /// Flushes `oks` before `next` (the entry being settled, if not among
    /// them) is acted on. When Redis refused an entry's effects, that entry
    /// and every one after it (`next`, the rest of the pass) go back in
    /// front of the held entries, to be handled again in order: returns true.
    async fn flushed(
        &mut self,
        oks: &mut Vec<(Entry, Vec<Effect>)>,
        next: Option<Entry>,
        rest: &mut impl Iterator<Item = (Entry, Handled)>,
    ) -> Step<bool> {
        let back = self.flush(std::mem::take(oks)).await?;
        if back.is_empty() {
            return Ok(false);
        }
        let again: Vec<Entry> = back.into_iter().chain(next).chain(rest.map(|(entry, _)| entry)).collect();
        for entry in again.into_iter().rev() {
            self.held.push_front(entry);
        }
        self.retry_at = Some(Instant::now() + self.shared.settings.min_idle);
        Ok(true)
    }

    /// Acks the entries handled ok, committing their effects with them.
    /// Returns the entries to handle again: the first whose effects Redis
    /// refused and every one after it (the fenced commit applies nothing
    /// past a refusal, so the order holds); on its last delivery that first
    /// one is dead-lettered instead.
    async fn flush(&mut self, oks: Vec<(Entry, Vec<Effect>)>) -> Step<Vec<Entry>> {
        if oks.is_empty() {
            return Ok(Vec::new());
        }
        if oks.iter().all(|(_, fx)| fx.is_empty()) {
            let ids: Vec<String> = oks.into_iter().map(|(e, _)| e.id).collect();
            self.last_error = None;
            return self.ack(ids).await.map(|()| Vec::new());
        }
        let ((lease, holder), stream) = (self.fence(), self.assignment.stream.clone());
        let (group, worker) = (self.shared.settings.group.clone(), self.shared.worker.clone());
        let refs: Vec<(&str, &[Effect])> = oks.iter().map(|(e, fx)| (e.id.as_str(), fx.as_slice())).collect();
        let results = retrying!(self, "an effects commit", |c| c.commit_fenced(
            &stream,
            &group,
            &worker,
            &refs,
            Some((&lease, &holder))
        ))?;
        drop(refs);
        let max = self.shared.settings.max_deliveries;
        let (mut back, mut applied) = (Vec::new(), 0);
        for ((entry, _), result) in oks.into_iter().zip(results) {
            match result {
                Committed::Applied => applied += 1,
                // Pending for nobody: applied and acked by an earlier try of this commit.
                Committed::NotOwned(owner) if owner.is_empty() => {}
                Committed::NotOwned(owner) => {
                    tracing::warn!(%stream, entry = %entry.id,
                        "effects not applied: the entry is pending for {owner:?}, not this worker");
                }
                Committed::Refused(error) if back.is_empty() && entry.delivery_count >= max => {
                    let error = format!("effects refused by Redis, nothing applied: {error}");
                    self.dead_letter(&entry, Reason::MaxDeliveries, &error, false).await?;
                }
                Committed::Refused(error) => {
                    if back.is_empty() {
                        tracing::warn!(%stream, entry = %entry.id,
                            "effects refused by Redis, nothing applied; held back for a retry: {}", one_line(&error));
                        self.last_error = Some(error);
                    }
                    back.push(entry);
                }
            }
        }
        self.count_acked(applied);
        Ok(back)
    }

    pub(super) fn count_acked(&mut self, n: u64) {
        if n > 0 {
            self.stats.acked += n;
            let s = &self.shared.settings;
            crate::metrics::global().acked(&s.stream, &s.group, n);
        }
    }

    async fn ack(&mut self, ids: Vec<String>) -> Step {
        let ((lease, holder), stream) = (self.fence(), self.assignment.stream.clone());
        let group = self.shared.settings.group.clone();
        let doing = format!("the ack of {} entries", ids.len());
        let acked = retrying!(self, &doing, |c| c.ack_owned((&lease, &holder), &stream, &group, &ids))?;
        self.count_acked(acked);
        Ok(())
    }

    /// Records `entry` in the dead-letter stream and acks it, fenced; an
    /// `audit` (a trimmed entry) is written whoever holds it in the group.
    pub(super) async fn dead_letter(&mut self, entry: &Entry, reason: Reason, error: &str, audit: bool) -> Step {
        let ((lease, holder), s) = (self.fence(), self.shared.settings.clone());
        let (stream, worker) = (self.assignment.stream.clone(), self.shared.worker.clone());
        let tag = self.shared.pool.current().tag().clone();
        let origin =
            Origin { stream: &stream, group: &s.group, consumer: &worker, plugin: &tag.name, version: &tag.version };
        let record = dead_letter::record(&origin, &entry.id, &entry.fields, entry.delivery_count, reason, error);
        let mode = if audit { DeadLetterMode::Audit } else { DeadLetterMode::Settle };
        let (id, dlq) = (entry.id.clone(), s.dead_letter.clone());
        let written = retrying!(self, "a dead letter", |c| c.dead_letter(
            &stream,
            &s.group,
            &worker,
            &id,
            &dlq,
            mode,
            &record,
            Some((&lease, &holder))
        ))?;
        match written {
            DeadLettered::Written(dead_id) => {
                dead_letter_event(&origin, &entry.id, entry.delivery_count, reason, error, &s.dead_letter, &dead_id);
                self.stats.dead_lettered += 1;
                self.last_error = None;
                crate::metrics::global().dead_lettered(&s.stream, &s.group, &tag, reason.as_str());
                tracing::warn!(%stream, entry = %entry.id, dead_letter = %s.dead_letter, %dead_id,
                    deliveries = entry.delivery_count, reason = reason.as_str(), "dead-lettered: {}", one_line(error));
            }
            // Pending for nobody: written and acked by an earlier try.
            DeadLettered::NotOwned(owner) if owner.is_empty() => {}
            DeadLettered::NotOwned(owner) => {
                tracing::warn!(%stream, entry = %entry.id, "not dead-lettered: the entry is pending for {owner:?}");
            }
        }
        Ok(())
    }
}
