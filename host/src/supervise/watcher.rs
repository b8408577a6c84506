//! Watching plugin files: file-system events (notify), debounced until the
//! writer has gone quiet, so a half-written file is not picked up mid-write.
//! (A file that still fails to load is rejected by validation and the old
//! version keeps serving; the next write triggers another attempt.)

use anyhow::{Context, Result};
use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// No event for this long means the writer is done: long enough to span the
/// gaps between a copy's writes, short enough to feel immediate.
pub const QUIET: Duration = Duration::from_millis(250);

/// `path` as the watcher reports it: absolute, through no symbolic link
/// (its directory canonical; a file keeps its name, so a link is watched as
/// the link and a file not there yet can be named). Callers hold their paths
/// in this form from start-up, or a relative one never matches an event.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let cannot = || format!("cannot resolve {} (does its folder exist?)", path.display());
    if path.is_dir() {
        return std::fs::canonicalize(path).with_context(cannot);
    }
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (if dir.as_os_str().is_empty() { Path::new(".") } else { dir }, name),
        _ => return std::fs::canonicalize(path).with_context(cannot),
    };
    Ok(std::fs::canonicalize(dir).with_context(cannot)?.join(name))
}

/// Events for a set of watched paths (files or directories).
pub struct Watcher {
    _inner: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<PathBuf>,
    /// Files watched by name (their directory is watched, so a file replaced
    /// by rename is still seen).
    files: Vec<PathBuf>,
    /// Directories watched for every file in them.
    dirs: Vec<PathBuf>,
}

impl Watcher {
    /// Watches `paths`: a file is watched through its directory; a directory
    /// for every file in it. Events name them as [`resolve`] does.
    pub fn new(paths: &[PathBuf]) -> Result<Self> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reading a file (as loading a plugin does) raises access events:
            // only changes to content or names count, or a load would trigger a reload.
            if let Ok(event) = event
                && !matches!(event.kind, EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)))
            {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        })
        .context("cannot start the file watcher")?;
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for path in paths {
            let absolute = resolve(path)?;
            let dir = if absolute.is_dir() {
                dirs.push(absolute.clone());
                absolute.clone()
            } else {
                files.push(absolute.clone());
                absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"))
            };
            inner
                .watch(&dir, RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
        }
        Ok(Watcher { _inner: inner, events, files, dirs })
    }

    /// The next set of changed paths (as [`resolve`] gives them), once no
    /// event has arrived for [`QUIET`].
    pub async fn next(&mut self) -> Option<BTreeSet<PathBuf>> {
        let mut changed = BTreeSet::new();
        loop {
            let event = if changed.is_empty() {
                self.events.recv().await
            } else {
                match tokio::time::timeout(QUIET, self.events.recv()).await {
                    Ok(event) => event,
                    Err(_) => return Some(changed),
                }
            };
            let path = event?;
            let in_dir = path.parent().is_some_and(|parent| self.dirs.iter().any(|d| d == parent));
            if in_dir || self.files.contains(&path) {
                changed.insert(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_to_what_events_name() {
        let cwd = std::fs::canonicalize(".").unwrap();
        assert_eq!(resolve(Path::new("x.wasm")).unwrap(), cwd.join("x.wasm"));
        assert_eq!(resolve(Path::new("./src/../src/x.wasm")).unwrap(), cwd.join("src/x.wasm"));
        assert_eq!(resolve(Path::new("src")).unwrap(), cwd.join("src"));
        assert!(resolve(Path::new("no-such-folder/x.wasm")).is_err());
    }
}
