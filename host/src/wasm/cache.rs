//! On-disk cache of compiled plugins, so a restart with a large plugin
//! (a 15 MB Python component takes seconds to compile) serves in well under
//! a second. Keyed by the plugin's SHA-256 and a hash of the engine's
//! compatibility (wasmtime version and settings); an entry that no longer
//! deserializes is recompiled and replaced.
//!
//! An entry is native code the host maps and runs: whoever can write one runs
//! code in the host. So the folder must be this user's and writable by no one
//! else (it is created 0700), and each entry carries an HMAC-SHA256 of its
//! name and bytes under a key kept in the folder (0600). A folder, key or
//! entry that fails this is not used: the plugin is compiled, with a warning.
//! The ownership checks keep out other local users (a folder someone else
//! made, e.g. under /tmp); the MAC keeps out entries this cache did not write
//! (copied or restored from elsewhere, swapped between plugins, corrupted),
//! which ownership cannot tell apart. Neither stops this same user, who can
//! run code as the host anyway.

use anyhow::{Context as _, anyhow, bail};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// Bytes of the key, and of the MAC that ends each entry.
const KEY_BYTES: usize = 32;
/// The key's file in the cache folder.
const KEY_FILE: &str = "key";
/// Mode bits that let others write a folder or file.
const OTHERS_WRITE: u32 = 0o022;
/// Mode bits that let others read or write the key (reading it forges MACs).
const OTHERS_ANY: u32 = 0o077;

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

/// The name, under the cache folder, of the compiled form of `bytes` for `engine`.
fn entry_name(engine: &wasmtime::Engine, bytes: &[u8]) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{:016x}/{hex}.cwasm", compat.finish())
}

/// Compiles `bytes`, or loads the compiled form from `dir`. Returns the
/// component and whether it came from the cache. Cache trouble never fails
/// a load: it is logged and the plugin is compiled. `compiling` is called
/// just before the plugin is compiled (not when it comes from the cache),
/// with whether the result will be cached.
pub fn compile(
    engine: &wasmtime::Engine,
    bytes: &[u8],
    dir: Option<&Path>,
    compiling: impl FnOnce(bool),
) -> wasmtime::Result<(Component, bool)> {
    let Some(dir) = dir else {
        compiling(false);
        return Ok((Component::new(engine, bytes)?, false));
    };
    let cache = match Cache::open(dir) {
        Ok(cache) => cache,
        Err(error) => {
            tracing::warn!(cache = %dir.display(), "compile cache not used: {error:#}");
            compiling(false);
            return Ok((Component::new(engine, bytes)?, false));
        }
    };
    let name = entry_name(engine, bytes);
    match cache.load(&name) {
        // SAFETY: the bytes carry this cache's MAC, so `Cache::store` wrote
        // them from a component compiled by an engine of this compatibility
        // hash (part of the name); wasmtime checks its own header too.
        Ok(Some(compiled)) => match unsafe { Component::deserialize(engine, &compiled) } {
            Ok(component) => return Ok((component, true)),
            Err(error) => {
                tracing::warn!(cache = %dir.display(), entry = %name, "cached plugin unusable, recompiling: {error:#}")
            }
        },
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(cache = %dir.display(), entry = %name, "cached plugin not used, recompiling: {error:#}")
        }
    }
    compiling(true);
    let component = Component::new(engine, bytes)?;
    let stored = component.serialize().map_err(anyhow::Error::from).and_then(|compiled| cache.store(&name, &compiled));
    if let Err(error) = stored {
        tracing::warn!(cache = %dir.display(), entry = %name, "cannot cache the compiled plugin: {error:#}");
    }
    Ok((component, false))
}

/// A cache folder checked private, with its key.
struct Cache {
    dir: PathBuf,
    key: [u8; KEY_BYTES],
}

impl Cache {
    /// Creates the folder if missing (0700), checks that it is private, and
    /// reads its key (made on first use).
    fn open(dir: &Path) -> anyhow::Result<Self> {
        private_dir(dir)?;
        Ok(Cache { dir: dir.to_owned(), key: key(&dir.join(KEY_FILE))? })
    }

    fn mac(&self, name: &str, compiled: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(compiled);
        mac
    }

    /// The compiled bytes of entry `name`, if there is one that is private
    /// and carries this cache's MAC.
    fn load(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.dir.join(name);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(|| format!("cannot open {}", path.display())),
        };
        let folder = path.parent().expect("entries live in a folder");
        private(&std::fs::metadata(folder)?, folder, OTHERS_WRITE)?;
        private(&file.metadata()?, &path, OTHERS_WRITE)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
        let body = bytes.len().checked_sub(KEY_BYTES).ok_or_else(|| anyhow!("{} is truncated", path.display()))?;
        self.mac(name, &bytes[..body]).verify_slice(&bytes[body..]).map_err(|_| {
            anyhow!("{} fails its integrity check: this cache did not write it, or it was altered", path.display())
        })?;
        bytes.truncate(body);
        Ok(Some(bytes))
    }

    /// Writes entry `name` (0600, its MAC at the end) atomically: a temporary
    /// file, then a rename, so readers never see half a file.
    fn store(&self, name: &str, compiled: &[u8]) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        private_dir(path.parent().expect("entries live in a folder"))?;
        let tag = self.mac(name, compiled).finalize().into_bytes();
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(compiled)?;
        file.write_all(&tag)?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

/// Creates `dir` (and missing parents) 0700 if missing, and checks it is private.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    private(&std::fs::metadata(dir)?, dir, OTHERS_WRITE)
}

/// Checks that `path` (with metadata `meta`) is this user's and has none of
/// the `forbidden` mode bits.
fn private(meta: &Metadata, path: &Path, forbidden: u32) -> anyhow::Result<()> {
    // SAFETY: geteuid takes nothing and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!("{} is owned by uid {}, not by this user (uid {me})", path.display(), meta.uid());
    }
    if meta.mode() & forbidden != 0 {
        let may = if forbidden & 0o044 != 0 { "read or write" } else { "write" };
        bail!(
            "{} has mode {:o}: group or others may {may} it (`chmod go-rwx` it)",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

/// The cache's key at `path`, made (random, 0600) if missing.
fn key(path: &Path) -> anyhow::Result<[u8; KEY_BYTES]> {
    let mut key = [0; KEY_BYTES];
    match File::open(path) {
        Ok(mut file) => {
            private(&file.metadata()?, path, OTHERS_ANY)?;
            file.read_exact(&mut key).with_context(|| format!("cannot read the cache key {}", path.display()))?;
            return Ok(key);
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot open the cache key {}", path.display())),
    }
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .context("cannot read /dev/urandom")?;
    // Written whole to a temporary file, then linked into place: a process
    // starting at the same time sees no key or a whole one, and the first
    // link wins (the loser reads the winner's key).
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.write_all(&key)?;
    drop(file);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => self::key(path),
        Err(error) => Err(error).with_context(|| format!("cannot create the cache key {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("host-cache-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn entries_round_trip_and_carry_their_name() {
        let dir = folder("round-trip");
        let cache = Cache::open(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(dir.join(KEY_FILE)).unwrap().mode() & 0o777, 0o600);
        cache.store("c/a.cwasm", b"code of a").unwrap();
        assert_eq!(cache.load("c/a.cwasm").unwrap().as_deref(), Some(&b"code of a"[..]));
        assert_eq!(cache.load("c/b.cwasm").unwrap(), None);
        // An entry moved to another name (another plugin) fails its check.
        std::fs::copy(dir.join("c/a.cwasm"), dir.join("c/b.cwasm")).unwrap();
        assert!(cache.load("c/b.cwasm").unwrap_err().to_string().contains("integrity check"));
        // Another process opening the folder uses the same key.
        assert!(Cache::open(&dir).unwrap().load("c/a.cwasm").unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_folders_and_keys_are_refused() {
        let dir = folder("open");
        Cache::open(&dir).unwrap();
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Cache::open(&dir).err().unwrap().to_string().contains("may read or write it"));
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(Cache::open(&dir).err().unwrap().to_string().contains("may write it"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
