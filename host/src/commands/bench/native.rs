//! The built-in native handler of `host bench --handler native`: a Rust
//! no-op that acks every entry, deployed like a plugin (same consumer, same
//! settle path, its verdicts counted in the metrics like a plugin's), so the
//! difference to a plugin run is what Wasm costs.

use crate::entry::Entry;
use crate::handler::{Delivery, Handler, HandlerSource, PluginTag};
use crate::metrics::CallMetrics;
use crate::settings::Limits;
use crate::verdict::Verdict;
use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Name and version of the native handler.
pub const NATIVE: &str = "native";

/// The native handler's one version.
pub struct Native {
    tag: Arc<PluginTag>,
}

impl Native {
    /// The handler, tagged `native`.
    pub fn new() -> Self {
        Native { tag: Arc::new(PluginTag { name: NATIVE.into(), version: NATIVE.into() }) }
    }
}

/// One consumer's native handler.
pub struct NativeHandler {
    tag: Arc<PluginTag>,
    calls: CallMetrics,
}

impl HandlerSource for Native {
    type Handler = NativeHandler;

    fn tag(&self) -> &Arc<PluginTag> {
        &self.tag
    }

    fn instantiate(&self, delivery: &Delivery, _deadline: Duration, _limits: &Limits) -> Result<NativeHandler> {
        let calls = crate::metrics::global().calls(&delivery.stream, &delivery.group, &self.tag);
        Ok(NativeHandler { tag: self.tag.clone(), calls })
    }
}

impl Handler for NativeHandler {
    fn batched(&self) -> bool {
        false
    }

    fn handle(&mut self, _entry: &mut Entry) -> Verdict {
        let started = Instant::now();
        let verdict = Verdict::Ack;
        self.calls.record(&verdict, started.elapsed());
        verdict
    }

    fn handle_batch(&mut self, entries: &mut [Entry]) -> Vec<Verdict> {
        entries.iter_mut().map(|entry| self.handle(entry)).collect()
    }

    fn tag(&self) -> &Arc<PluginTag> {
        &self.tag
    }
}
