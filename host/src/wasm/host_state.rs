//! Per-instance host state — the sandbox (WASI with only what the sidecar
//! grants) and everything a plugin says: the `log` import and its
//! stdout/stderr, all routed into the host log tagged with the plugin, one
//! safe line per record, within a budget per call ([`crate::wasm::log_budget`]).
//! The `effects` and `state` imports are in `redis_imports.rs`, outbound
//! HTTP (`wasi:http`) in `outbound/`.

use crate::effects::StateStore;
use crate::wasm::bindings::{Level, redis_streams};
use crate::wasm::clock::CallClock;
pub use crate::wasm::limits::{Grants, Limits};
use crate::wasm::log_budget::{LogBudget, MAX_LOG_BYTES_PER_ENTRY, MAX_LOG_RECORDS_PER_ENTRY, one_line};
use crate::wasm::outbound::OutboundHttp;
use crate::wasm::recorder::Recorder;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::handler::Delivery;
pub use crate::handler::PluginTag;

/// The data of one plugin instance's `Store`.
pub struct HostState {
    /// WASI context: no preopens, no sockets, no environment (unless granted).
    wasi: WasiCtx,
    /// WASI resources.
    table: ResourceTable,
    /// Who is talking, for the log.
    pub(crate) tag: Arc<PluginTag>,
    /// Memory, table and instance caps.
    pub(crate) limits: crate::wasm::limits::StoreLimiter,
    /// What the sidecar granted (for the `config` import).
    pub(crate) grants: Arc<Grants>,
    /// On a cluster, the slot effects must write in (see `Limits::effects_slot`).
    pub(crate) effects_slot: Option<u16>,
    /// When the call in progress must be over, and how far `progress` may
    /// move that ([`crate::wasm::progress`]): host calls that wait give up
    /// then ([`crate::wasm::blocking_calls`]).
    pub(crate) clock: CallClock,
    /// What the plugin may still log in this call (shared with its stdout/stderr).
    pub(crate) log: Arc<LogBudget>,
    /// Effects recorded in the call in progress (`effects` import).
    pub(crate) recorder: Recorder,
    /// Where `state` calls read (none where there is no Redis, e.g. `host check`).
    pub(crate) state: Option<Arc<dyn StateStore>>,
    /// Outbound HTTP: the granted origins and the request limits.
    pub(crate) http: OutboundHttp,
    /// wasmtime-wasi-http's own context.
    http_ctx: WasiHttpCtx,
    /// Stream ownership mode: the info of the assignment being handled
    /// (`assignment` import); none in group mode.
    pub(crate) assignment: Option<Arc<str>>,
    /// Whether the plugin called `assignment.finish` in the call in progress.
    pub(crate) finish_asked: bool,
}

impl HostState {
    /// A sandboxed state: stdout/stderr go to the host log; no network;
    /// files and environment only as `grants` says; host calls that wait
    /// give up at `clock`'s deadline (until [`HostState::begin_call`] starts another).
    pub fn new(tag: Arc<PluginTag>, limits: &Limits, delivery: &Delivery, clock: CallClock) -> anyhow::Result<Self> {
        let grants = limits.grants.clone();
        let log = Arc::new(LogBudget::default());
        log.refill(1);
        let output = |stream| GuestOutput { tag: tag.clone(), stream, log: log.clone() };
        let mut wasi = WasiCtx::builder();
        wasi.stdout(output("stdout"))
            .stderr(output("stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for dir in &grants.dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, &*guest, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("cannot grant directory {}: {e}", dir.display()))?;
        }
        for (name, value) in &grants.env {
            wasi.env(name, value);
        }
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: OutboundHttp::new(tag.clone(), limits, log.clone(), clock.deadline, delivery.http.clone()),
            http_ctx: WasiHttpCtx::new(),
            tag,
            limits: limits.limiter(),
            grants,
            effects_slot: limits.effects_slot,
            clock,
            log,
            recorder: Recorder::default(),
            state: delivery.state.clone(),
            assignment: None,
            finish_asked: false,
        })
    }

    /// Starts a call for the entries `ids`, timed by `clock`.
    #[inline]
    pub(crate) fn begin_call<'a>(&mut self, clock: CallClock, ids: impl ExactSizeIterator<Item = &'a str>) {
        self.clock = clock;
        self.http.call_deadline = clock.deadline;
        self.log.refill(ids.len());
        self.recorder.begin(ids);
        self.finish_asked = false;
    }

    /// Ends a call (or the start-up): says how much of the plugin's log was
    /// dropped over its budget, if any.
    #[inline]
    pub(crate) fn end_call(&self) {
        if let Some((records, bytes)) = self.log.take_dropped() {
            tracing::warn!(plugin = %self.tag.name, version = %self.tag.version,
                "plugin log capped: {records} records ({bytes} bytes) dropped from one call, over its budget of \
                 {MAX_LOG_RECORDS_PER_ENTRY} records and {MAX_LOG_BYTES_PER_ENTRY} bytes per entry");
        }
    }

    /// The WASI resources and the instant a waiting host call must give up.
    pub(crate) fn blocking(&mut self) -> (&mut ResourceTable, Instant) {
        (&mut self.table, self.clock.deadline)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { hooks: &mut self.http, table: &mut self.table, ctx: &mut self.http_ctx }
    }
}

impl redis_streams::plugin::types::Host for HostState {}

impl redis_streams::plugin::assignment::Host for HostState {
    fn info(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.assignment.as_deref().map(str::to_string))
    }

    fn finish(&mut self) -> wasmtime::Result<()> {
        self.finish_asked = self.assignment.is_some();
        Ok(())
    }
}

impl redis_streams::plugin::config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.grants.config.get(&key).cloned())
    }
}

impl redis_streams::plugin::log::Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let written = message.len();
        let message = one_line(&message);
        if !self.log.admit(message.len(), written) {
            return Ok(());
        }
        let (name, version) = (&self.tag.name, &self.tag.version);
        match level {
            Level::Trace => {
                tracing::trace!(target: "plugin", plugin = %name, version = %version, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "plugin", plugin = %name, version = %version, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "plugin", plugin = %name, version = %version, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "plugin", plugin = %name, version = %version, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "plugin", plugin = %name, version = %version, "{message}")
            }
        }
        Ok(())
    }
}

/// Longest partial line kept before it is logged anyway, so a plugin that
/// never writes a newline cannot grow host memory.
const MAX_LINE: usize = 16 * 1024;

/// A guest's stdout or stderr: each line becomes one host log record.
struct GuestOutput {
    tag: Arc<PluginTag>,
    stream: &'static str,
    log: Arc<LogBudget>,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.line_writer())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.line_writer())
    }
}

impl GuestOutput {
    fn line_writer(&self) -> LineWriter {
        LineWriter { tag: self.tag.clone(), stream: self.stream, log: self.log.clone(), partial: Vec::new() }
    }
}

/// Splits written bytes into lines and logs each.
struct LineWriter {
    tag: Arc<PluginTag>,
    stream: &'static str,
    log: Arc<LogBudget>,
    partial: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..newline]);
            self.emit();
            bytes = &bytes[newline + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() >= MAX_LINE {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.partial);
        let text = text.trim_end_matches('\r');
        let line = one_line(text);
        if self.log.admit(line.len(), text.len()) {
            tracing::info!(target: "plugin", plugin = %self.tag.name, version = %self.tag.version, stream = self.stream, "{line}");
        }
        self.partial.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.emit();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
