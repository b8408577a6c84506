//! A loaded plugin is a [`HandlerSource`] and its instance a [`Handler`]:
//! what the consumer calls, whatever runs behind it.

use crate::entry::Entry;
use crate::handler::{Delivery, Handler, HandlerSource, PluginTag};
use crate::verdict::Verdict;
use crate::wasm::instance::Instance;
use crate::wasm::limits::Limits;
use crate::wasm::plugin::Plugin;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

impl HandlerSource for Plugin {
    type Handler = Instance;

    fn tag(&self) -> &Arc<PluginTag> {
        &self.tag
    }

    fn instantiate(&self, delivery: &Delivery, deadline: Duration, limits: &Limits) -> Result<Instance> {
        Instance::new(self, delivery.clone(), deadline, limits.clone())
    }
}

impl Handler for Instance {
    #[inline]
    fn batched(&self) -> bool {
        Instance::batched(self)
    }

    #[inline]
    fn handle(&mut self, entry: &mut Entry) -> Verdict {
        Instance::handle(self, entry)
    }

    #[inline]
    fn handle_batch(&mut self, entries: &mut [Entry]) -> Vec<Verdict> {
        Instance::handle_batch(self, entries)
    }

    fn tag(&self) -> &Arc<PluginTag> {
        Instance::tag(self)
    }

    #[inline]
    fn take_effects(&mut self) -> crate::effects::Effects {
        std::mem::take(&mut self.kept)
    }

    fn assign(&mut self, stream: &str, info: &Arc<str>) {
        Instance::assign(self, stream, info)
    }

    fn take_finished(&mut self) -> Option<String> {
        self.finished.take()
    }
}
