//! `host run --plugin FILE`: one deployment, with FILE watched for changes
//! (hot reload) until shutdown.

use crate::config::RunConfig;
use crate::deployment::{Deployment, RunReport};
use crate::engine::Engine;
use crate::plugin::Plugin;
use crate::streams::Redis;
use crate::watcher::Watcher;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Consumes `config.stream` until `shutdown` is cancelled, reloading the
/// plugin whenever its file changes. Returns what each consumer did, or the
/// first error that ended one of them.
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> Result<RunReport> {
    let engine = Engine::new()?;
    let plugin = load(&engine, &config.plugin).await?;
    let redis = Redis::open(&config.redis_url)?;
    redis.connect(Duration::ZERO).await?;
    let mut watcher = Watcher::new(std::slice::from_ref(&config.plugin))?;
    let mut deployment = Deployment::start(&redis, &config, Arc::new(plugin), &shutdown).await?;
    loop {
        tokio::select! {
            report = deployment.finished() => return report,
            Some(changed) = watcher.next() => {
                if changed.iter().any(|p| p.exists()) {
                    reload(&engine, &config.plugin, &deployment).await;
                } else {
                    tracing::warn!(plugin = %config.plugin.display(), "plugin file removed; the loaded version keeps serving");
                }
            }
        }
    }
}

/// Compiles and checks the plugin at `path` off the async reactor.
pub async fn load(engine: &Engine, path: &Path) -> Result<Plugin> {
    let (engine, path) = (engine.clone(), path.to_owned());
    Ok(tokio::task::spawn_blocking(move || Plugin::load(&engine, &path)).await.context("plugin loader panicked")??)
}

/// Loads the changed file and swaps it in; a file that fails to load leaves
/// the running version in service.
pub async fn reload(engine: &Engine, path: &Path, deployment: &Deployment) {
    let old = deployment.current().tag.clone();
    match load(engine, path).await {
        Ok(plugin) if plugin.tag.version == old.version => {
            tracing::debug!(plugin = %old.name, version = %old.version, "plugin file touched, same version");
        }
        Ok(plugin) => {
            tracing::info!(plugin = %plugin.tag.name, version = %plugin.tag.version,
                "reloaded {}: replacing version {}", path.display(), old.version);
            deployment.swap(Arc::new(plugin));
        }
        Err(error) => tracing::error!(plugin = %old.name, version = %old.version,
            "reload of {} failed, version {} keeps serving: {error:#}", path.display(), old.version),
    }
}
