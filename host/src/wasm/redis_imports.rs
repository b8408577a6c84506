//! The `effects` and `state` imports: what a plugin asks of Redis. Effects
//! are only recorded here (per entry, [`crate::wasm::recorder`]); the
//! consumer commits those of entries handled ok with their acks. State
//! calls go to Redis at once, bounded by the call's deadline. Every key and
//! stream is checked against the plugin's grants first; a denial is an error
//! the plugin sees, logged (within the plugin's log budget) and counted.

use crate::effects::{self, Effect, MAX_EMIT_FIELDS};
use crate::wasm::bindings::{Field, redis_streams};
use crate::wasm::host_state::HostState;
use crate::wasm::log_budget::one_line;
use crate::wasm::recorder::Refused;
use std::time::Duration;

type Answer<T = ()> = wasmtime::Result<Result<T, String>>;

/// Longest TTL an effect may set: 100 years, far inside what Redis takes
/// (a value it refused would fail the commit after other writes).
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// Largest `MAXLEN ~` an emit may give (Redis reads a signed 64-bit number).
const MAX_MAX_LEN: u64 = i64::MAX as u64;

impl HostState {
    /// Checks `key` (or, for `stream: true`, a stream) against the grants.
    fn granted(&self, call: &'static str, name: &str, stream: bool) -> Result<(), String> {
        let checked =
            if stream { effects::check_stream(&self.grants, name) } else { effects::check_key(&self.grants, name) };
        checked.inspect_err(|error| {
            crate::metrics::global().denied(&self.tag, call);
            let line = one_line(error);
            if self.log.admit(line.len(), error.len()) {
                tracing::warn!(plugin = %self.tag.name, version = %self.tag.version, call, "denied: {line}");
            }
        })
    }

    /// [`Self::granted`] for an effect, which on a cluster must also write
    /// in the stream's slot (it is committed with the ack in one script).
    fn writable(&self, call: &'static str, name: &str, stream: bool) -> Result<(), String> {
        self.granted(call, name, stream)?;
        match self.effects_slot {
            Some(slot) if crate::keys::slot(name) != slot => {
                let error = format!(
                    "{call} of {name:?} refused: on a Redis Cluster an effect must write in the slot of the stream \
                     it acks (slot {slot}), and {name:?} is in slot {}: put the stream's hash tag in the name \
                     (e.g. \"totals:{{TAG}}\" where the stream is \"orders:{{TAG}}\")",
                    crate::keys::slot(name)
                );
                crate::metrics::global().denied(&self.tag, call);
                if self.log.admit(error.len(), error.len()) {
                    tracing::warn!(plugin = %self.tag.name, version = %self.tag.version, call, "denied: {error}");
                }
                Err(error)
            }
            _ => Ok(()),
        }
    }

    fn record(&mut self, entry_id: &str, effect: Effect) -> Answer {
        match self.recorder.record(entry_id, effect) {
            Ok(()) => Ok(Ok(())),
            Err(Refused::Error(error)) => Ok(Err(error)),
            Err(Refused::Trap(error)) => Err(wasmtime::Error::msg(error)),
        }
    }

    fn store(&self) -> Result<&dyn effects::StateStore, String> {
        self.state.as_deref().ok_or_else(|| "no Redis to ask here (state calls need `host run`)".to_string())
    }
}

impl redis_streams::plugin::effects::Host for HostState {
    fn emit(&mut self, entry_id: String, stream: String, fields: Vec<Field>, max_len: Option<u64>) -> Answer {
        if let Err(denied) = self.writable("emit", &stream, true) {
            return Ok(Err(denied));
        }
        if fields.is_empty() || fields.len() > MAX_EMIT_FIELDS {
            return Ok(Err(format!(
                "an emitted entry has 1 to {MAX_EMIT_FIELDS} fields; this one has {}",
                fields.len()
            )));
        }
        if max_len.is_some_and(|n| n > MAX_MAX_LEN) {
            return Ok(Err(format!("max-len must be at most {MAX_MAX_LEN}")));
        }
        let fields = fields.into_iter().map(|f| (f.name.into_bytes(), f.value)).collect();
        self.record(&entry_id, Effect::Emit { stream, fields, max_len })
    }

    fn incr(&mut self, entry_id: String, key: String, field: Option<String>, by: i64) -> Answer {
        if let Err(denied) = self.writable("incr", &key, false) {
            return Ok(Err(denied));
        }
        self.record(&entry_id, Effect::Incr { key, field, by })
    }

    fn set(
        &mut self,
        entry_id: String,
        key: String,
        field: Option<String>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Answer {
        if let Err(denied) = self.writable("set", &key, false) {
            return Ok(Err(denied));
        }
        if ttl_ms.is_some_and(|t| t == 0 || t > MAX_TTL_MS) {
            return Ok(Err(format!("ttl-ms must be 1..={MAX_TTL_MS} (none: no expiry)")));
        }
        self.record(&entry_id, Effect::Set { key, field, value, ttl_ms })
    }

    fn del(&mut self, entry_id: String, key: String, field: Option<String>) -> Answer {
        if let Err(denied) = self.writable("del", &key, false) {
            return Ok(Err(denied));
        }
        self.record(&entry_id, Effect::Del { key, field })
    }
}

impl redis_streams::plugin::state::Host for HostState {
    fn get(&mut self, key: String) -> Answer<Option<Vec<u8>>> {
        if let Err(denied) = self.granted("get", &key, false) {
            return Ok(Err(denied));
        }
        Ok(self.store().and_then(|store| store.get(&key, self.clock.deadline)))
    }

    fn hget(&mut self, key: String, field: String) -> Answer<Option<Vec<u8>>> {
        if let Err(denied) = self.granted("hget", &key, false) {
            return Ok(Err(denied));
        }
        Ok(self.store().and_then(|store| store.hget(&key, &field, self.clock.deadline)))
    }

    fn seen(&mut self, key: String, ttl_ms: u64) -> Answer<bool> {
        if let Err(denied) = self.granted("seen", &key, false) {
            return Ok(Err(denied));
        }
        if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
            return Ok(Err(format!("ttl-ms must be 1..={MAX_TTL_MS}")));
        }
        Ok(self.store().and_then(|store| store.seen(&key, Duration::from_millis(ttl_ms), self.clock.deadline)))
    }
}
