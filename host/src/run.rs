//! `host run`: load the plugin, make sure the group exists, run one consumer
//! task per name until shutdown, and report what they did.

use crate::config::RunConfig;
use crate::consumer::{Consumer, ConsumerStats, GroupSettings};
use crate::engine::Engine;
use crate::plugin::Plugin;
use crate::streams::Redis;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a run did, per consumer.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Each consumer's name and statistics.
    pub consumers: Vec<(String, ConsumerStats)>,
}

impl RunReport {
    /// The statistics of all consumers added up.
    pub fn total(&self) -> ConsumerStats {
        let mut total = ConsumerStats::default();
        for (_, stats) in &self.consumers {
            total += *stats;
        }
        total
    }
}

/// Consumes `config.stream` until `shutdown` is cancelled. Returns what each
/// consumer did, or the first error that ended one of them (which also stops
/// the others).
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> Result<RunReport> {
    let engine = Engine::new()?;
    let path = config.plugin.clone();
    // Compiling is CPU-bound and can take seconds for big plugins.
    let plugin =
        tokio::task::spawn_blocking(move || Plugin::load(&engine, &path)).await.context("plugin loader panicked")??;

    let redis = Redis::open(&config.redis_url)?;
    let mut admin = redis.connect(Duration::ZERO).await?;
    let created = admin.ensure_group(&config.stream, &config.group, &config.start_id).await?;
    tracing::info!(stream = %config.stream, group = %config.group, plugin = %plugin.tag.name,
        version = %plugin.tag.version, consumers = config.consumers.len(), redis = %redis.url(),
        "consuming{}", if created { format!(" (created group at {})", config.start_id) } else { String::new() });

    let settings = Arc::new(GroupSettings {
        stream: config.stream.clone(),
        group: config.group.clone(),
        count: config.count,
        block: config.block,
        call_deadline: config.call_deadline,
        min_idle: config.min_idle,
        reap_interval: config.reap_interval,
        max_deliveries: config.max_deliveries,
        dead_letter: config.dead_letter.clone(),
        handover: config.handover,
        local_consumers: config.consumers.clone(),
    });
    let stop = shutdown.child_token();
    let mut tasks = JoinSet::new();
    for name in &config.consumers {
        let consumer = Consumer::new(redis.clone(), &plugin, settings.clone(), name.clone())?;
        let name = name.clone();
        let stop = stop.clone();
        tasks.spawn(async move { consumer.run(stop).await.map(|stats| (name, stats)) });
    }

    let mut report = RunReport::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.context("consumer task panicked").and_then(|r| r) {
            Ok(named) => report.consumers.push(named),
            Err(error) => {
                tracing::error!("consumer stopped with an error, stopping the others: {error:#}");
                stop.cancel();
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => {
            report.consumers.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(report)
        }
    }
}
