//! The fixture's state for `host test`: what the plugin's `state` calls
//! read, from the fixture instead of Redis; `seen` records in it too.

use super::fixture::State;
use crate::effects::StateStore;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fixture's strings and hashes, and the keys `seen` has recorded.
#[derive(Debug)]
pub struct FixtureState {
    state: State,
    seen: Mutex<BTreeSet<String>>,
}

impl FixtureState {
    pub fn new(state: State) -> Self {
        FixtureState { state, seen: Mutex::default() }
    }
}

impl StateStore for FixtureState {
    fn get(&self, key: &str, _until: Instant) -> Result<Option<Vec<u8>>, String> {
        Ok(self.state.strings.get(key).cloned())
    }

    fn hget(&self, key: &str, field: &str, _until: Instant) -> Result<Option<Vec<u8>>, String> {
        Ok(self.state.hashes.get(key).and_then(|h| h.get(field)).cloned())
    }

    fn seen(&self, key: &str, _ttl: Duration, _until: Instant) -> Result<bool, String> {
        if self.state.strings.contains_key(key) {
            return Ok(true);
        }
        Ok(!self.seen.lock().expect("seen lock").insert(key.to_string()))
    }
}
