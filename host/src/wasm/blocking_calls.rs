//! The WASI functions that can wait — on pollables (`wasi:io/poll`: every
//! sleep, timer and readiness wait) and the blocking methods of
//! `wasi:io/streams` — shadowed by versions that give up at the call's deadline.
//!
//! Epoch interruption stops Wasm code, never a host call: without this, a
//! plugin's `sleep(86400)` held its entry (leases refreshed) and its consumer
//! for a day, and SIGTERM waited for it. Each shadow runs wasmtime-wasi's own
//! async implementation under a timer set to what is left of the call
//! ([`HostState::blocking`]); when the timer wins the call traps with
//! [`BlockedPastDeadline`], the entry is faulted and the instance recycled like
//! after any trap. A call that is not waiting costs nothing more.
//!
//! The names are those wasmtime-wasi 48 defines (`@0.2.12`); a guest built
//! against any other 0.2.x release is linked to the same definitions by the
//! linker's semver matching, so it gets these too (a test renames chaos's
//! import to check). Not covered: `wasi:filesystem` calls on a granted
//! directory, which wait on the disk (a FIFO or device there could hold one).

use crate::wasm::host_state::HostState;
use std::future::Future;
use std::time::Instant;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime_wasi::p2::bindings::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamResult};

/// The `wasi:io` interfaces as wasmtime-wasi 48 names them.
const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// A host call still waiting when its call's deadline passed: a fault.
#[derive(Debug)]
pub struct BlockedPastDeadline(pub &'static str);

impl std::fmt::Display for BlockedPastDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call deadline exceeded in a blocking host call ({})", self.0)
    }
}

impl std::error::Error for BlockedPastDeadline {}

/// Replaces the waiting functions of `wasi:io` in `linker` (which already has
/// wasmtime-wasi's) with their deadline-bounded versions.
pub(crate) fn shadow(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    shadow_poll(linker).context("cannot bound wasi:io/poll by the call deadline")?;
    shadow_streams(linker).context("cannot bound wasi:io/streams by the call deadline")?;
    linker.allow_shadowing(false);
    Ok(())
}

fn shadow_poll(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut i = linker.instance(POLL)?;
    i.func_wrap("poll", |mut store, (list,): (Vec<Resource<DynPollable>>,)| {
        let (table, deadline) = store.data_mut().blocking();
        Ok((bounded("wasi:io/poll.poll", deadline, poll::Host::poll(table, list))??,))
    })?;
    i.func_wrap("[method]pollable.block", |mut store, (pollable,): (Resource<DynPollable>,)| {
        let (table, deadline) = store.data_mut().blocking();
        bounded("wasi:io/poll.pollable.block", deadline, poll::HostPollable::block(table, pollable))?
    })
}

fn shadow_streams(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use streams::{HostInputStream as In, HostOutputStream as Out};
    type Input = Resource<DynInputStream>;
    type Output = Resource<DynOutputStream>;
    let mut i = linker.instance(STREAMS)?;
    i.func_wrap("[method]input-stream.blocking-read", |mut store, (s, len): (Input, u64)| {
        let (table, deadline) = store.data_mut().blocking();
        let result = bounded("wasi:io/streams.input-stream.blocking-read", deadline, In::blocking_read(table, s, len))?;
        Ok((wit(table, result)?,))
    })?;
    i.func_wrap("[method]input-stream.blocking-skip", |mut store, (s, len): (Input, u64)| {
        let (table, deadline) = store.data_mut().blocking();
        let result = bounded("wasi:io/streams.input-stream.blocking-skip", deadline, In::blocking_skip(table, s, len))?;
        Ok((wit(table, result)?,))
    })?;
    i.func_wrap("[method]output-stream.blocking-write-and-flush", |mut store, (s, bytes): (Output, Vec<u8>)| {
        let (table, deadline) = store.data_mut().blocking();
        let write = Out::blocking_write_and_flush(table, s, bytes);
        let result = bounded("wasi:io/streams.output-stream.blocking-write-and-flush", deadline, write)?;
        Ok((wit(table, result)?,))
    })?;
    i.func_wrap("[method]output-stream.blocking-write-zeroes-and-flush", |mut store, (s, len): (Output, u64)| {
        let (table, deadline) = store.data_mut().blocking();
        let write = Out::blocking_write_zeroes_and_flush(table, s, len);
        let result = bounded("wasi:io/streams.output-stream.blocking-write-zeroes-and-flush", deadline, write)?;
        Ok((wit(table, result)?,))
    })?;
    i.func_wrap("[method]output-stream.blocking-flush", |mut store, (s,): (Output,)| {
        let (table, deadline) = store.data_mut().blocking();
        let result = bounded("wasi:io/streams.output-stream.blocking-flush", deadline, Out::blocking_flush(table, s))?;
        Ok((wit(table, result)?,))
    })?;
    i.func_wrap("[method]output-stream.blocking-splice", |mut store, (d, s, len): (Output, Input, u64)| {
        let (table, deadline) = store.data_mut().blocking();
        let splice = Out::blocking_splice(table, d, s, len);
        let result = bounded("wasi:io/streams.output-stream.blocking-splice", deadline, splice)?;
        Ok((wit(table, result)?,))
    })
}

/// Runs `wait` on the tokio runtime (as wasmtime-wasi's own sync functions
/// do) until it ends or `deadline` passes, whichever is first.
fn bounded<F: Future>(call: &'static str, deadline: Instant, wait: F) -> wasmtime::Result<F::Output> {
    // The timer is made inside the runtime: a call outside one gets wasmtime-wasi's.
    wasmtime_wasi::runtime::in_tokio(async { tokio::time::timeout_at(deadline.into(), wait).await })
        .map_err(|_| wasmtime::Error::new(BlockedPastDeadline(call)))
}

/// A stream result as the guest sees it: a stream error becomes the WIT
/// `stream-error` (a trap stays a trap), as the generated bindings do.
fn wit<T>(table: &mut ResourceTable, result: StreamResult<T>) -> wasmtime::Result<Result<T, streams::StreamError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => streams::Host::convert_stream_error(table, error).map(Err),
    }
}
