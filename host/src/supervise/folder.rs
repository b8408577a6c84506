//! `host run --plugins DIR`: every `NAME.wasm` in DIR runs as its own
//! deployment, bound by `NAME.toml` (or `[plugins.NAME]` in `host.toml`).
//! The folder is watched: a new file starts its consumers, a changed file is
//! hot-swapped, a removed file stops its consumers, a changed sidecar or
//! `host.toml` restarts the plugins it affects. The deployments and their
//! reloads are a [`Supervisor`]'s; this module is where their settings come
//! from, and what a change to those means.

use crate::config::{FolderConfig, RunConfig};
use crate::settings::process_name;
use crate::streams::Redis;
use crate::supervise::sidecar::{HostFile, PluginSettings, sidecar_of};
use crate::supervise::supervisor::{Removed, Source, Supervisor};
use crate::supervise::watcher::Watcher;
use crate::wasm::engine::Engine;
use anyhow::{Result, bail};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The folder as the source of its plugins' settings.
struct Folder {
    config: FolderConfig,
    redis: Redis,
    host_file: HostFile,
}

/// Runs every plugin in `config.dir` until `shutdown`.
pub async fn serve(mut config: FolderConfig, shutdown: CancellationToken) -> Result<()> {
    if !config.dir.is_dir() {
        bail!("plugin folder {} is not a directory (check --plugins)", config.dir.display());
    }
    // As the watcher names them, or a change to host.toml is never recognised.
    config.dir = crate::supervise::watcher::resolve(&config.dir)?;
    config.host_file = crate::supervise::watcher::resolve(&config.host_file)?;
    let host_file = HostFile::read(&config.host_file)?;
    if host_file.grant_ceiling.is_some() && inside(&config.host_file, &config.dir) {
        tracing::warn!(host_file = %config.host_file.display(),
            "host.toml is inside the plugin folder: whoever can write the folder can widen its [grant_ceiling] \
             too; keep it elsewhere (--config FILE)");
    }
    let redis_url = config.redis_url.clone().or_else(|| host_file.redis.clone());
    let redis = Redis::open(redis_url.as_deref().unwrap_or(crate::config::DEFAULT_REDIS_URL))?;
    redis.connect(Duration::ZERO).await?;
    let watcher = Watcher::new(&[config.dir.clone(), config.host_file.clone()])?;
    let mut supervisor = Supervisor::new(Engine::new()?, redis.clone(), &shutdown, Removed::Stop);
    let mut folder = Folder { redis, host_file, config };
    for name in folder.plugin_names() {
        folder.start(&mut supervisor, &name).await;
    }
    tracing::info!(folder = %folder.config.dir.display(), plugins = supervisor.count(), "serving the plugin folder");
    supervisor.serve(watcher, &mut folder).await;
    supervisor.finish_all().await;
    Ok(())
}

impl Source for Folder {
    /// A changed plugin file is reloaded (removed: its consumers stop), a
    /// new one started; a changed sidecar or `host.toml` restarts the
    /// plugins it affects.
    async fn changed(&mut self, supervisor: &mut Supervisor, paths: BTreeSet<PathBuf>) {
        let mut restart = BTreeSet::new();
        let mut reloads = BTreeSet::new();
        for path in &paths {
            if *path == self.config.host_file {
                match HostFile::read(path) {
                    Ok(host_file) => {
                        self.host_file = host_file;
                        restart.extend(self.plugin_names());
                    }
                    Err(error) => tracing::error!("{error:#}; keeping the previous host settings"),
                }
            } else if let Some(name) = plugin_name(path) {
                reloads.insert(name);
            } else if path.extension().is_some_and(|e| e == "toml")
                && let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned())
            {
                restart.insert(name);
            }
        }
        for name in reloads {
            if supervisor.get(&name).is_some() {
                supervisor.file_changed(&name).await;
            } else if self.wasm_path(&name).exists() {
                self.start(supervisor, &name).await;
            }
        }
        for name in restart {
            self.apply_settings(supervisor, &name).await;
        }
    }
}

impl Folder {
    /// Names of the `*.wasm` files in the folder.
    fn plugin_names(&self) -> BTreeSet<String> {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else { return BTreeSet::new() };
        entries.filter_map(|e| plugin_name(&e.ok()?.path())).collect()
    }

    fn wasm_path(&self, name: &str) -> PathBuf {
        self.config.dir.join(format!("{name}.wasm"))
    }

    /// The settings of plugin `name`: its sidecar, else its `host.toml` table;
    /// either must keep within `host.toml`'s `[grant_ceiling]`.
    fn settings(&self, name: &str) -> Result<RunConfig> {
        let wasm = self.wasm_path(name);
        let sidecar = sidecar_of(&wasm);
        let (settings, source, place) = if sidecar.exists() {
            (PluginSettings::read(&sidecar)?, format!("sidecar {}", sidecar.display()), sidecar.display().to_string())
        } else if let Some(table) = self.host_file.plugins.get(name) {
            let place = format!("[plugins.{name}] of {}", self.config.host_file.display());
            (table.clone(), format!("table {place}"), place)
        } else {
            bail!(
                "plugin {name} has no settings: add {} (stream, group, …) or a [plugins.{name}] table to {}",
                sidecar.display(),
                self.config.host_file.display()
            );
        };
        let config = RunConfig {
            redis_url: self.redis.raw_url().to_string(),
            plugin: wasm,
            metrics: None,
            settings: settings.to_settings(name, &process_name(), &place)?,
        };
        if let Some(beyond) = self.beyond_ceiling(&config) {
            bail!(
                "plugin {name}: its {source} grants {beyond}, beyond the [grant_ceiling] of {}",
                self.config.host_file.display()
            );
        }
        Ok(config)
    }

    /// What `config` grants beyond `host.toml`'s `[grant_ceiling]`, if anything.
    fn beyond_ceiling(&self, config: &RunConfig) -> Option<String> {
        self.host_file.grant_ceiling.as_ref()?.exceeded_by(&config.settings.limits.grants)
    }

    /// Loads plugin `name` and starts its consumers; errors are logged, and
    /// the plugin is retried on its next change.
    async fn start(&self, supervisor: &mut Supervisor, name: &str) {
        let result = async {
            let config = self.settings(name)?;
            supervisor.start(name, config).await
        }
        .await;
        if let Err(error) = result {
            tracing::error!(plugin = name, "not started: {error:#}");
        }
    }

    /// Restarts plugin `name` if its settings changed (keeping the loaded
    /// version), or starts it if it was waiting for settings.
    async fn apply_settings(&self, supervisor: &mut Supervisor, name: &str) {
        if !self.wasm_path(name).exists() {
            return;
        }
        let Some(running) = supervisor.get(name).cloned() else {
            return self.start(supervisor, name).await;
        };
        let config = match self.settings(name) {
            Ok(config) if config != *running.config() => config,
            Ok(_) => return,
            Err(error) if self.beyond_ceiling(running.config()).is_none() => {
                return tracing::error!(plugin = name, "settings not applied, the old ones stay: {error:#}");
            }
            Err(error) => {
                // A narrowed ceiling: the old grants may not stay either.
                tracing::error!(
                    plugin = name,
                    "stopping it: its grants are beyond the new [grant_ceiling], and its settings fail: {error:#}"
                );
                return supervisor.finish(name).await;
            }
        };
        let Some(mut plugin) = running.current() else { return };
        tracing::info!(plugin = name, "settings changed: restarting its consumers");
        if plugin.engine.metered != config.settings.limits.max_fuel.is_some() {
            // Fuel metering switched on or off: the code must be compiled again.
            plugin = match supervisor.load(&config).await {
                Ok(plugin) => Arc::new(plugin),
                Err(error) => {
                    return tracing::error!(plugin = name, "settings not applied, the old ones stay: {error:#}");
                }
            };
        }
        supervisor.finish(name).await;
        if let Err(error) = supervisor.deploy(name, config, plugin).await {
            tracing::error!(plugin = name, "not restarted: {error:#}");
        }
    }
}

/// `NAME` for a path `…/NAME.wasm`.
fn plugin_name(path: &Path) -> Option<String> {
    (path.extension()? == "wasm").then(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))?
}

/// Whether `path` lies inside folder `dir` (as real paths).
fn inside(path: &Path, dir: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    real(path).starts_with(real(dir))
}
