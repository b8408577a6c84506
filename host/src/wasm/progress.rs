//! The `progress` import, which moves a call's deadline
//! ([`crate::wasm::clock::CallClock::extend`]), and the epoch callback of an instance's store
//! that reads the deadline kept in its [`HostState`], so an extension needs
//! no store access; host calls that wait give up at the same deadline
//! ([`crate::wasm::blocking_calls`]).

use crate::wasm::bindings::redis_streams;
use crate::wasm::engine::Engine;
use crate::wasm::host_state::HostState;
use std::time::Instant;
use wasmtime::{Store, UpdateDeadline};

/// Makes the store's epoch deadline follow the clock in its [`HostState`]:
/// when the epoch deadline comes, the call goes on if its deadline moved.
pub(crate) fn follow_the_clock(store: &mut Store<HostState>) {
    store.epoch_deadline_callback(|store| {
        let left = store.data().clock.deadline.saturating_duration_since(Instant::now());
        Ok(if left.is_zero() { UpdateDeadline::Interrupt } else { UpdateDeadline::Continue(Engine::ticks(left)) })
    });
}

impl redis_streams::plugin::progress::Host for HostState {
    fn extend(&mut self) -> wasmtime::Result<u64> {
        let left = self.clock.extend(Instant::now());
        self.http.call_deadline = self.clock.deadline;
        Ok(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
    }
}
