//! A deployment: one plugin consumed by a set of consumers of one group. Its
//! plugin can be swapped while it runs (hot reload): calls in flight finish on
//! the old version, every later entry uses the new one.

use crate::config::RunConfig;
use crate::consumer::{Consumer, ConsumerStats, GroupSettings};
use crate::plugin::Plugin;
use crate::streams::Redis;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a deployment did, per consumer.
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

/// Running consumers of one plugin.
pub struct Deployment {
    plugin: watch::Sender<Arc<Plugin>>,
    stop: CancellationToken,
    tasks: JoinSet<Result<(String, ConsumerStats)>>,
    /// Consumers that ended so far (kept here so `finished` is cancel-safe).
    report: RunReport,
    first_error: Option<anyhow::Error>,
}

impl Deployment {
    /// Makes sure the group exists and starts one consumer task per name.
    /// The deployment stops when `parent` is cancelled (or by [`Self::stop`]).
    pub async fn start(
        redis: &Redis,
        config: &RunConfig,
        plugin: Arc<Plugin>,
        parent: &CancellationToken,
    ) -> Result<Self> {
        let mut admin = redis.connect(Duration::ZERO).await?;
        let created = admin.ensure_group(&config.stream, &config.group, &config.start_id).await?;
        tracing::info!(stream = %config.stream, group = %config.group, plugin = %plugin.tag.name,
            version = %plugin.tag.version, consumers = config.consumers.len(), redis = %redis.shown_url(),
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
            limits: config.limits.clone(),
        });
        crate::metrics::global().serving(&plugin.tag, true);
        crate::metrics::global().watch(redis, &config.stream, &config.group);
        let (sender, receiver) = watch::channel(plugin);
        let stop = parent.child_token();
        let mut tasks = JoinSet::new();
        for name in &config.consumers {
            let consumer = Consumer::new(redis.clone(), receiver.clone(), settings.clone(), name.clone())?;
            let (name, stop) = (name.clone(), stop.clone());
            tasks.spawn(async move { consumer.run(stop).await.map(|stats| (name, stats)) });
        }
        Ok(Deployment { plugin: sender, stop, tasks, report: RunReport::default(), first_error: None })
    }

    /// Hands every consumer a new plugin version; each switches before its next entry.
    pub fn swap(&self, plugin: Arc<Plugin>) {
        let new = plugin.tag.clone();
        let old = self.plugin.send_replace(plugin).tag.clone();
        if old != new {
            crate::metrics::global().serving(&old, false);
            crate::metrics::global().serving(&new, true);
        }
    }

    /// The plugin version now being handed out.
    pub fn current(&self) -> Arc<Plugin> {
        self.plugin.borrow().clone()
    }

    /// Asks every consumer to stop (finishing the entry in hand).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits for every consumer to end; returns what each did, or the first
    /// error that ended one of them (which also stops the others). Safe to
    /// cancel and call again.
    pub async fn finished(&mut self) -> Result<RunReport> {
        while let Some(joined) = self.tasks.join_next().await {
            match joined.context("consumer task panicked").and_then(|r| r) {
                Ok(named) => self.report.consumers.push(named),
                Err(error) => {
                    tracing::error!("consumer stopped with an error, stopping the others: {error:#}");
                    self.stop.cancel();
                    self.first_error.get_or_insert(error);
                }
            }
        }
        crate::metrics::global().serving(&self.current().tag, false);
        match self.first_error.take() {
            Some(error) => Err(error),
            None => {
                let mut report = std::mem::take(&mut self.report);
                report.consumers.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(report)
            }
        }
    }
}
