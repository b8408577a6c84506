//! `host::run` inside the test process: [`HostRun`], stopped on demand, and
//! the run configurations tests start it with ([`config`], [`fast_config`]).

use super::{plugin, redis_url};
use anyhow::Result;
use host::{RunConfig, RunReport};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A `host::run` in this process, stopped on demand.
pub struct HostRun {
    shutdown: CancellationToken,
    task: JoinHandle<Result<RunReport>>,
}

impl HostRun {
    pub fn start(config: RunConfig) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(host::run(config, shutdown.clone()));
        HostRun { shutdown, task }
    }

    pub async fn stop(self) -> RunReport {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("host stops within 10 s")
            .expect("host task did not panic")
            .expect("host run ends without error")
    }
}

/// A run configuration against the test Redis.
pub fn config(plugin_name: &str, stream: &str, group: &str, consumers: &[&str]) -> RunConfig {
    let mut config = RunConfig::new(redis_url(), plugin(plugin_name), stream, group, consumers[0]);
    config.settings.consumers = consumers.iter().map(|c| c.to_string()).collect();
    config.settings.block = Duration::from_millis(200);
    config
}

/// A run configuration with short recovery timings, so tests finish fast.
pub fn fast_config(plugin_name: &str, stream: &str, group: &str, consumers: &[&str]) -> RunConfig {
    let mut cfg = config(plugin_name, stream, group, consumers);
    cfg.settings.min_idle = Duration::from_millis(300);
    cfg.settings.reap_interval = Duration::from_millis(50);
    cfg
}
