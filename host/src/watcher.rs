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
    /// for every file in it.
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
            let absolute = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
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

    /// The next set of changed paths, once no event has arrived for [`QUIET`].
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
