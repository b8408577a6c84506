//! What the dashboard shows: the state document (stream, tail, groups and
//! their consumers, pending entries, plugins, dead letters) and the plugins
//! panel, with each plugin's load and last reload as the supervisor
//! reported them.

use crate::commands::demo::actions::Action;
use crate::commands::demo::orders::{KINDS, ORDER_TYPES};
use crate::commands::demo::partitions::{add_consumers, add_group, add_info, newest, oldest_pending};
use crate::commands::demo::{Demo, MAX_BATCH};
use crate::commands::inspect::{entry_json, text_json};
use crate::consumer::control::{LastError, State};
use crate::dead_letter::DeadLetter;
use crate::streams::StreamInfo;
use crate::supervise::deployment::Member;
use crate::supervise::reload::Reload;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::SystemTime;

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A plugin's history in this demo.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PluginStatus {
    loaded_at_ms: u64,
    reload: Option<ReloadStatus>,
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, Serialize)]
struct ReloadStatus {
    ok: bool,
    message: String,
    at_ms: u64,
}

impl PluginStatus {
    /// A plugin loaded just now.
    pub(super) fn loaded_now() -> Self {
        PluginStatus { loaded_at_ms: now_ms(), reload: None }
    }

    /// Notes what a reload did (a file holding the version serving changes nothing).
    pub(super) fn record(&mut self, outcome: &Reload) {
        let (ok, message) = match outcome {
            Reload::Same => return,
            Reload::Replaced { old } => (true, format!("replaced version {old}")),
            Reload::Failed(error) => (false, error.clone()),
        };
        if ok {
            self.loaded_at_ms = now_ms();
        }
        self.reload = Some(ReloadStatus { ok, message, at_ms: now_ms() });
    }
}

impl Demo {
    /// Everything the dashboard shows, in one document (a partitioned
    /// stream's partitions merged: `partitions.rs`).
    pub async fn state(&self) -> Action<Value> {
        let mut conn = self.admin();
        let streams = self.streams();
        let mut info = StreamInfo::default();
        let (mut latest, mut infos) = (Vec::new(), Vec::new());
        for stream in &streams {
            add_info(&mut info, &conn.stream_info(stream).await.unwrap_or_default());
            latest.extend(conn.latest(stream, 12).await?);
            infos.push(conn.groups(stream).await.unwrap_or_default());
        }
        let tail: Vec<Value> = newest(latest, 12).iter().map(entry_json).collect();
        let mut groups = Vec::new();
        for group in &self.groups {
            let name = &group.config().settings.group;
            let (mut info, mut redis_consumers, mut pending) = (None, Vec::new(), Vec::new());
            for (stream, stream_groups) in streams.iter().zip(&infos) {
                let Some(one) = stream_groups.iter().find(|g| &g.name == name) else { continue };
                add_group(&mut info, one);
                add_consumers(&mut redis_consumers, conn.consumers(stream, name).await?);
                pending.extend(conn.pending(stream, name, None, 50).await?);
            }
            let locals = self.locals(group);
            // A consumer reading several partitions: one task per partition.
            let local = |name: &str| locals.iter().filter(|l| l.name == name).collect::<Vec<_>>();
            let mut consumers: Vec<Value> = redis_consumers
                .iter()
                .map(|c| consumer_json(&c.name, Some((c.pending, c.idle_ms)), &local(&c.name)))
                .collect();
            let mut shown: Vec<&str> = redis_consumers.iter().map(|c| c.name.as_str()).collect();
            for member in &locals {
                if !shown.contains(&member.name.as_str()) {
                    shown.push(&member.name);
                    consumers.push(consumer_json(&member.name, None, &local(&member.name)));
                }
            }
            groups.push(json!({
                "name": name,
                "exists": info.is_some(),
                "last_delivered_id": info.as_ref().map(|g| g.last_delivered_id.clone()),
                "lag": info.as_ref().and_then(|g| g.lag),
                "pending": info.as_ref().map_or(0, |g| g.pending),
                "consumers": consumers,
                "pending_entries": oldest_pending(pending, 50),
            }));
        }
        let stream = &self.config.stream;
        Ok(json!({
            "time_ms": now_ms(),
            "settings": {
                "stream": stream,
                "redis": self.redis.shown_url(),
                "maxlen": self.config.maxlen,
                "claim_idle_ms": self.config.claim_idle.as_millis() as u64,
                "reap_interval_ms": self.config.reap_interval.as_millis() as u64,
                "kinds": ORDER_TYPES.iter().chain(KINDS.iter()).collect::<Vec<_>>(),
                "partitions": self.config.partitions,
            },
            "partitions": self.partitions().await?,
            "stream": info,
            "tail": tail,
            "groups": groups,
            "plugins": self.plugins(),
            "dead_letters": self.dead_letters(20).await?,
            "analytics": self.analytics().await.unwrap_or_else(|e| json!({"error": e.to_string()})),
            "notifications": self.notifications().await,
            "sessions": match &self.sessions {
                Some(sessions) => sessions.state().await.unwrap_or_else(|e| json!({"error": e.to_string()})),
                None => Value::Null,
            },
        }))
    }

    /// The plugins panel: per group, the plugin serving and how it fares.
    pub fn plugins(&self) -> Vec<Value> {
        self.groups
            .iter()
            .map(|group| {
                let current = group.plugin.current();
                let locals = self.locals(group);
                let (mut calls, mut errors, mut last_error): (u64, u64, Option<LastError>) = (0, 0, None);
                for member in &locals {
                    let s = member.control.stats();
                    calls += s.handled;
                    errors += s.retried + s.faulted + s.rejected;
                    if let Some(e) = member.control.last_error()
                        && last_error.as_ref().is_none_or(|l| l.at_ms < e.at_ms)
                    {
                        last_error = Some(e);
                    }
                }
                let status = group.status.lock().expect("plugin status lock").clone();
                json!({
                    "group": group.config().settings.group,
                    "file": group.config().plugin.display().to_string(),
                    "name": current.as_ref().map(|p| p.tag.name.clone()),
                    "version": current.as_ref().map(|p| p.tag.version.clone()),
                    "size": current.as_ref().map(|p| p.size),
                    "loaded_at_ms": status.loaded_at_ms,
                    "calls": calls,
                    "errors": errors,
                    "last_error": last_error,
                    "reload": status.reload,
                })
            })
            .collect()
    }

    /// The newest `count` dead letters (of every partition), newest first,
    /// and how many there are.
    pub async fn dead_letters(&self, count: usize) -> Action<Value> {
        let keys: Vec<String> = self.dead_letters_of().into_iter().map(|(_, dead_letter)| dead_letter).collect();
        let mut conn = self.admin();
        let (mut length, mut records) = (0, Vec::new());
        for key in &keys {
            length += conn.length(key).await?;
            records.extend(conn.latest(key, count.clamp(1, MAX_BATCH)).await?);
        }
        let mut entries = Vec::new();
        for entry in newest(records, count.clamp(1, MAX_BATCH)) {
            let dead = match DeadLetter::parse(entry) {
                Ok(dead) => dead,
                Err(error) => {
                    entries.push(json!({"error": format!("{error:#}")}));
                    continue;
                }
            };
            let meta: serde_json::Map<String, Value> =
                dead.meta.iter().map(|(k, v)| (k.trim_start_matches("dlq:").to_string(), json!(v))).collect();
            let fields: Vec<Value> = dead.fields.iter().map(|(n, v)| json!([text_json(n), text_json(v)])).collect();
            entries.push(json!({"id": dead.dead_id, "meta": meta, "fields": fields}));
        }
        let key = match self.config.partitions {
            Some(_) => crate::keys::partition_name(&crate::settings::dead_letter_key(&self.config.stream), 0)
                .replace("{0}", "{p}"),
            None => keys[0].clone(),
        };
        Ok(json!({"key": key, "length": length, "entries": entries}))
    }
}

/// A consumer as the page shows it: in Redis (pending, idle) and here (its
/// tasks, one per partition it reads, counted together).
fn consumer_json(name: &str, redis: Option<(u64, u64)>, local: &[&Member]) -> Value {
    let mut stats = crate::consumer::ConsumerStats::default();
    for member in local {
        stats += member.control.stats();
    }
    json!({
        "name": name,
        "in_redis": redis.is_some(),
        "pending": redis.map(|r| r.0),
        "idle_ms": redis.map(|r| r.1),
        "local": !local.is_empty(),
        "state": local.first().map_or(State::Stopped, |l| l.control.state()),
        "processed": stats.handled,
        "acked": stats.acked,
        "errors": stats.retried + stats.faulted + stats.rejected,
        "dead_lettered": stats.dead_lettered,
        "claimed": stats.claimed,
        "crash_due": local.iter().map(|l| l.control.crashes_due()).sum::<u32>(),
    })
}
