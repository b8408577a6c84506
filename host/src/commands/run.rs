//! `host run --plugin FILE`: one deployment, with FILE watched for changes
//! (hot reload) until shutdown.

use crate::config::RunConfig;
use crate::streams::Redis;
use crate::supervise::deployment::{Deployment, RunReport};
use crate::supervise::watcher::Watcher;
use crate::wasm::engine::Engine;
use crate::wasm::plugin::Plugin;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Consumes `config.settings.stream` until `shutdown` is cancelled, reloading the
/// plugin whenever its file changes. Returns what each consumer did, or the
/// first error that ended one of them.
pub async fn run(mut config: RunConfig, shutdown: CancellationToken) -> Result<RunReport> {
    let engine = Engine::new()?;
    let plugin = load(&engine, &config).await?;
    config.plugin = crate::supervise::watcher::resolve(&config.plugin)?;
    let redis = Redis::open(&config.redis_url)?;
    redis.connect(Duration::ZERO).await?;
    let mut watcher = Watcher::new(std::slice::from_ref(&config.plugin))?;
    let mut deployment = Deployment::start(&redis, &config.settings, Arc::new(plugin), &shutdown).await?;
    loop {
        tokio::select! {
            report = deployment.finished() => return report,
            Some(changed) = watcher.next() => {
                if changed.iter().any(|p| p.exists()) {
                    let _ = reload(&engine, &config, &deployment).await;
                } else {
                    tracing::warn!(plugin = %config.plugin.display(), "plugin file removed; the loaded version keeps serving");
                }
            }
        }
    }
}

/// Compiles and checks `config.plugin` off the async reactor, on the engine
/// flavour its limits need (metered when it has a fuel limit).
pub async fn load(engine: &Engine, config: &RunConfig) -> Result<Plugin> {
    let engine = engine.flavour(config.settings.limits.max_fuel.is_some())?;
    let path = config.plugin.clone();
    let loaded =
        tokio::task::spawn_blocking(move || Plugin::load(&engine, &path)).await.context("plugin loader panicked")?;
    let name = config.plugin.file_stem().unwrap_or_default().to_string_lossy();
    crate::metrics::global().loaded(&name, loaded.is_ok());
    Ok(loaded?)
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file holds the version already serving.
    Same,
    /// A new version serves; the old one was this.
    Replaced {
        /// The version replaced.
        old: String,
    },
    /// The file did not load; the old version keeps serving.
    Failed(String),
}

/// Loads the changed file and swaps it in; a file that fails to load leaves
/// the running version in service.
pub async fn reload(engine: &Engine, config: &RunConfig, deployment: &Deployment) -> Reload {
    let loaded = load(engine, config).await;
    install(config, deployment, loaded)
}

/// The second half of [`reload`]: puts a freshly loaded plugin in service
/// (unless it is the version already serving) and logs what happened.
pub fn install(config: &RunConfig, deployment: &Deployment, loaded: Result<Plugin>) -> Reload {
    let old = deployment.current().tag.clone();
    let path = &config.plugin;
    match loaded {
        Ok(plugin) if plugin.tag.version == old.version => {
            tracing::debug!(plugin = %old.name, version = %old.version, "plugin file touched, same version");
            Reload::Same
        }
        Ok(plugin) => {
            let tag = plugin.tag.clone();
            // Swap first: once this line is logged, every entry read from now on gets the new version.
            deployment.swap(Arc::new(plugin));
            tracing::info!(plugin = %tag.name, version = %tag.version,
                "reloaded {}: replacing version {}", path.display(), old.version);
            Reload::Replaced { old: old.version.clone() }
        }
        Err(error) => {
            tracing::error!(plugin = %old.name, version = %old.version,
                "reload of {} failed, version {} keeps serving: {error:#}", path.display(), old.version);
            Reload::Failed(format!("{error:#}"))
        }
    }
}
