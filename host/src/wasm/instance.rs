//! One live plugin instance: calls `handle` for an entry (or `handle-batch`
//! for a batch) under a deadline and re-instantiates itself after a trap.

use crate::effects::Effects;
use crate::entry::Entry;
use crate::metrics::CallMetrics;
use crate::verdict::Verdict;
use crate::wasm::bindings::{Batch, BatchConsumer, BatchEntry, Consumer, Field, HANDLE_BATCH, WitEntry};
use crate::wasm::clock::CallClock;
use crate::wasm::engine::Engine;
use crate::wasm::host_state::{HostState, PluginTag};
use crate::wasm::limits::Limits;
use crate::wasm::log_budget::one_line;
use crate::wasm::plugin::{Plugin, Pre};
use crate::wasm::progress::follow_the_clock;
use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::error::Context as _;

pub use crate::handler::Delivery;

/// A plugin instance owned by one consumer and reused for every entry.
pub struct Instance {
    plugin: Plugin,
    /// What each call gets, and what it gets at most with progress calls.
    deadline: Duration,
    longest: Duration,
    limits: Limits,
    /// The Wasm instance and its entry point.
    store: Store<HostState>,
    export: Export,
    /// The record passed to `handle`. Stream, group and consumer are set once;
    /// id and fields are moved in and out per call, so no entry data is copied.
    template: WitEntry,
    /// The same for `handle-batch`: one `BatchEntry` per entry of the batch.
    batch: Batch,
    /// Field lists of earlier batches, emptied, reused so lending a batch
    /// allocates nothing once warm.
    spare_fields: Vec<Vec<Field>>,
    /// True after a trap: the instance must not be entered again.
    poisoned: bool,
    /// Verdict counters and call latency of this plugin version on this group.
    calls: CallMetrics,
    /// Where `state` calls and outbound HTTP go (kept for re-instantiation).
    delivery: Delivery,
    /// Effects of entries handled ok, until the consumer takes them.
    pub(crate) kept: Effects,
    /// Stream ownership mode: the assignment's info and, once the plugin
    /// ends its stream, the id of the entry it did so with.
    assignment: Option<Arc<str>>,
    pub(crate) finished: Option<String>,
}

impl Instance {
    /// Instantiates `plugin` for one consumer; `deadline` bounds each call.
    pub fn new(plugin: &Plugin, delivery: Delivery, deadline: Duration, limits: Limits) -> Result<Self> {
        let (store, export) = instantiate(plugin, &limits, &delivery)?;
        let batch = Batch {
            stream: delivery.stream.clone(),
            group: delivery.group.clone(),
            consumer: delivery.consumer.clone(),
            entries: Vec::new(),
        };
        let template = WitEntry {
            stream: delivery.stream.clone(),
            id: String::new(),
            fields: Vec::new(),
            delivery_count: 0,
            group: delivery.group.clone(),
            consumer: delivery.consumer.clone(),
        };
        let calls = crate::metrics::global().calls(&template.stream, &template.group, &plugin.tag);
        Ok(Instance {
            plugin: plugin.clone(),
            deadline,
            longest: limits.longest_call(deadline),
            limits,
            store,
            export,
            template,
            batch,
            spare_fields: Vec::new(),
            poisoned: false,
            calls,
            delivery,
            kept: Effects::default(),
            assignment: None,
            finished: None,
        })
    }

    /// Whether the plugin takes whole batches (`handle-batch`): then call
    /// [`Instance::handle_batch`], else [`Instance::handle`] per entry.
    pub fn batched(&self) -> bool {
        matches!(self.export, Export::Batch(_))
    }

    /// Name and version of the plugin this instance runs.
    pub fn tag(&self) -> &Arc<PluginTag> {
        &self.plugin.tag
    }

    /// Calls the plugin's `handle` for `entry` and returns its verdict (also
    /// counted in the metrics, with the call's duration). The entry is lent to
    /// the plugin and comes back unchanged.
    pub fn handle(&mut self, entry: &mut Entry) -> Verdict {
        if self.batched() {
            // A batch plugin swapped in by a hot reload in the middle of a
            // batch: the rest of that batch goes one entry per call.
            return self.handle_batch(std::slice::from_mut(entry)).pop().expect("one verdict per entry");
        }
        let started = Instant::now();
        let verdict = self.call(entry);
        self.calls.record(&verdict, started.elapsed());
        if self.store.data().finish_asked && verdict.is_ack() {
            self.finished = Some(entry.id.clone());
        }
        verdict
    }

    /// Stream ownership mode: the next entries are of `stream`, whose
    /// assignment's info is `info` (see [`crate::handler::Handler::assign`]).
    pub fn assign(&mut self, stream: &str, info: &Arc<str>) {
        if self.template.stream != stream {
            self.template.stream = stream.to_string();
            self.batch.stream = stream.to_string();
        }
        self.assignment = Some(info.clone());
        self.store.data_mut().assignment = Some(info.clone());
    }

    fn call(&mut self, entry: &mut Entry) -> Verdict {
        if self.poisoned
            && let Err(error) = self.recycle()
        {
            return Verdict::Fault { reason: format!("cannot re-instantiate plugin: {error:#}") };
        }
        if let Err(reason) = self.lend(entry) {
            return Verdict::Reject { reason };
        }
        let store = &mut self.store;
        let result = match &self.export {
            Export::Entry(bindings) => {
                store.set_epoch_deadline(Engine::ticks(self.deadline));
                // From now, not `started`: a re-instantiation above takes none of the call's time.
                let clock = CallClock::start(self.deadline, self.longest);
                store.data_mut().begin_call(clock, std::iter::once(self.template.id.as_str()));
                if let Some(fuel) = self.limits.max_fuel {
                    store.set_fuel(fuel).expect("plugins with a fuel limit run on a metered engine");
                }
                let result = bindings.call_handle(&mut *store, &self.template);
                store.data().end_call();
                result
            }
            // Not reached: `handle` sends a batch plugin's entries to `handle_batch`.
            Export::Batch(_) => Err(wasmtime::Error::msg("a batch plugin was called per entry")),
        };
        self.take_back(entry);
        let clock = self.store.data().clock;
        let verdict = Verdict::from_call(result, &clock, self.limits.max_fuel).capped(self.limits.max_return_bytes);
        self.poisoned = verdict.poisons_instance();
        let recorder = &mut self.store.data_mut().recorder;
        if recorder.used() {
            if verdict.is_ack() {
                self.kept.add(&entry.id, recorder.take(0));
            }
            recorder.discard();
        }
        verdict
    }

    /// Calls the plugin's `handle-batch` for `entries` (a batch plugin) and
    /// returns one verdict per entry, in order (each counted in the metrics
    /// with the call's duration shared out). The entries are lent and come
    /// back unchanged. When the call faults (trap, deadline, fuel, or a list
    /// of the wrong length), the entries run again one per call, so only an
    /// entry that faults on its own is faulted. The re-runs share what is
    /// left of the batch's longest time (`max_call_ms`, for `progress`
    /// calls); each still gets its call deadline.
    pub fn handle_batch(&mut self, entries: &mut [Entry]) -> Vec<Verdict> {
        let started = Instant::now();
        // Effects kept before this batch: a fault below drops only the batch's own.
        let before = std::mem::take(&mut self.kept);
        let mut verdicts = self.call_batch(entries, self.longest);
        if entries.len() > 1 && verdicts.iter().any(Verdict::poisons_instance) {
            // The entries run again: what the faulted call kept (entries it
            // handled ok) would otherwise be committed twice.
            self.kept = Effects::default();
            let fault = verdicts.iter().find(|v| v.poisons_instance()).expect("checked").to_string();
            tracing::warn!(plugin = %self.plugin.tag.name, consumer = %self.batch.consumer,
                "a batch of {} faulted ({}); running its entries one per call", entries.len(), one_line(&fault));
            verdicts = entries
                .chunks_mut(1)
                .flat_map(|one| self.call_batch(one, self.longest.saturating_sub(started.elapsed())))
                .collect();
        }
        let each = started.elapsed() / entries.len().max(1) as u32;
        for verdict in &verdicts {
            self.calls.record(verdict, each);
        }
        let batch = std::mem::replace(&mut self.kept, before);
        self.kept.append(batch);
        if self.store.data().finish_asked
            && let Some((entry, _)) = entries.iter().zip(&verdicts).rev().find(|(_, v)| v.is_ack())
        {
            self.finished = Some(entry.id.clone());
        }
        verdicts
    }

    /// One `handle-batch` call for `entries`, which `progress` calls may
    /// extend to `longest` (never below the call deadline); entries whose
    /// field names are not UTF-8 are rejected by the host and left out of the call.
    fn call_batch(&mut self, entries: &mut [Entry], longest: Duration) -> Vec<Verdict> {
        if self.poisoned
            && let Err(error) = self.recycle()
        {
            let reason = format!("cannot re-instantiate plugin: {error:#}");
            return entries.iter().map(|_| Verdict::Fault { reason: reason.clone() }).collect();
        }
        let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(entries.len());
        self.batch.entries.clear();
        for entry in entries.iter_mut() {
            match non_utf8_name(entry) {
                Some(reason) => verdicts.push(Some(Verdict::Reject { reason })),
                None => {
                    verdicts.push(None);
                    let mut fields = self.spare_fields.pop().unwrap_or_default();
                    fields.extend(take_fields(entry));
                    self.batch.entries.push(BatchEntry {
                        id: std::mem::take(&mut entry.id),
                        fields,
                        delivery_count: entry.delivery_count,
                    });
                }
            }
        }
        let n = self.batch.entries.len();
        // The deadline bounds each call, batch or not (an overrun re-runs the
        // entries one per call, each with the whole deadline); fuel is a
        // per-entry budget, so a batch gets it once per entry.
        let (deadline, fuel) = (self.deadline, self.limits.max_fuel.map(|f| f.saturating_mul(n as u64)));
        let clock = CallClock::start(deadline, longest);
        let store = &mut self.store;
        let result = match &self.export {
            Export::Batch(bindings) if n > 0 => {
                store.set_epoch_deadline(Engine::ticks(deadline));
                let ids = self.batch.entries.iter().map(|e| e.id.as_str());
                store.data_mut().begin_call(clock, ids);
                if let Some(fuel) = fuel {
                    store.set_fuel(fuel).expect("plugins with a fuel limit run on a metered engine");
                }
                let result = bindings.call_handle_batch(&mut *store, &self.batch);
                store.data().end_call();
                result
            }
            _ => Ok(Vec::new()),
        };
        // Back to the entries, in order, skipping the ones rejected above.
        let mut lent = self.batch.entries.drain(..);
        for (entry, verdict) in entries.iter_mut().zip(&verdicts) {
            if verdict.is_none() {
                let mut back = lent.next().expect("one lent entry per verdict left open");
                entry.id = back.id;
                entry.fields.extend(back.fields.drain(..).map(|f| (f.name.into_bytes(), f.value)));
                self.spare_fields.push(back.fields);
            }
        }
        drop(lent);
        let clock = self.store.data().clock;
        let mut results = match result {
            Ok(results) if results.len() == n => results.into_iter().map(Ok),
            Ok(results) => {
                let reason = format!("{HANDLE_BATCH} returned {} verdicts for a batch of {n} entries", results.len());
                self.poisoned = true;
                self.store.data_mut().recorder.discard();
                return fill(verdicts, || Verdict::Fault { reason: reason.clone() });
            }
            Err(error) => {
                let fault = Verdict::from_call(Err(error), &clock, fuel);
                self.poisoned = true;
                self.store.data_mut().recorder.discard();
                return fill(verdicts, || fault.clone());
            }
        };
        let called: Vec<bool> =
            if self.store.data().recorder.used() { verdicts.iter().map(Option::is_none).collect() } else { Vec::new() };
        let max_bytes = self.limits.max_return_bytes;
        let verdicts = fill(verdicts, || {
            let result = results.next().expect("one result per entry called");
            Verdict::from_call(result, &clock, fuel).capped(max_bytes)
        });
        self.poisoned = verdicts.iter().any(Verdict::poisons_instance);
        if !called.is_empty() {
            // Keep the effects of the entries handled ok, each by its id.
            let recorder = &mut self.store.data_mut().recorder;
            let lent = entries.iter().zip(&verdicts).zip(called).filter(|(_, called)| *called);
            for (index, ((entry, verdict), _)) in lent.enumerate() {
                if verdict.is_ack() {
                    self.kept.add(&entry.id, recorder.take(index));
                }
            }
            recorder.discard();
        }
        verdicts
    }

    /// Moves the entry's id and fields into the template. A field name that is
    /// not UTF-8 cannot cross the WIT boundary: that entry is rejected.
    fn lend(&mut self, entry: &mut Entry) -> Result<(), String> {
        if let Some(reason) = non_utf8_name(entry) {
            return Err(reason);
        }
        self.template.id = std::mem::take(&mut entry.id);
        self.template.delivery_count = entry.delivery_count;
        self.template.fields.clear();
        self.template.fields.extend(take_fields(entry));
        Ok(())
    }

    fn take_back(&mut self, entry: &mut Entry) {
        entry.id = std::mem::take(&mut self.template.id);
        entry.fields.extend(self.template.fields.drain(..).map(|f| (f.name.into_bytes(), f.value)));
    }

    /// Drops the trapped instance and starts a fresh one from the pre-instance.
    fn recycle(&mut self) -> Result<()> {
        (self.store, self.export) = instantiate(&self.plugin, &self.limits, &self.delivery)?;
        self.store.data_mut().assignment = self.assignment.clone();
        self.poisoned = false;
        tracing::debug!(plugin = %self.plugin.tag.name, version = %self.plugin.tag.version, "plugin instance recycled after a fault");
        Ok(())
    }
}

/// Why an entry cannot cross the WIT boundary: a field name that is not UTF-8.
fn non_utf8_name(entry: &Entry) -> Option<String> {
    let (name, _) = entry.fields.iter().find(|(n, _)| std::str::from_utf8(n).is_err())?;
    Some(format!("field name {:?} is not UTF-8; plugins receive field names as text", String::from_utf8_lossy(name)))
}

/// Moves the entry's fields out as WIT fields (names checked by [`non_utf8_name`]).
fn take_fields(entry: &mut Entry) -> impl Iterator<Item = Field> + '_ {
    entry.fields.drain(..).map(|(name, value)| Field { name: String::from_utf8(name).expect("checked UTF-8"), value })
}

/// `verdicts` with each open one filled in by `next`, in order.
fn fill(verdicts: Vec<Option<Verdict>>, mut next: impl FnMut() -> Verdict) -> Vec<Verdict> {
    verdicts.into_iter().map(|v| v.unwrap_or_else(&mut next)).collect()
}

/// A plugin instance's entry point, by world.
enum Export {
    /// `handle`, one entry per call.
    Entry(Consumer),
    /// `handle-batch`, one batch per call.
    Batch(BatchConsumer),
}

/// A fresh instance of `plugin`.
fn instantiate(plugin: &Plugin, limits: &Limits, delivery: &Delivery) -> Result<(Store<HostState>, Export)> {
    let code = &plugin.code;
    anyhow::ensure!(
        limits.max_fuel.is_none() || plugin.engine.metered,
        "version {} of plugin {} was compiled without fuel metering, which its fuel limit needs \
         (load it on Engine::flavour(true))",
        plugin.tag.version,
        plugin.tag.name
    );
    // Instantiation runs guest start-up code: give it a deadline too (and,
    // when metered, all the fuel it wants: the deadline bounds it).
    let start_up = Duration::from_secs(30);
    let state = HostState::new(plugin.tag.clone(), limits, delivery, CallClock::start(start_up, start_up))?;
    let mut store = Store::new(&plugin.engine.engine, state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(Engine::ticks(start_up));
    follow_the_clock(&mut store);
    if plugin.engine.metered {
        store.set_fuel(u64::MAX).context("cannot give the metered instance fuel")?;
    }
    let failed = || format!("cannot instantiate plugin {} ({})", plugin.tag.name, plugin.path.display());
    let export = match &code.pre {
        Pre::Entry(pre) => Export::Entry(pre.instantiate(&mut store).with_context(failed)?),
        Pre::Batch(pre) => Export::Batch(pre.instantiate(&mut store).with_context(failed)?),
    };
    store.data().end_call();
    Ok((store, export))
}
