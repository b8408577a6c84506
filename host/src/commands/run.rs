//! `host run --plugin FILE`: one deployment, with FILE watched for changes
//! (hot reload) until shutdown: a [`Supervisor`] over one plugin whose
//! settings come from the flags.

use crate::config::RunConfig;
use crate::streams::Redis;
use crate::supervise::deployment::RunReport;
use crate::supervise::reload::load;
use crate::supervise::supervisor::{Flags, Removed, Supervisor};
use crate::supervise::watcher::Watcher;
use crate::wasm::engine::Engine;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Consumes `config.stream` until `shutdown` is cancelled, reloading the
/// plugin whenever its file changes (a removed file leaves the loaded version
/// serving). Returns what each consumer did, or the first error that ended
/// one of them.
pub async fn run(mut config: RunConfig, shutdown: CancellationToken) -> Result<RunReport> {
    let engine = Engine::new()?;
    let plugin = load(&engine, &config).await?;
    config.plugin = crate::supervise::watcher::resolve(&config.plugin)?;
    let redis = Redis::open(&config.redis_url)?;
    redis.connect(Duration::ZERO).await?;
    let watcher = Watcher::new(std::slice::from_ref(&config.plugin))?;
    let mut supervisor = Supervisor::new(engine, redis, &shutdown, Removed::KeepServing);
    let name = config.plugin.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    supervisor.deploy(&name, config, Arc::new(plugin)).await?;
    supervisor.serve_until_ended(watcher, &mut Flags).await
}
