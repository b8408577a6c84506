//! The supervision loop of every command that serves plugins: `host run
//! --plugin` (one plugin, settings from flags), `host run --plugins` (a
//! folder, settings from sidecars and `host.toml`: [`crate::supervise::folder`])
//! and `host demo` (two groups). A [`Supervisor`] keeps one deployment per
//! plugin and reacts to each settled batch of file changes: a changed plugin
//! file is loaded and swapped in ([`crate::supervise::reload`]); a removed one
//! keeps serving or is stopped, as the command asked ([`Removed`]). What else
//! a change means (a new plugin, new settings) is up to the [`Source`] of the
//! settings.

use crate::config::RunConfig;
use crate::streams::Redis;
use crate::supervise::deployment::{Deployment, RunReport};
use crate::supervise::reload::{Reload, install, load};
use crate::supervise::watcher::Watcher;
use crate::wasm::engine::Engine;
use crate::wasm::plugin::Plugin;
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio_util::sync::CancellationToken;

/// What happens to a supervised plugin whose file is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The loaded version keeps serving (`host run --plugin`, the demo).
    KeepServing,
    /// Its consumers stop (folder mode: the folder says what runs).
    Stop,
}

/// Where the supervised plugins and their settings come from, and so what a
/// change means beyond a plugin file changing.
pub trait Source {
    /// Acts on one settled batch of changed paths (named as the watcher names them).
    fn changed(&mut self, supervisor: &mut Supervisor, paths: BTreeSet<PathBuf>) -> impl Future<Output = ()> + Send;
}

/// Settings given once, by flags: only the plugin files change.
pub struct Flags;

impl Source for Flags {
    async fn changed(&mut self, supervisor: &mut Supervisor, paths: BTreeSet<PathBuf>) {
        supervisor.files_changed(&paths).await;
    }
}

/// Told each reload's outcome: the plugin's name and what the reload did.
type OnReload = Box<dyn Fn(&str, &Reload) + Send + Sync>;

/// One supervised plugin: its name, settings and deployment. Shared: others
/// (the demo's dashboard) act on the deployment while the supervisor runs.
pub struct Supervised {
    name: String,
    config: RunConfig,
    /// `None` once stopped.
    deployment: Mutex<Option<Deployment>>,
}

impl Supervised {
    /// The name it is supervised under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings its deployment runs with.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Runs `f` on its deployment; `None` once it is stopped.
    pub fn with<T>(&self, f: impl FnOnce(&mut Deployment) -> T) -> Option<T> {
        self.deployment.lock().expect("deployment lock").as_mut().map(f)
    }

    /// The plugin version serving now; `None` once stopped.
    pub fn current(&self) -> Option<Arc<Plugin>> {
        self.with(|deployment| deployment.current())
    }

    fn take(&self) -> Option<Deployment> {
        self.deployment.lock().expect("deployment lock").take()
    }
}

/// The deployments of one command and the loop that keeps them current.
pub struct Supervisor {
    engine: Engine,
    redis: Redis,
    shutdown: CancellationToken,
    removed: Removed,
    /// In the order they were started.
    plugins: Vec<Arc<Supervised>>,
    on_reload: Option<OnReload>,
}

impl Supervisor {
    /// A supervisor with no plugins yet; its deployments stop at `shutdown`.
    pub fn new(engine: Engine, redis: Redis, shutdown: &CancellationToken, removed: Removed) -> Self {
        crate::streams::events::start(&redis);
        Supervisor { engine, redis, shutdown: shutdown.clone(), removed, plugins: Vec::new(), on_reload: None }
    }

    /// Has `f` told of every reload's outcome (after the new version, if
    /// any, is in service).
    pub fn on_reload(&mut self, f: impl Fn(&str, &Reload) + Send + Sync + 'static) {
        self.on_reload = Some(Box::new(f));
    }

    /// How many plugins are supervised.
    pub fn count(&self) -> usize {
        self.plugins.len()
    }

    /// The plugin supervised as `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Supervised>> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Loads the plugin `config` names, off the async reactor.
    pub async fn load(&self, config: &RunConfig) -> Result<Plugin> {
        load(&self.engine, config).await
    }

    /// Starts `plugin` as `name` (a name not supervised yet) under `config`.
    pub async fn deploy(&mut self, name: &str, config: RunConfig, plugin: Arc<Plugin>) -> Result<Arc<Supervised>> {
        let deployment = Deployment::start(&self.redis, &config.settings, plugin, &self.shutdown).await?;
        let supervised =
            Arc::new(Supervised { name: name.to_string(), config, deployment: Mutex::new(Some(deployment)) });
        self.plugins.push(supervised.clone());
        Ok(supervised)
    }

    /// Loads the plugin `config` names and starts it as `name`.
    pub async fn start(&mut self, name: &str, config: RunConfig) -> Result<Arc<Supervised>> {
        let plugin = self.load(&config).await?;
        self.deploy(name, config, Arc::new(plugin)).await
    }

    /// Loads plugin `name`'s file again and swaps it in; `None` when no such
    /// plugin runs.
    pub async fn reload(&self, name: &str) -> Option<Reload> {
        let supervised = self.get(name)?;
        let loaded = self.load(&supervised.config).await;
        let outcome = supervised.with(|deployment| install(&supervised.config, deployment, loaded))?;
        if let Some(on_reload) = &self.on_reload {
            on_reload(name, &outcome);
        }
        Some(outcome)
    }

    /// Reacts to a change of plugin `name`'s file: reloads it, or, when the
    /// file is gone, keeps it serving or stops it ([`Removed`]).
    pub async fn file_changed(&mut self, name: &str) {
        let Some(supervised) = self.get(name).cloned() else { return };
        if supervised.config.plugin.exists() {
            self.reload(name).await;
            return;
        }
        match self.removed {
            Removed::KeepServing => tracing::warn!(plugin = %supervised.config.plugin.display(),
                "plugin file removed; the loaded version keeps serving"),
            Removed::Stop => {
                tracing::info!(plugin = %name, "plugin file removed: stopping its consumers");
                self.finish(name).await;
            }
        }
    }

    /// Reacts to each supervised plugin whose file is among `paths`
    /// ([`Self::file_changed`]), in the order they were started.
    pub async fn files_changed(&mut self, paths: &BTreeSet<PathBuf>) {
        let changed: Vec<String> =
            self.plugins.iter().filter(|p| paths.contains(&p.config.plugin)).map(|p| p.name.clone()).collect();
        for name in changed {
            self.file_changed(&name).await;
        }
    }

    /// Stops plugin `name`'s consumers (finishing the entries in hand; the
    /// rest stay pending or are handed over) and waits for them; `None`
    /// when no such plugin runs. It is no longer supervised.
    pub async fn stop(&mut self, name: &str) -> Option<Result<RunReport>> {
        let at = self.plugins.iter().position(|p| p.name == name)?;
        let mut deployment = self.plugins.remove(at).take()?;
        deployment.stop();
        Some(deployment.finished().await)
    }

    /// [`Self::stop`], and logs how the plugin ended.
    pub async fn finish(&mut self, name: &str) {
        match self.stop(name).await {
            Some(Ok(report)) => tracing::info!(plugin = name, handled = report.total().handled, "plugin stopped"),
            Some(Err(error)) => tracing::error!(plugin = name, "plugin stopped with an error: {error:#}"),
            None => {}
        }
    }

    /// [`Self::finish`] for every plugin, by name.
    pub async fn finish_all(&mut self) {
        let mut names: Vec<String> = self.plugins.iter().map(|p| p.name.clone()).collect();
        names.sort();
        for name in names {
            self.finish(&name).await;
        }
    }

    /// Reacts to the changes `watcher` reports, as `source` says, until shutdown.
    pub async fn serve(&mut self, watcher: Watcher, source: &mut impl Source) {
        self.supervise(watcher, source, false).await;
    }

    /// Reacts to the changes `watcher` reports, as `source` says, until a
    /// deployment ends (at shutdown, or when a consumer's error stopped its
    /// peers); returns what that deployment's consumers did, or that error
    /// (an empty report at shutdown when nothing was deployed).
    pub async fn serve_until_ended(&mut self, watcher: Watcher, source: &mut impl Source) -> Result<RunReport> {
        match self.supervise(watcher, source, true).await {
            Some(report) => report,
            None => Ok(RunReport::default()),
        }
    }

    /// The one loop: `None` at shutdown (unless `until_ended` and something
    /// is deployed), else what the first deployment to end did.
    async fn supervise(
        &mut self,
        mut watcher: Watcher,
        source: &mut impl Source,
        until_ended: bool,
    ) -> Option<Result<RunReport>> {
        let shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled(), if !until_ended || self.plugins.is_empty() => return None,
                (name, report) = self.ended(), if until_ended => {
                    self.plugins.retain(|p| p.name != name);
                    return Some(report);
                }
                Some(changed) = watcher.next() => source.changed(self, changed).await,
            }
        }
    }

    /// The first deployment to end (its consumers stop with shutdown, and
    /// each other's errors): its name and what it did. Its slot is emptied.
    async fn ended(&self) -> (String, Result<RunReport>) {
        std::future::poll_fn(|cx| {
            for supervised in &self.plugins {
                let mut slot = supervised.deployment.lock().expect("deployment lock");
                let Some(deployment) = slot.as_mut() else { continue };
                // `finished` is cancel-safe: each fresh call carries on where the last one was dropped.
                let poll = std::pin::pin!(deployment.finished()).poll(cx);
                if let Poll::Ready(report) = poll {
                    *slot = None;
                    return Poll::Ready((supervised.name.clone(), report));
                }
            }
            Poll::Pending
        })
        .await
    }
}
