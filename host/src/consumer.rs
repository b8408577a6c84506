//! One consumer of a group: read a batch (XREADGROUP) → invoke the plugin per
//! entry → settle (XACK the acked, leave the rest pending). Survives bad
//! entries and Redis outages; stops promptly on shutdown.

use crate::entry::Entry;
use crate::instance::{Delivery, Instance};
use crate::plugin::Plugin;
use crate::streams::{Connection, Redis, is_missing_group};
use crate::verdict::Verdict;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Read settings shared by every consumer of a run.
#[derive(Debug, Clone)]
pub struct ReadSettings {
    /// Stream key.
    pub stream: String,
    /// Consumer group.
    pub group: String,
    /// COUNT per read.
    pub count: usize,
    /// BLOCK per read.
    pub block: Duration,
    /// Per-call deadline.
    pub call_deadline: Duration,
}

/// What one consumer did, reported when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Entries the plugin was called for (or rejected by the host before the call).
    pub handled: u64,
    /// Entries acknowledged.
    pub acked: u64,
    /// Entries left pending because the plugin asked for a retry.
    pub retried: u64,
    /// Entries the plugin (or host) rejected.
    pub rejected: u64,
    /// Entries whose call trapped or ran past its deadline.
    pub faulted: u64,
}

impl std::ops::AddAssign for ConsumerStats {
    fn add_assign(&mut self, o: Self) {
        self.handled += o.handled;
        self.acked += o.acked;
        self.retried += o.retried;
        self.rejected += o.rejected;
        self.faulted += o.faulted;
    }
}

/// First and longest pause after a Redis error; doubles in between.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One consumer's loop state.
pub struct Consumer {
    redis: Redis,
    settings: Arc<ReadSettings>,
    name: String,
    /// `None` while a batch is being handled on a blocking thread.
    instance: Option<Instance>,
    conn: Option<Connection>,
    /// Ids handled Ok whose XACK has not yet succeeded (e.g. Redis went away).
    unacked: Vec<String>,
    backoff: Duration,
    stats: ConsumerStats,
}

impl Consumer {
    /// Instantiates the plugin for consumer `name`.
    pub fn new(
        redis: Redis,
        plugin: &Plugin,
        settings: Arc<ReadSettings>,
        name: String,
    ) -> Result<Self> {
        let delivery = Delivery {
            stream: settings.stream.clone(),
            group: settings.group.clone(),
            consumer: name.clone(),
        };
        let instance = Instance::new(plugin, delivery, settings.call_deadline)?;
        Ok(Consumer {
            redis,
            settings,
            name,
            instance: Some(instance),
            conn: None,
            unacked: Vec::new(),
            backoff: BACKOFF_MIN,
            stats: ConsumerStats::default(),
        })
    }

    /// Runs until `shutdown`; the entry in hand is finished and acked, the
    /// rest of its batch stays pending.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<ConsumerStats> {
        while !shutdown.is_cancelled() {
            let entries = match self.read(&shutdown).await {
                Some(Ok(entries)) => entries,
                Some(Err(error)) if is_missing_group(&error) => {
                    self.recreate_group(&error, &shutdown).await;
                    continue;
                }
                Some(Err(error)) => {
                    self.redis_failed(&error, &shutdown).await;
                    continue;
                }
                None => break,
            };
            self.backoff = BACKOFF_MIN;
            if !entries.is_empty() {
                let outcomes = self.invoke(entries, shutdown.clone()).await?;
                self.settle(outcomes).await;
            }
        }
        if !self.unacked.is_empty() {
            // One last try, so handled entries are not redelivered after a restart.
            if let Err(error) = self.flush_acks().await {
                tracing::warn!(consumer = %self.name, "{} handled entries stay pending: {error:#}", self.unacked.len());
            }
        }
        tracing::info!(consumer = %self.name, stream = %self.settings.stream, group = %self.settings.group,
            handled = self.stats.handled, acked = self.stats.acked, retried = self.stats.retried,
            rejected = self.stats.rejected, faulted = self.stats.faulted, "consumer stopped");
        Ok(self.stats)
    }

    /// Connects if needed, retries unsent acks, then reads the next batch.
    /// `None` means shutdown came first.
    async fn read(&mut self, shutdown: &CancellationToken) -> Option<Result<Vec<Entry>>> {
        let s = self.settings.clone();
        let attempt = async {
            if self.conn.is_none() {
                self.conn = Some(self.redis.connect(s.block).await?);
            }
            self.flush_acks().await?;
            let conn = self.conn.as_mut().expect("connected above");
            conn.read_new(&s.stream, &s.group, &self.name, s.count, s.block)
                .await
        };
        tokio::select! {
            _ = shutdown.cancelled() => None,
            result = attempt => Some(result),
        }
    }

    /// Calls the plugin for each entry, in stream order, on a blocking thread
    /// (Wasm must not stall the async reactor). Stops early on shutdown.
    async fn invoke(
        &mut self,
        entries: Vec<Entry>,
        shutdown: CancellationToken,
    ) -> Result<Vec<(String, Verdict)>> {
        let mut instance = self
            .instance
            .take()
            .expect("instance is returned after every batch");
        let join = tokio::task::spawn_blocking(move || {
            let mut outcomes = Vec::with_capacity(entries.len());
            for mut entry in entries {
                if shutdown.is_cancelled() {
                    break;
                }
                let verdict = instance.handle(&mut entry);
                outcomes.push((entry.id, verdict));
            }
            (instance, outcomes)
        });
        let (instance, outcomes) = join.await.context("plugin worker thread panicked")?;
        self.instance = Some(instance);
        Ok(outcomes)
    }

    /// Acks every Ok entry in one XACK; logs the rest, which stay pending.
    async fn settle(&mut self, outcomes: Vec<(String, Verdict)>) {
        let (stream, group) = (&self.settings.stream, &self.settings.group);
        for (id, verdict) in outcomes {
            self.stats.handled += 1;
            match &verdict {
                Verdict::Ack => {
                    self.unacked.push(id);
                    continue;
                }
                Verdict::Retry { .. } => self.stats.retried += 1,
                Verdict::Reject { .. } => self.stats.rejected += 1,
                Verdict::Fault { .. } => self.stats.faulted += 1,
            }
            tracing::warn!(%stream, %group, consumer = %self.name, entry = %id, "left pending: {verdict}");
        }
        if let Err(error) = self.flush_acks().await {
            tracing::warn!(consumer = %self.name, "ack deferred: {error:#}");
            self.conn = None;
        }
    }

    /// XACKs the ids handled Ok so far.
    async fn flush_acks(&mut self) -> Result<()> {
        if self.unacked.is_empty() {
            return Ok(());
        }
        if self.conn.is_none() {
            self.conn = Some(self.redis.connect(self.settings.block).await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let acked = conn
            .ack(&self.settings.stream, &self.settings.group, &self.unacked)
            .await?;
        tracing::debug!(consumer = %self.name, stream = %self.settings.stream, "acked {acked} of {} entries", self.unacked.len());
        self.stats.acked += self.unacked.len() as u64;
        self.unacked.clear();
        Ok(())
    }

    /// The group vanished under us (stream key deleted, or Redis restarted
    /// without persistence). Re-create it from the start of the stream, so
    /// nothing written since is skipped, and go on.
    async fn recreate_group(&mut self, error: &anyhow::Error, shutdown: &CancellationToken) {
        let (stream, group) = (&self.settings.stream, &self.settings.group);
        tracing::warn!(consumer = %self.name, %stream, %group,
            "consumer group is gone ({error:#}); re-creating it at 0");
        let result = match self.conn.as_mut() {
            Some(conn) => conn.ensure_group(stream, group, "0").await.map(|_| ()),
            None => Ok(()), // reconnecting first; the next read finds out again
        };
        if let Err(error) = result {
            self.redis_failed(&error, shutdown).await;
        }
    }

    /// Logs a Redis failure, drops the connection and backs off before retrying.
    async fn redis_failed(&mut self, error: &anyhow::Error, shutdown: &CancellationToken) {
        tracing::warn!(consumer = %self.name, stream = %self.settings.stream,
            "redis error, retrying in {} ms: {error:#}", self.backoff.as_millis());
        self.conn = None;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(self.backoff) => {}
        }
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}
