//! One live plugin instance: calls `handle` for an entry under a deadline and
//! re-instantiates itself after a trap.

use crate::bindings::{Consumer, Field, WitEntry};
use crate::engine::Engine;
use crate::entry::Entry;
use crate::guest_log::{HostState, PluginTag};
use crate::limits::Limits;
use crate::metrics::CallMetrics;
use crate::plugin::Plugin;
use crate::verdict::Verdict;
use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::error::Context as _;

/// Where an entry is delivered: fixed for the life of a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stream key.
    pub stream: String,
    /// Consumer group.
    pub group: String,
    /// Consumer name.
    pub consumer: String,
}

/// A plugin instance owned by one consumer and reused for every entry.
pub struct Instance {
    plugin: Plugin,
    deadline: Duration,
    limits: Limits,
    /// The Wasm instance; `None` for the native handler.
    wasm: Option<(Store<HostState>, Consumer)>,
    /// The record passed to `handle`. Stream, group and consumer are set once;
    /// id and fields are moved in and out per call, so no entry data is copied.
    template: WitEntry,
    /// True after a trap: the instance must not be entered again.
    poisoned: bool,
    /// Verdict counters and call latency of this plugin version on this group.
    calls: CallMetrics,
}

impl Instance {
    /// Instantiates `plugin` for one consumer; `deadline` bounds each call.
    pub fn new(plugin: &Plugin, delivery: Delivery, deadline: Duration, limits: Limits) -> Result<Self> {
        let wasm = instantiate(plugin, &limits)?;
        let template = WitEntry {
            stream: delivery.stream,
            id: String::new(),
            fields: Vec::new(),
            delivery_count: 0,
            group: delivery.group,
            consumer: delivery.consumer,
        };
        let calls = crate::metrics::global().calls(&template.stream, &template.group, &plugin.tag);
        Ok(Instance { plugin: plugin.clone(), deadline, limits, wasm, template, poisoned: false, calls })
    }

    /// Name and version of the plugin this instance runs.
    pub fn tag(&self) -> &Arc<PluginTag> {
        &self.plugin.tag
    }

    /// Switches to another version of the plugin. The new version is
    /// instantiated first; if that fails the old instance stays in service.
    pub fn switch_to(&mut self, plugin: &Plugin) -> Result<()> {
        let wasm = instantiate(plugin, &self.limits)?;
        self.plugin = plugin.clone();
        self.wasm = wasm;
        self.poisoned = false;
        self.calls = crate::metrics::global().calls(&self.template.stream, &self.template.group, &plugin.tag);
        Ok(())
    }

    /// Calls the plugin's `handle` for `entry` and returns its verdict (also
    /// counted in the metrics, with the call's duration). The entry is lent to
    /// the plugin and comes back unchanged.
    pub fn handle(&mut self, entry: &mut Entry) -> Verdict {
        let started = Instant::now();
        let verdict = self.call(entry);
        self.calls.record(&verdict, started.elapsed());
        verdict
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
        let result = match &mut self.wasm {
            Some((store, bindings)) => {
                store.set_epoch_deadline(Engine::ticks(self.deadline));
                if let Some(fuel) = self.limits.max_fuel {
                    store.set_fuel(fuel).expect("plugins with a fuel limit run on a metered engine");
                }
                bindings.call_handle(store, &self.template)
            }
            None => Ok(Ok(())),
        };
        self.take_back(entry);
        let verdict =
            Verdict::from_call(result, self.deadline, self.limits.max_fuel).capped(self.limits.max_return_bytes);
        self.poisoned = verdict.poisons_instance();
        verdict
    }

    /// Moves the entry's id and fields into the template. A field name that is
    /// not UTF-8 cannot cross the WIT boundary: that entry is rejected.
    fn lend(&mut self, entry: &mut Entry) -> Result<(), String> {
        if let Some((name, _)) = entry.fields.iter().find(|(n, _)| std::str::from_utf8(n).is_err()) {
            return Err(format!(
                "field name {:?} is not UTF-8; plugins receive field names as text",
                String::from_utf8_lossy(name)
            ));
        }
        self.template.id = std::mem::take(&mut entry.id);
        self.template.delivery_count = entry.delivery_count;
        self.template.fields.clear();
        self.template.fields.extend(
            entry
                .fields
                .drain(..)
                .map(|(name, value)| Field { name: String::from_utf8(name).expect("checked above"), value }),
        );
        Ok(())
    }

    fn take_back(&mut self, entry: &mut Entry) {
        entry.id = std::mem::take(&mut self.template.id);
        entry.fields.extend(self.template.fields.drain(..).map(|f| (f.name.into_bytes(), f.value)));
    }

    /// Drops the trapped instance and starts a fresh one from the pre-instance.
    fn recycle(&mut self) -> Result<()> {
        self.wasm = instantiate(&self.plugin, &self.limits)?;
        self.poisoned = false;
        tracing::debug!(plugin = %self.plugin.tag.name, version = %self.plugin.tag.version, "plugin instance recycled after a fault");
        Ok(())
    }
}

/// A fresh instance of `plugin` (`None` for the native handler).
fn instantiate(plugin: &Plugin, limits: &Limits) -> Result<Option<(Store<HostState>, Consumer)>> {
    let Some(code) = &plugin.code else { return Ok(None) };
    anyhow::ensure!(
        limits.max_fuel.is_none() || plugin.engine.metered,
        "version {} of plugin {} was compiled without fuel metering, which its fuel limit needs \
         (load it on Engine::flavour(true))",
        plugin.tag.version,
        plugin.tag.name
    );
    let state = HostState::new(plugin.tag.clone(), limits.store_limits(), limits.grants.clone())?;
    let mut store = Store::new(&plugin.engine.engine, state);
    store.limiter(|state| &mut state.limits);
    // Instantiation runs guest start-up code: give it a deadline too (and,
    // when metered, all the fuel it wants: the deadline bounds it).
    store.set_epoch_deadline(Engine::ticks(Duration::from_secs(30)));
    if plugin.engine.metered {
        store.set_fuel(u64::MAX).context("cannot give the metered instance fuel")?;
    }
    let bindings = code
        .pre
        .instantiate(&mut store)
        .with_context(|| format!("cannot instantiate plugin {} ({})", plugin.tag.name, plugin.path.display()))?;
    Ok(Some((store, bindings)))
}
