//! Loading a plugin: read the file, check it is a component of one of our
//! worlds (`consumer` or `batch-consumer`), compile it once, and pre-link it
//! so instances are cheap to create.

use crate::wasm::bindings::{BATCH_WORLD, BatchConsumerPre, ConsumerPre, HANDLE_BATCH, WORLD};
use crate::wasm::engine::Engine;
use crate::wasm::host_state::{HostState, PluginTag};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a plugin file cannot be used. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist.
    #[error("plugin file {} not found (check --plugin; `make plugins` builds the bundled ones into plugins/dist/)", .0.display())]
    NotFound(PathBuf),
    /// The file exists but cannot be read.
    #[error("cannot read plugin file {}: {}", .0.display(), .1)]
    Unreadable(PathBuf, std::io::Error),
    /// Not WebAssembly at all.
    #[error("{} is not a WebAssembly file (no \\0asm header); build a component with a wasm32-wasip2 toolchain", .0.display())]
    NotWasm(PathBuf),
    /// A core module, not a component.
    #[error("{} is a core WebAssembly module, not a component: build it for wasm32-wasip2, or wrap it with `wasm-tools component new`", .0.display())]
    CoreModule(PathBuf),
    /// A component wasmtime cannot compile.
    #[error("{} is not a valid component: {}", .0.display(), .1)]
    Invalid(PathBuf, String),
    /// A valid component that does not fit the plugin world.
    #[error("{} does not implement world {} (nor {}): {}", .0.display(), WORLD, BATCH_WORLD, .1)]
    WrongWorld(PathBuf, String),
    /// A component exporting `handle-batch` of another type than world
    /// `batch-consumer`'s.
    #[error("{} does not implement world {}: its `{}` is not `func(batch) -> list<result<_, error>>` ({})", .0.display(), BATCH_WORLD, HANDLE_BATCH, .1)]
    WrongBatchType(PathBuf, String),
}

/// A plugin at least this large says so before it is compiled (it takes seconds).
const LARGE_PLUGIN_BYTES: usize = 2 << 20;

/// A compiled, pre-linked plugin, ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    /// Name and version for log lines.
    pub tag: Arc<PluginTag>,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The compiled code.
    pub(crate) code: Code,
    /// The engine the plugin was compiled for.
    pub(crate) engine: Engine,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    /// Size of the file, bytes.
    pub size: usize,
    /// How long compiling (or loading from the cache) took.
    pub compile_time: std::time::Duration,
}

/// A plugin's compiled component.
#[derive(Clone)]
pub(crate) struct Code {
    /// Compiled and linked; each consumer instantiates its own copy.
    pub(crate) pre: Pre,
    /// The compiled component (for its imports and exports).
    component: wasmtime::component::Component,
}

/// A compiled and linked component, by the world it implements.
#[derive(Clone)]
pub(crate) enum Pre {
    /// World `consumer`: one `handle` call per entry.
    Entry(ConsumerPre<HostState>),
    /// World `batch-consumer`: one `handle-batch` call per batch.
    Batch(BatchConsumerPre<HostState>),
}

impl Plugin {
    /// Reads, validates, compiles and links the plugin at `path`.
    pub fn load(engine: &Engine, path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound(path.to_owned()),
            _ => LoadError::Unreadable(path.to_owned(), e),
        })?;
        check_header(path, &bytes)?;
        let started = std::time::Instant::now();
        let compiling = |cached: bool| {
            if bytes.len() >= LARGE_PLUGIN_BYTES {
                let later = if cached { "later loads come from the compile cache" } else { "no compile cache" };
                tracing::info!(plugin = %path.display(), bytes = bytes.len(),
                    "compiling a {:.1} MB plugin: that takes a few seconds per 10 MB ({later})",
                    bytes.len() as f64 / 1e6);
            }
        };
        let (component, from_cache) =
            crate::wasm::cache::compile(&engine.engine, &bytes, engine.cache_dir.as_deref(), compiling)
                .map_err(|e| LoadError::Invalid(path.to_owned(), format!("{e:#}")))?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld(path.to_owned(), format!("{e:#}"));
        let instance_pre = engine.linker.instantiate_pre(&component).map_err(wrong_world)?;
        // A component that exports `handle-batch` is a batch plugin (and its
        // `handle-batch` must have the world's type); any other must fit `consumer`.
        let pre = match BatchConsumerPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::Batch(pre),
            Err(e) if export_names(&component, &engine.engine).iter().any(|name| name == HANDLE_BATCH) => {
                return Err(LoadError::WrongBatchType(path.to_owned(), format!("{e:#}")));
            }
            Err(_) => Pre::Entry(ConsumerPre::new(instance_pre).map_err(|e| {
                let exports: Vec<String> =
                    export_names(&component, &engine.engine).iter().map(|name| format!("`{name}`")).collect();
                let exports = if exports.is_empty() { "nothing".into() } else { exports.join(", ") };
                LoadError::WrongWorld(
                    path.to_owned(),
                    format!(
                        "{e:#} (it must export `handle: func(entry) -> result<_, error>`, or \
                         `handle-batch: func(batch) -> list<result<_, error>>`; it exports {exports})"
                    ),
                )
            })?),
        };
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let tag = Arc::new(PluginTag { name, version: version_of(&bytes) });
        tracing::info!(plugin = %tag.name, version = %tag.version, bytes = bytes.len(),
            "plugin {} in {} ms", if from_cache { "loaded from the compile cache" } else { "compiled" },
            started.elapsed().as_millis());
        let (size, compile_time) = (bytes.len(), started.elapsed());
        Ok(Plugin {
            tag,
            path: path.to_owned(),
            code: Code { pre, component },
            engine: engine.clone(),
            from_cache,
            size,
            compile_time,
        })
    }

    /// The world the plugin implements: [`WORLD`] or [`BATCH_WORLD`].
    pub fn world(&self) -> &'static str {
        match &self.code.pre {
            Pre::Batch(_) => BATCH_WORLD,
            Pre::Entry(_) => WORLD,
        }
    }

    /// The names of what the component imports and exports, in its order.
    pub fn interface(&self) -> (Vec<String>, Vec<String>) {
        let ty = self.code.component.component_type();
        let imports = ty.imports(&self.engine.engine).map(|(name, _)| name.to_string()).collect();
        let exports = ty.exports(&self.engine.engine).map(|(name, _)| name.to_string()).collect();
        (imports, exports)
    }
}

/// The names of what `component` exports, in its order.
fn export_names(component: &wasmtime::component::Component, engine: &wasmtime::Engine) -> Vec<String> {
    component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect()
}

/// A plugin's version: the first 12 hex digits of the SHA-256 of its bytes.
pub fn version_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Tells a component from a core module or a non-Wasm file by its 8-byte
/// header: `\0asm`, then version 1 layer 0 (module) or layer 1 (component).
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm(path.to_owned()));
    }
    match bytes[6..8] {
        [0, 0] => Err(LoadError::CoreModule(path.to_owned())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_classifies_files() {
        let p = Path::new("x.wasm");
        assert!(matches!(check_header(p, b"hello world"), Err(LoadError::NotWasm(_))));
        assert!(matches!(check_header(p, b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule(_))));
        assert!(check_header(p, b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn version_is_short_and_stable() {
        assert_eq!(version_of(b"abc"), "ba7816bf8f01");
    }
}
