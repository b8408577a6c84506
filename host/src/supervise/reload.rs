//! One plugin version replacing another: load a plugin file off the async
//! reactor, then put it in service in a running deployment (unless it is the
//! version already serving). A file that fails to load leaves the running
//! version in service.

use crate::config::RunConfig;
use crate::supervise::deployment::Deployment;
use crate::wasm::engine::Engine;
use crate::wasm::plugin::Plugin;
use anyhow::{Context, Result};
use std::sync::Arc;

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

/// Puts a freshly loaded plugin in service (unless it is the version already
/// serving) and logs what happened; a plugin that failed to load leaves the
/// running version in service.
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
            let error = format!("{error:#}");
            let (file, version) = (path.display().to_string(), old.version.clone());
            crate::streams::events::record(
                "reload-failed",
                &[("plugin", &old.name), ("version", &version), ("file", &file), ("error", &error)],
            );
            Reload::Failed(error)
        }
    }
}
