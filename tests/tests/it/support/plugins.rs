//! Plugins for the tests: the fixture plugins (built once per run with `make
//! plugins`), a fresh folder per test, other versions of a plugin (same
//! behaviour, other bytes), installing a file as deploy tools do, what the
//! chaos plugin logged, and hand-assembled components.

use super::root;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Path of a fixture plugin, building all of them once per run.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let status = Command::new("make")
            .arg("-C")
            .arg(root())
            .arg("plugins")
            .stdout(Stdio::null())
            .status()
            .expect("cannot run make: install make");
        assert!(status.success(), "`make plugins` failed: the guest toolchain is required");
        *built = true;
    }
    let path = root().join("plugins/dist").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} missing after `make plugins`", path.display());
    path
}

/// A fresh plugin folder for one test.
pub fn plugin_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("host-plugins-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The chaos plugin with a custom section appended: same behaviour, other
/// bytes, so another version hash.
pub fn chaos_variant(tag: &[u8]) -> Vec<u8> {
    variant("chaos", tag)
}

/// Fixture plugin `name` with a custom section appended: same behaviour,
/// other bytes, so another version hash.
pub fn variant(name: &str, tag: &[u8]) -> Vec<u8> {
    let mut bytes = std::fs::read(plugin(name)).unwrap();
    let name = b"tag";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + tag.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag);
    bytes
}

/// Writes `bytes` to `path` the way deploy tools do: a temporary file, then a rename.
pub fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Ids the chaos plugin logged as handled (`handled <id>`).
pub fn handled_ids(log: &[String]) -> std::collections::HashSet<String> {
    handled_list(log).into_iter().collect()
}

/// Every `handled <id>` the chaos plugin logged, duplicates kept.
pub fn handled_list(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|line| line.split("handled ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Hand-assembled fixtures (their WAT beside them), so the tests need no
/// WAT parser whose dependencies would change the host's feature set.
pub mod wasm {
    /// `(module)`: a core module, not a component.
    pub const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";
    /// `(component)`: a valid component that exports nothing.
    pub const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    /// `(component (import "acme:db/query@1.0.0" (instance (export "run" (func)))))`
    pub const FOREIGN_IMPORT: &[u8] = &[
        0, 97, 115, 109, 13, 0, 1, 0, 7, 16, 1, 66, 2, 1, 64, 0, 1, 0, 4, 0, 3, 114, 117, 110, 1, 0, 10, 24, 1, 0, 19,
        97, 99, 109, 101, 58, 100, 98, 47, 113, 117, 101, 114, 121, 64, 49, 46, 48, 46, 48, 5, 0,
    ];
}
