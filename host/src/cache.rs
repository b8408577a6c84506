//! On-disk cache of compiled plugins, so a restart with a large plugin
//! (a 15 MB Python component takes seconds to compile) serves in well under
//! a second. Keyed by the plugin's SHA-256 and a hash of the engine's
//! compatibility (wasmtime version and settings); an entry that no longer
//! deserializes is recompiled and replaced.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// The cache directory: `$HOST_CACHE_DIR`, else `$XDG_CACHE_HOME/redis-wasm-host/compiled`,
/// else `~/.cache/redis-wasm-host/compiled`; `None` when none can be found (no caching).
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HOST_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("redis-wasm-host").join("compiled"))
}

/// Where the compiled form of `bytes` for `engine` lives under `dir`.
fn entry_path(dir: &Path, engine: &wasmtime::Engine, bytes: &[u8]) -> PathBuf {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{:016x}", compat.finish())).join(format!("{hex}.cwasm"))
}

/// Compiles `bytes`, or loads the compiled form from `dir`. Returns the
/// component and whether it came from the cache. Cache trouble never fails
/// a load: it is logged and the plugin is compiled.
pub fn compile(engine: &wasmtime::Engine, bytes: &[u8], dir: Option<&Path>) -> wasmtime::Result<(Component, bool)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes)?, false));
    };
    let path = entry_path(dir, engine, bytes);
    if path.exists() {
        // SAFETY: the file was written by `store` below from a component this
        // engine compiled; the key includes the engine's compatibility hash and
        // wasmtime checks its own header before using the code.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, true)),
            Err(error) => tracing::warn!(cache = %path.display(), "cached plugin unusable, recompiling: {error:#}"),
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(error) = store(&component, &path) {
        tracing::warn!(cache = %path.display(), "cannot cache the compiled plugin: {error:#}");
    }
    Ok((component, false))
}

/// Writes atomically (temporary file, then rename) so readers never see half a file.
fn store(component: &Component, path: &Path) -> anyhow::Result<()> {
    let serialized = component.serialize()?;
    let dir = path.parent().expect("cache entries live in a directory");
    std::fs::create_dir_all(dir)?;
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    std::fs::write(&tmp, serialized)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
