//! The wasmtime engine shared by every plugin: configuration, the linker with
//! the host's imports, and the epoch ticker that enforces call deadlines.
//!
//! Fuel metering is optional per plugin, but it changes the compiled code (every
//! block counts its instructions, ~10-30 % slower), so plugins with a fuel
//! limit run on a metered twin of the engine, made on first use.

use crate::wasm::bindings::Consumer;
use crate::wasm::host_state::HostState;
use anyhow::Result;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::error::Context as _;

/// One epoch tick. Deadlines are whole ticks, so this is their resolution;
/// 10 ms keeps the ticker's cost negligible while cutting runaway calls promptly.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A configured engine plus the linker every plugin is instantiated against.
#[derive(Clone)]
pub struct Engine {
    /// The wasmtime engine (compiled code is tied to its settings).
    pub(crate) engine: wasmtime::Engine,
    /// WASI p2 (its waits bounded by the call deadline), `wasi:http` (only
    /// to granted origins) and the plugin contract's imports.
    pub(crate) linker: Linker<HostState>,
    /// Compiled-code cache directory (`None`: compile every time).
    pub(crate) cache_dir: Option<std::path::PathBuf>,
    /// Whether this engine meters fuel.
    pub(crate) metered: bool,
    /// The other flavour (metered or not), once asked for; shared by clones.
    twin: Arc<Mutex<Option<Engine>>>,
}

impl Engine {
    /// Builds the engine (caching compiled plugins in [`crate::wasm::cache::default_dir`])
    /// and starts its epoch ticker (which stops by itself once the engine is dropped).
    pub fn new() -> Result<Self> {
        Self::with_cache(crate::wasm::cache::default_dir())
    }

    /// Like [`Engine::new`], caching compiled plugins in `cache_dir` (`None`: no cache).
    pub fn with_cache(cache_dir: Option<std::path::PathBuf>) -> Result<Self> {
        Self::build(cache_dir, false)
    }

    /// This engine if `metered` matches, else its twin of the other flavour
    /// (built once and shared). A plugin with a fuel limit needs a metered engine.
    pub fn flavour(&self, metered: bool) -> Result<Engine> {
        if metered == self.metered {
            return Ok(self.clone());
        }
        let mut twin = self.twin.lock().expect("engine twin lock");
        if let Some(engine) = &*twin {
            return Ok(engine.clone());
        }
        let engine = Self::build(self.cache_dir.clone(), metered)?;
        *twin = Some(engine.clone());
        Ok(engine)
    }

    fn build(cache_dir: Option<std::path::PathBuf>, metered: bool) -> Result<Self> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(metered);
        // Plugins are synchronous; concurrency support roughly doubles call cost.
        config.concurrency_support(false);
        let engine = wasmtime::Engine::new(&config).context("cannot configure wasmtime")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).context("cannot add WASI to the plugin linker")?;
        // Outbound HTTP: every request is checked against the plugin's grants.
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
            .context("cannot add wasi:http to the plugin linker")?;
        Consumer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .context("cannot add host imports to the plugin linker")?;
        // Epoch interruption cannot stop a host call: the ones that wait are
        // replaced by versions bounded by the call's deadline.
        crate::wasm::blocking_calls::shadow(&mut linker)?;

        start_epoch_ticker(&engine);
        Ok(Engine { engine, linker, cache_dir, metered, twin: Arc::default() })
    }

    /// Deadline in epoch ticks, rounded up, at least one.
    #[inline]
    pub(crate) fn ticks(deadline: Duration) -> u64 {
        (deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
    }
}

fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
