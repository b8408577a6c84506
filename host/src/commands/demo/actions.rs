//! Every action the dashboard offers besides reading the state: consumers
//! added, removed, crashed and told to claim; pending entries, replay and
//! trim of the stream; reset; dead letters requeued. Each checks its input
//! and says what was wrong ([`ActionError`]).

use crate::commands::demo::partitions::{id_of, oldest_pending};
use crate::commands::demo::{Demo, Group, MAX_BATCH};
use crate::commands::inspect::entry_json;
use crate::config::{RequeueConfig, Trim};
use crate::consumer::control::Control;
use crate::streams::PendingEntry;
use crate::supervise::deployment::Deployment;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long a claim request may wait for its consumer's loop.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(15);

/// A failed dashboard action: what the user did wrong, or what broke.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Bad input (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No such group, consumer or entry (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Redis or the host failed (HTTP 500).
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

/// What a dashboard action returns.
pub type Action<T> = std::result::Result<T, ActionError>;

/// A 400 answer: `message` says what was wrong.
pub(super) fn invalid<T>(message: impl Into<String>) -> Action<T> {
    Err(ActionError::Invalid(message.into()))
}

impl Demo {
    /// The group called `name`.
    fn group(&self, name: &str) -> Action<&Group> {
        self.groups
            .iter()
            .find(|g| g.config().settings.group == name)
            .ok_or_else(|| ActionError::NotFound(format!("no group {name:?} in this demo")))
    }

    /// Runs `f` on a group's deployment (fails once the demo is stopping).
    fn with_deployment<T>(&self, group: &str, f: impl FnOnce(&mut Deployment) -> Action<T>) -> Action<T> {
        let group = self.group(group)?;
        group.plugin.with(f).unwrap_or_else(|| Err(ActionError::Failed(anyhow::anyhow!("the demo is stopping"))))
    }

    /// Starts consumer `name` in `group`.
    pub fn add_consumer(&self, group: &str, name: &str) -> Action<Value> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return invalid(format!("consumer name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"));
        }
        self.with_deployment(group, |deployment| {
            if deployment.members().iter().any(|m| m.name == name) {
                return invalid(format!("consumer {name:?} already runs in group {group:?}"));
            }
            deployment.add_consumer(name).map_err(|e| ActionError::Invalid(format!("{e:#}")))?;
            tracing::info!(%group, consumer = %name, "consumer added from the dashboard");
            Ok(json!({"added": name, "group": group}))
        })
    }

    /// Stops consumer `name`, which hands its pending entries to a live peer
    /// (`XCLAIM`) and leaves the group (`XGROUP DELCONSUMER`).
    pub fn remove_consumer(&self, group: &str, name: &str) -> Action<Value> {
        self.with_deployment(group, |deployment| {
            if deployment.partitioned() {
                // Its partitions would go unread: each has one reader here.
                return invalid("a partitioned stream's consumers are set at start: none can be removed");
            }
            if !deployment.remove_consumer(name) {
                return Err(ActionError::NotFound(format!("no consumer {name:?} runs in group {group:?}")));
            }
            tracing::info!(%group, consumer = %name, "consumer removed from the dashboard: handing its pending entries over");
            Ok(json!({"removed": name, "group": group}))
        })
    }

    /// The controls of consumer `name` of `group`: one, or on a partitioned
    /// stream one per partition it reads.
    fn controls(&self, group: &str, name: &str) -> Action<Vec<Arc<Control>>> {
        self.with_deployment(group, |deployment| {
            let controls: Vec<_> =
                deployment.members().iter().filter(|m| m.name == name).map(|m| m.control.clone()).collect();
            if controls.is_empty() {
                return Err(ActionError::NotFound(format!("no consumer {name:?} runs in group {group:?}")));
            }
            Ok(controls)
        })
    }

    /// Makes consumer `name` drop its next `count` deliveries unacked.
    pub fn crash(&self, group: &str, name: &str, count: u32) -> Action<Value> {
        if count == 0 || count > 1000 {
            return invalid(format!("count must be 1..=1000, got {count}"));
        }
        let controls = self.controls(group, name)?;
        for control in &controls {
            control.crash_next(count);
        }
        tracing::warn!(%group, consumer = %name, "crash drill: the next {count} deliveries will be dropped unacked");
        Ok(
            json!({"consumer": name, "group": group, "crash_due": controls.iter().map(|c| c.crashes_due()).sum::<u32>()}),
        )
    }

    /// Has consumer `name` claim every entry of its group idle for
    /// `--claim-idle-ms` (`XAUTOCLAIM`) and handle them; returns how many.
    pub async fn claim(&self, group: &str, name: &str) -> Action<Value> {
        let replies: Vec<_> = self.controls(group, name)?.iter().map(|control| control.request_claim()).collect();
        let mut claimed = 0;
        for reply in replies {
            claimed += match tokio::time::timeout(CLAIM_TIMEOUT, reply).await {
                Ok(Ok(Ok(n))) => n,
                Ok(Ok(Err(error))) => return Err(ActionError::Failed(anyhow::anyhow!("claim failed: {error}"))),
                Ok(Err(_)) => {
                    return Err(ActionError::Failed(anyhow::anyhow!("consumer {name} stopped before claiming")));
                }
                Err(_) => {
                    return Err(ActionError::Failed(anyhow::anyhow!("consumer {name} did not claim within 15 s")));
                }
            };
        }
        Ok(json!({"consumer": name, "group": group, "claimed": claimed,
            "min_idle_ms": self.config.claim_idle.as_millis() as u64}))
    }

    /// A group's pending entries (`XPENDING … - + count`), oldest first.
    pub async fn pending(&self, group: &str, count: usize) -> Action<Vec<PendingEntry>> {
        self.group(group)?;
        let mut entries = Vec::new();
        for stream in self.streams() {
            entries.extend(self.admin().pending(&stream, group, None, count.clamp(1, MAX_BATCH)).await?);
        }
        Ok(oldest_pending(entries, count.clamp(1, MAX_BATCH)))
    }

    /// `XRANGE stream from to COUNT count`.
    pub async fn replay(&self, from: &str, to: &str, count: usize) -> Action<Value> {
        if count == 0 || count > MAX_BATCH {
            return invalid(format!("count must be 1..={MAX_BATCH}, got {count}"));
        }
        let mut entries = Vec::new();
        for stream in self.streams() {
            entries.extend(self.admin().range(&stream, from, to, Some(count)).await.map_err(|e| {
                ActionError::Invalid(format!("{e:#} (ids look like 1700000000000-0, or - and + for the ends)"))
            })?);
        }
        entries.sort_by_key(|e| id_of(&e.id));
        entries.truncate(count);
        Ok(json!({"from": from, "to": to, "entries": entries.iter().map(entry_json).collect::<Vec<_>>()}))
    }

    /// `XTRIM stream MAXLEN|MINID ~ threshold`; returns how many went and the new length.
    pub async fn trim(&self, trim: Trim) -> Action<Value> {
        let mut conn = self.admin();
        let (mut trimmed, mut length) = (0, 0);
        for stream in self.streams() {
            trimmed += conn.trim(&stream, &trim, false).await.map_err(|e| ActionError::Invalid(format!("{e:#}")))?;
            length += conn.length(&stream).await?;
        }
        Ok(json!({"trimmed": trimmed, "length": length}))
    }

    /// Deletes the stream and its dead letters and re-creates both groups
    /// at the start; consumers keep running, their counters start over.
    pub async fn reset(&self) -> Action<Value> {
        let groups: Vec<&str> = self.groups.iter().map(|g| g.config().settings.group.as_str()).collect();
        for (stream, dead_letter) in self.dead_letters_of() {
            let also = super::reset_keys(&stream, &dead_letter);
            self.admin().recreate(&stream, &also.iter().map(String::as_str).collect::<Vec<_>>(), &groups).await?;
        }
        if self.config.partitions.is_some() {
            // The notifier's counts of every partition (one server only).
            self.admin().recreate(&super::notifier_stats_key(&self.config.stream), &[], &[]).await?;
        }
        self.sink.clear();
        for group in &self.groups {
            for local in self.locals(group) {
                local.control.reset_stats();
            }
        }
        tracing::info!(stream = %self.config.stream, "reset from the dashboard: stream, groups and dead letters start over");
        Ok(json!({"reset": self.config.stream}))
    }

    /// Moves dead letters (`ids`, or all when empty) back onto the stream
    /// (each partition's onto its partition).
    pub async fn requeue(&self, ids: Vec<String>) -> Action<Value> {
        let (mut report, mut missing) = (String::new(), ids.clone());
        for (stream, dead_letter) in self.dead_letters_of() {
            let mut here = Vec::new();
            for id in &ids {
                if !self.admin().range(&dead_letter, id, id, Some(1)).await?.is_empty() {
                    here.push(id.clone());
                }
            }
            if !ids.is_empty() && here.is_empty() {
                continue;
            }
            missing.retain(|id| !here.contains(id));
            let config = RequeueConfig {
                redis_url: self.redis.raw_url().to_string(),
                dead_letter,
                stream,
                ids: here,
                partitions: None,
                rate: None,
                through: None,
            };
            report.push_str(&crate::commands::redrive::dlq_requeue(&config).await?);
        }
        if let Some(id) = missing.first() {
            return Err(ActionError::NotFound(format!("no entry {id} in the dead-letter stream")));
        }
        let requeued = report.lines().filter(|l| l.starts_with("requeued ") && l.contains(" as ")).count();
        Ok(json!({"requeued": requeued, "report": report}))
    }
}

/// Checks a trim request: exactly one of `maxlen` and `minid`.
pub fn trim_of(maxlen: Option<u64>, minid: Option<String>) -> Action<Trim> {
    match (maxlen, minid) {
        (Some(n), None) => Ok(Trim::MaxLen(n)),
        (None, Some(id)) if !id.trim().is_empty() => Ok(Trim::MinId(id.trim().to_string())),
        _ => invalid("give exactly one of maxlen (a number) and minid (an entry id)"),
    }
}
