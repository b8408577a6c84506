//! The one path for every batch (`process`): trimmed ids and entries past
//! their delivery limit recorded, then the plugin invoked on a blocking
//! thread (Wasm must not stall the async reactor), while the consumer keeps leases fresh: on the entries
//! in hand, on the batch read ahead once it is in, and on held retries —
//! only those it still owns. Entries Redis dropped meanwhile (payload
//! trimmed) are noted, so their verdicts record them instead of losing them.

use super::read_ahead::Ahead;
use super::{Consumer, GroupSettings, Step, StepError};
use crate::consumer::lease::refresh_every;
use crate::consumer::settle::over_limit_error;
use crate::dead_letter::Reason;
use crate::effects::Effects;
use crate::entry::Entry;
use crate::handler::{Delivery, Handler, HandlerSource};
use crate::streams::Batch;
use crate::streams::DeadLetterMode;
use crate::verdict::Verdict;
use anyhow::{Context, Result};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

impl<S: HandlerSource> Consumer<S> {
    /// The one path for every batch, fresh or recovered: record trimmed ids,
    /// dead-letter entries past their delivery limit, invoke the plugin for
    /// the rest, and settle each verdict.
    pub(super) async fn process(&mut self, batch: Batch, shutdown: &CancellationToken) -> Step {
        for id in &batch.trimmed {
            self.stats.trimmed += 1;
            let why = "payload trimmed from the stream before processing";
            self.dead_letter(id, &[], 0, Reason::Trimmed, why, DeadLetterMode::Audit).await;
        }
        let max = self.settings.max_deliveries;
        let (over, mut fresh): (Vec<Entry>, Vec<Entry>) =
            batch.entries.into_iter().partition(|e| e.delivery_count > max);
        let crashed = (self.crash_due as usize).min(fresh.len());
        if crashed > 0 {
            self.crash_due -= crashed as u32;
            self.control.crashed(crashed as u32);
            let dropped: Vec<String> = fresh.drain(..crashed).map(|e| e.id).collect();
            tracing::warn!(stream = %self.settings.stream, group = %self.settings.group, consumer = %self.name,
                "crash drill: dropped {} deliveries unacked, they stay pending until claimed: {}",
                dropped.len(), dropped.join(" "));
        }
        for entry in over {
            let error =
                over_limit_error(entry.delivery_count, max, self.last_errors.get(&entry.id).map(String::as_str));
            let (fields, count) = (&entry.fields, entry.delivery_count);
            self.dead_letter(&entry.id, fields, count, Reason::MaxDeliveries, &error, DeadLetterMode::Settle).await;
        }
        if !fresh.is_empty() {
            let (outcomes, effects) = self.invoke(fresh, shutdown.clone()).await.map_err(StepError::Fatal)?;
            self.settle(outcomes, effects).await;
        }
        Ok(())
    }

    /// Calls the plugin for each entry, in order (or once for the batch, for
    /// a `batch-consumer` plugin), on a blocking thread (Wasm must not stall
    /// the async reactor), stopping early on shutdown. While it runs, the
    /// batch's leases (and held retries) are refreshed.
    pub(super) async fn invoke(
        &mut self,
        entries: Vec<Entry>,
        shutdown: CancellationToken,
    ) -> Result<(Vec<(Entry, Verdict)>, Effects)> {
        let in_hand: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let mut instance = self.instance.take().context("plugin instance lost by an earlier failure")?;
        let mut plugin = self.plugin.clone();
        let (delivery, settings) = (self.delivery.clone(), self.settings.clone());
        let worker = tokio::task::spawn_blocking(move || {
            let mut outcomes = Vec::with_capacity(entries.len());
            let mut rest = Vec::new();
            let mut effects = Effects::default();
            if plugin.has_changed().unwrap_or(false) {
                let next = plugin.borrow_and_update().clone();
                switch(&mut instance, &*next, &delivery, &settings);
            }
            if instance.batched() {
                // One call for the whole batch (a `batch-consumer` plugin).
                let mut entries = entries;
                let verdicts = instance.handle_batch(&mut entries);
                outcomes.extend(entries.into_iter().zip(verdicts));
                effects.append(instance.take_effects());
                return (instance, plugin, outcomes, rest, effects);
            }
            let mut entries = entries.into_iter();
            for mut entry in entries.by_ref() {
                if shutdown.is_cancelled() {
                    rest.push(entry);
                    break;
                }
                // A reload between two entries: this one already uses the new version.
                if plugin.has_changed().unwrap_or(false) {
                    let next = plugin.borrow_and_update().clone();
                    switch(&mut instance, &*next, &delivery, &settings);
                }
                let verdict = instance.handle(&mut entry);
                outcomes.push((entry, verdict));
                // Taken after each call: a reload drops the instance that kept them.
                effects.append(instance.take_effects());
            }
            rest.extend(entries);
            (instance, plugin, outcomes, rest, effects)
        });
        tokio::pin!(worker);
        let every = refresh_every(self.settings.min_idle);
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The batch read ahead (if any) comes in while this one runs; its
        // entries are this consumer's from then on and are leased too.
        let mut ahead = self.read_ahead.take();
        let outcome = loop {
            tokio::select! {
                joined = &mut worker => break joined.context("plugin worker thread panicked"),
                read = async {
                    match &mut ahead {
                        Some(Ahead::InFlight(read)) => read.await,
                        _ => std::future::pending().await,
                    }
                } => ahead = Some(Ahead::Ready(read.context("read-ahead task panicked").flatten())),
                _ = refresh.tick() => {
                    let mut leased = self.leased(&in_hand);
                    leased.extend(ahead.iter().flat_map(Ahead::ids).cloned());
                    if let Err(error) = self.lease(&leased).await {
                        tracing::warn!(consumer = %self.name,
                            "lease refresh failed (a peer may reclaim entries in progress): {error:#}");
                    }
                }
            }
        };
        self.read_ahead = ahead;
        let (instance, plugin, outcomes, rest, effects) = outcome?;
        self.instance = Some(instance);
        self.plugin = plugin;
        self.abandoned(rest).await;
        Ok((outcomes, effects))
    }

    /// Entries handed out but not handled (shutdown came first) stay
    /// pending — except those trimmed meanwhile, pending nowhere now: they
    /// are recorded, with the payload the host holds.
    pub(super) async fn abandoned(&mut self, entries: Vec<Entry>) {
        if self.trimmed_in_hand.is_empty() {
            return;
        }
        for entry in entries {
            if self.trimmed_in_hand.remove(&entry.id) {
                self.stats.trimmed += 1;
                let why = "payload trimmed from the stream while waiting to be handled (the host stopped first)";
                let (fields, count) = (&entry.fields, entry.delivery_count);
                self.dead_letter(&entry.id, fields, count, Reason::Trimmed, why, DeadLetterMode::Audit).await;
            }
        }
    }

    /// What this consumer leases now besides `in_hand`: the batch read
    /// ahead, once it is in, and the retries it holds.
    pub(super) fn leased(&mut self, in_hand: &[String]) -> Vec<String> {
        let mut leased = in_hand.to_vec();
        leased.extend(self.read_ahead.iter().flat_map(Ahead::ids).cloned());
        leased.extend(self.holds.current());
        leased
    }

    /// Refreshes the leases of `ids` this consumer still owns. A held retry
    /// that a peer took or that was acked is no longer held; one whose
    /// payload was trimmed (Redis drops it from the pending list) gets its
    /// audit record now, an entry in hand or read ahead gets one when its
    /// verdict is not ok (the host still has its payload).
    pub(super) async fn lease(&mut self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        let s = self.settings.clone();
        let leases = conn.lease(&s.stream, &s.group, &self.name, ids).await?;
        for id in &leases.lost {
            if self.holds.release(id) {
                tracing::info!(consumer = %self.name, stream = %s.stream, entry = %id,
                    "held retry no longer pending for this consumer (acked or reclaimed by a peer)");
            }
        }
        for id in leases.deleted {
            if self.holds.release(&id) {
                self.stats.trimmed += 1;
                let why = "payload trimmed from the stream while held for a retry";
                self.dead_letter(&id, &[], 0, Reason::Trimmed, why, DeadLetterMode::Audit).await;
            } else {
                self.trimmed_in_hand.insert(id);
            }
        }
        Ok(())
    }
}

/// Moves `instance` to a new plugin version, keeping the old one if the new
/// one cannot be instantiated.
fn switch<S: HandlerSource>(instance: &mut S::Handler, next: &S, delivery: &Delivery, settings: &GroupSettings) {
    let (old, tag, consumer) = (instance.tag().version.clone(), next.tag(), &delivery.consumer);
    match next.instantiate(delivery, settings.call_deadline, &settings.limits) {
        Ok(new) => {
            *instance = new;
            tracing::info!(consumer, plugin = %tag.name, version = %tag.version, "switched from version {old}");
        }
        Err(error) => tracing::error!(consumer, plugin = %tag.name, version = %tag.version,
            "cannot instantiate the new version, staying on {old}: {error:#}"),
    }
}
