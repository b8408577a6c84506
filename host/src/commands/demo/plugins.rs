//! Where `host demo` finds its two plugins: the flags that name them, else
//! `--plugins-dir`, else `plugins/dist` (a checkout after `make demo`), else
//! the copies built into this binary (`make install`), written once to a
//! folder of the user's (one per build of them:
//! `~/.local/share/redis-wasm-host/demo-plugins/HASH`) where they are
//! watched like any other plugin file.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};

/// The file names of the demo's plugins, by group.
pub const FILES: [(&str, &str); 2] = [("notifications", "notifier.wasm"), ("analytics", "python-analytics.wasm")];

/// Where a checkout keeps built plugins (relative to the working directory).
const CHECKOUT_DIST: &str = "plugins/dist";

/// The demo's plugins built into this binary (feature `embed-demo-plugins`).
#[cfg(feature = "embed-demo-plugins")]
const EMBEDDED: Option<[&[u8]; 2]> = Some([
    include_bytes!("../../../../plugins/dist/notifier.wasm"),
    include_bytes!("../../../../plugins/dist/python-analytics.wasm"),
]);
#[cfg(not(feature = "embed-demo-plugins"))]
const EMBEDDED: Option<[&[u8]; 2]> = None;

/// The plugin file of `group`: `explicit` if given, else the group's file in
/// the demo's plugin folder (see the module docs).
pub fn resolve(group: &str, explicit: Option<&Path>, plugins_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(file) = explicit {
        return exists(file, group, &format!("--{group}-plugin"));
    }
    let index = FILES.iter().position(|(g, _)| *g == group).context("not a demo group")?;
    let name = FILES[index].1;
    if let Some(dir) = plugins_dir {
        // A binary with the plugins built in fills a folder that lacks them.
        return match EMBEDDED {
            Some(embedded) if !dir.join(name).exists() => unpack(dir, name, embedded[index]),
            _ => exists(&dir.join(name), group, "--plugins-dir"),
        };
    }
    let checkout = Path::new(CHECKOUT_DIST).join(name);
    if checkout.exists() {
        return Ok(checkout);
    }
    match (EMBEDDED, data_dir()) {
        (Some(embedded), Some(dir)) => unpack(&dir.join(build_id(&embedded)), name, embedded[index]),
        (Some(_), None) => bail!(
            "no folder for the demo's plugins: neither XDG_DATA_HOME nor HOME is set; \
             pass --plugins-dir DIR (any folder of yours: the plugins are written there)"
        ),
        (None, _) => bail!(
            "the demo's plugin {name} (group {group}) was not found in {CHECKOUT_DIST} and this \
             host has no plugins built in. In a checkout, build them with `make demo-plugins` \
             (or run `make demo`); elsewhere pass --plugins-dir DIR with notifier.wasm and \
             python-analytics.wasm, or install host with `make install`, which builds them in"
        ),
    }
}

fn exists(file: &Path, group: &str, flag: &str) -> Result<PathBuf> {
    if !file.exists() {
        bail!(
            "plugin {} for group {group} not found (given by {flag}): build the plugins with \
             `make demo-plugins`, or point {flag} elsewhere",
            file.display()
        );
    }
    Ok(file.to_path_buf())
}

/// `$XDG_DATA_HOME/redis-wasm-host/demo-plugins`, else `~/.local/share/…`.
fn data_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))?;
    Some(base.join("redis-wasm-host").join("demo-plugins"))
}

/// The folder name of one build's plugins: the first 12 hex digits of the
/// SHA-256 of their bytes, so a newer `host` never serves an older one's.
fn build_id(embedded: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for bytes in embedded {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    hash.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `dir/name` unless a file is there already (it may be
/// the user's own new version, dropped there to see it reload), and returns it.
fn unpack(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let file = dir.join(name);
    if file.exists() {
        return Ok(file);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, bytes).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &file).with_context(|| format!("cannot write {}", file.display()))?;
    tracing::info!(plugin = %file.display(), "wrote the built-in demo plugin (drop a new build over it to see it reload)");
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_explicit_plugin_names_the_flag() {
        let error = resolve("analytics", Some(Path::new("/nonexistent/x.wasm")), None).unwrap_err();
        assert!(error.to_string().contains("--analytics-plugin"), "{error}");
        let error = resolve("notifications", None, Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/notifier.wasm"), "{error}");
        assert!(error.to_string().contains("--plugins-dir"), "{error}");
    }

    #[test]
    fn each_build_of_the_plugins_has_its_own_folder() {
        assert_eq!(build_id(&[b"a", b"b"]), build_id(&[b"a", b"b"]));
        assert_ne!(build_id(&[b"a", b"b"]), build_id(&[b"a", b"c"]));
        assert_ne!(build_id(&[b"ab", b""]), build_id(&[b"a", b"b"]));
        assert_eq!(build_id(&[b"a"]).len(), 12);
    }

    #[test]
    fn unpacking_keeps_a_file_already_there() {
        let dir = std::env::temp_dir().join(format!("demo-plugins-{}", std::process::id()));
        let file = unpack(&dir, "orders.wasm", b"first").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"first");
        unpack(&dir, "orders.wasm", b"second").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"first", "a user's own version was overwritten");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
