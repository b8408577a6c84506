//! A deployment: one plugin consumed by a set of consumers of one group. Its
//! plugin can be swapped while it runs (hot reload): calls in flight finish on
//! the old version, every later entry uses the new one. Consumers can be
//! added and removed while it runs (the demo dashboard does).

use crate::consumer::control::Control;
use crate::consumer::owned::Worker;
use crate::consumer::{AckObserver, Consumer, ConsumerStats};
use crate::handler::HandlerSource;
use crate::settings::GroupSettings;
use crate::streams::Redis;
use crate::wasm::plugin::Plugin;
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

/// One consumer task of a deployment, as its observers see it.
#[derive(Clone)]
pub struct Member {
    /// Consumer name.
    pub name: String,
    /// The stream it reads (a partition's, when the stream is partitioned).
    pub stream: String,
    /// Its live view and drills.
    pub control: Arc<Control>,
    stop: CancellationToken,
}

/// Running consumers of one plugin (or of another [`HandlerSource`]: `host
/// bench` deploys its native handler).
pub struct Deployment<S: HandlerSource = Plugin> {
    plugin: watch::Sender<Arc<S>>,
    redis: Redis,
    /// The settings of each stream read: one, or one per partition.
    parts: Vec<Arc<GroupSettings>>,
    partitioned: bool,
    members: Vec<Member>,
    stop: CancellationToken,
    tasks: JoinSet<Result<(String, ConsumerStats)>>,
    /// Consumers that ended so far (kept here so `finished` is cancel-safe).
    report: RunReport,
    first_error: Option<anyhow::Error>,
    observer: Option<Arc<dyn AckObserver>>,
}

impl<S: HandlerSource> Deployment<S> {
    /// Makes sure the group exists and starts one consumer task per name.
    /// The deployment stops when `parent` is cancelled (or by [`Self::stop`]).
    pub async fn start(
        redis: &Redis,
        settings: &GroupSettings,
        plugin: Arc<S>,
        parent: &CancellationToken,
    ) -> Result<Self> {
        Self::start_observed(redis, settings, plugin, parent, None).await
    }

    /// [`Self::start`], with every consumer telling `observer` what it acks.
    pub async fn start_observed(
        redis: &Redis,
        settings: &GroupSettings,
        plugin: Arc<S>,
        parent: &CancellationToken,
        observer: Option<Arc<dyn AckObserver>>,
    ) -> Result<Self> {
        if settings.ownership.is_some() {
            return Ok(Self::start_owning(redis, settings, plugin, parent));
        }
        let mut admin = redis.connect(Duration::ZERO).await?;
        if let Some(n) = settings.partitions
            && settings.consumers.len() > n as usize
        {
            tracing::warn!(stream = %settings.stream, "{} consumers for {n} partitions: each partition has one \
                reader here, so {} of the consumers get none", settings.consumers.len(), settings.consumers.len() - n as usize);
        }
        let mut parts = Vec::new();
        for part in settings.per_partition() {
            let part = super::layout::for_redis(redis, part).await?;
            // A dead-letter key of another type would refuse every record: say so now.
            admin.expect_stream_or_none(&part.dead_letter, "dead-letter").await?;
            let created = admin.ensure_group(&part.stream, &part.group, &part.start_id).await?;
            if created {
                tracing::info!(stream = %part.stream, group = %part.group, "created group at {}", part.start_id);
            }
            crate::metrics::global().watch(redis, &part.stream, &part.group);
            parts.push(Arc::new(part));
        }
        tracing::info!(stream = %settings.stream, group = %settings.group, plugin = %plugin.tag().name,
            version = %plugin.tag().version, consumers = settings.consumers.len(), redis = %redis.shown_url(),
            partitions = settings.partitions.unwrap_or(0), cluster = redis.known_cluster().unwrap_or(false), "consuming");

        crate::metrics::global().serving(plugin.tag(), true);
        let (sender, _) = watch::channel(plugin);
        let mut deployment = Deployment {
            plugin: sender,
            redis: redis.clone(),
            parts,
            partitioned: settings.partitions.is_some(),
            members: Vec::new(),
            stop: parent.child_token(),
            tasks: JoinSet::new(),
            report: RunReport::default(),
            first_error: None,
            observer,
        };
        for part in deployment.parts.clone() {
            for name in &part.consumers {
                deployment.spawn(&part, name)?;
            }
        }
        Ok(deployment)
    }

    /// Stream ownership mode: one worker task (see `consumer/owned/`),
    /// reported under the worker id.
    fn start_owning(redis: &Redis, settings: &GroupSettings, plugin: Arc<S>, parent: &CancellationToken) -> Self {
        crate::metrics::global().serving(plugin.tag(), true);
        let (sender, receiver) = watch::channel(plugin);
        let settings = Arc::new(settings.clone());
        let worker = Worker::new(redis.clone(), receiver, settings.clone());
        let stop = parent.child_token();
        let mut tasks = JoinSet::new();
        let (name, token) = (settings.consumers[0].clone(), stop.clone());
        tasks.spawn(async move { worker.run(token).await.map(|stats| (name, stats)) });
        Deployment {
            plugin: sender,
            redis: redis.clone(),
            parts: vec![settings],
            partitioned: true,
            members: Vec::new(),
            stop,
            tasks,
            report: RunReport::default(),
            first_error: None,
            observer: None,
        }
    }

    /// Starts one more consumer task, named `name`, on the current version.
    /// A partitioned stream's consumers are fixed at start (each partition
    /// has its one reader here): adding one is refused.
    pub fn add_consumer(&mut self, name: &str) -> Result<()> {
        if self.partitioned {
            anyhow::bail!("a partitioned stream's consumers are set at start (--consumers): none can be added");
        }
        let part = self.parts[0].clone();
        self.spawn(&part, name)
    }

    /// Whether the stream is partitioned (consumers fixed at start).
    pub fn partitioned(&self) -> bool {
        self.partitioned
    }

    fn spawn(&mut self, part: &Arc<GroupSettings>, name: &str) -> Result<()> {
        let (control, drills) = Control::new();
        let control = Arc::new(control);
        let consumer = Consumer::new(
            self.redis.clone(),
            self.plugin.subscribe(),
            part.clone(),
            name.to_string(),
            control.clone(),
            drills,
            self.observer.clone(),
        )?;
        let stop = self.stop.child_token();
        self.members.push(Member { name: name.to_string(), stream: part.stream.clone(), control, stop: stop.clone() });
        let name = name.to_string();
        self.tasks.spawn(async move { consumer.run(stop).await.map(|stats| (name, stats)) });
        Ok(())
    }

    /// Stops consumer `name`, which hands its pending entries to a live peer
    /// and leaves the group. Returns false when no such consumer runs here.
    /// (On a partitioned stream: from every partition it reads.)
    pub fn remove_consumer(&mut self, name: &str) -> bool {
        let (gone, kept): (Vec<Member>, Vec<Member>) =
            std::mem::take(&mut self.members).into_iter().partition(|m| m.name == name);
        self.members = kept;
        for member in &gone {
            let peers = self.members.iter().filter(|m| m.stream == member.stream).map(|m| m.name.clone()).collect();
            member.control.mark_removed(peers);
            member.stop.cancel();
        }
        !gone.is_empty()
    }

    /// The consumers running here now.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Hands every consumer a new plugin version; each switches before its next entry.
    pub fn swap(&self, plugin: Arc<S>) {
        let new = plugin.tag().clone();
        let old = self.plugin.send_replace(plugin).tag().clone();
        if old != new {
            crate::metrics::global().serving(&old, false);
            crate::metrics::global().serving(&new, true);
        }
    }

    /// The plugin version now being handed out.
    pub fn current(&self) -> Arc<S> {
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
        crate::metrics::global().serving(self.current().tag(), false);
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
