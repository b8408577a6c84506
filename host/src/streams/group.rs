//! A consumer's commands on its group: make sure the group exists, read
//! (history and claims; new entries come through [`super::Reader`]), look up
//! delivery counts, acknowledge. What `consumer/` and `supervise/` use;
//! the script-backed writes (leases, handover, dead letters) are in
//! `scripts.rs`.

use super::Connection;
use super::reply::{self, Batch};
use crate::effects::Effect;
use anyhow::{Context, Result};
use redis::Value;
use std::time::Duration;

impl Connection {
    /// Fails with a message saying what to do unless `key` is a stream or absent.
    pub async fn expect_stream_or_none(&mut self, key: &str, role: &str) -> Result<()> {
        match self.key_type(key).await?.as_str() {
            "stream" | "none" => Ok(()),
            other => anyhow::bail!(
                "the {role} key {key:?} holds a {other}, not a stream: delete it (DEL {key}) or choose another key"
            ),
        }
    }

    /// `TYPE key`: "none", "stream", "string", …
    pub async fn key_type(&mut self, key: &str) -> Result<String> {
        redis::cmd("TYPE").arg(key).query_async(&mut self.conn).await.with_context(|| format!("TYPE {key:?} failed"))
    }

    /// `XGROUP CREATE stream group start MKSTREAM`; an existing group is fine.
    /// Returns whether the group was created.
    pub async fn ensure_group(&mut self, stream: &str, group: &str, start_id: &str) -> Result<bool> {
        let reply: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg(start_id)
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match reply {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
            Err(e) => Err(e).with_context(|| {
                format!("cannot create consumer group {group:?} on stream {stream:?} at {start_id:?}")
            }),
        }
    }

    /// `XREADGROUP GROUP g c COUNT n STREAMS stream AFTER`: `consumer`'s own
    /// pending entries with ids above `after` (history read). Trimmed entries
    /// come back as ids only. Delivery counts are unknown here (0).
    pub async fn read_own_pending(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        after: &str,
        count: usize,
    ) -> Result<Batch> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count).arg("STREAMS").arg(stream).arg(after);
        let reply = self
            .entries_reply(&cmd)
            .await
            .with_context(|| format!("XREADGROUP {after} on stream {stream:?} group {group:?} failed"))?;
        reply::read_reply(reply, 0).with_context(|| format!("unexpected XREADGROUP reply on stream {stream:?}"))
    }

    /// `XAUTOCLAIM stream group consumer min-idle cursor COUNT n`: claims up
    /// to `count` entries idle for at least `min_idle` to `consumer`. Returns
    /// the next cursor (`0-0` when the scan is complete) and the batch
    /// (delivery counts unknown: 0; trimmed ids already removed from the PEL).
    pub async fn autoclaim(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Batch)> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(stream).arg(group).arg(consumer).arg(min_idle.as_millis() as u64).arg(cursor).arg("COUNT").arg(count);
        let reply = self
            .entries_reply(&cmd)
            .await
            .with_context(|| format!("XAUTOCLAIM on stream {stream:?} group {group:?} failed"))?;
        reply::autoclaim_reply(reply).with_context(|| format!("unexpected XAUTOCLAIM reply on stream {stream:?}"))
    }

    /// Delivery counts of `ids` as Redis keeps them (`XPENDING s g id id 1`,
    /// pipelined); `None` for an id that is no longer pending.
    pub async fn delivery_counts(&mut self, stream: &str, group: &str, ids: &[&str]) -> Result<Vec<Option<u32>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING").arg(stream).arg(group).arg(*id).arg(*id).arg(1);
        }
        let rows: Vec<Vec<(String, String, u64, u64)>> = pipe
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XPENDING of {} entries on stream {stream:?} failed", ids.len()))?;
        Ok(rows.into_iter().map(|r| r.first().map(|row| row.3.min(u32::MAX as u64) as u32)).collect())
    }

    /// `XACK stream group id…`; returns how many entries Redis acknowledged.
    pub async fn ack(&mut self, stream: &str, group: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        redis::cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(ids)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XACK of {} entries on stream {stream:?} group {group:?} failed", ids.len()))
    }

    /// One pipeline of `writes` (plain commands, unfenced) and `XACK stream
    /// group id…`: the last step of `host bench --handler loop`.
    pub async fn write_then_ack(&mut self, writes: &[Effect], stream: &str, group: &str, ids: &[String]) -> Result<()> {
        let mut pipe = redis::pipe();
        push_writes(&mut pipe, writes);
        pipe.cmd("XACK").arg(stream).arg(group).arg(ids).ignore();
        let () = pipe.query_async(&mut self.conn).await.with_context(|| format!("XACK on stream {stream:?} failed"))?;
        Ok(())
    }

    /// `HGET key field`.
    pub async fn hash_field(&mut self, key: &str, field: &str) -> Result<Option<String>> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("HGET {key:?} failed"))
    }

    /// One pipeline of `writes` (plain commands, unfenced), `XACK stream
    /// group id…` (when there are ids) and `XREADGROUP GROUP g c COUNT n BLOCK
    /// ms STREAMS stream >`: the loop of a minimal hand-written consumer
    /// (`host bench --handler loop`).
    #[allow(clippy::too_many_arguments)]
    pub async fn ack_then_read(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        writes: &[Effect],
        ids: &[String],
        count: usize,
        block: Duration,
    ) -> Result<Batch> {
        let mut pipe = redis::pipe();
        push_writes(&mut pipe, writes);
        if !ids.is_empty() {
            pipe.cmd("XACK").arg(stream).arg(group).arg(ids).ignore();
        }
        pipe.cmd("XREADGROUP").arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count);
        pipe.arg("BLOCK").arg(block.as_millis() as u64).arg("STREAMS").arg(stream).arg(">");
        let (reply,): (Value,) = pipe
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XACK + XREADGROUP on stream {stream:?} group {group:?} failed"))?;
        reply::read_reply(reply, 1).with_context(|| format!("unexpected XREADGROUP reply on stream {stream:?}"))
    }
}

/// Adds `writes` to `pipe` as plain commands (no checks, no fencing), replies ignored.
fn push_writes(pipe: &mut redis::Pipeline, writes: &[Effect]) {
    for write in writes {
        match write {
            Effect::Emit { stream, fields, max_len } => {
                let cmd = pipe.cmd("XADD").arg(stream);
                if let Some(n) = max_len {
                    cmd.arg("MAXLEN").arg("~").arg(n);
                }
                cmd.arg("*");
                for (name, value) in fields {
                    cmd.arg(name).arg(value);
                }
            }
            Effect::Incr { key, field: Some(field), by } => {
                pipe.cmd("HINCRBY").arg(key).arg(field).arg(by);
            }
            Effect::Incr { key, field: None, by } => {
                pipe.cmd("INCRBY").arg(key).arg(by);
            }
            Effect::Set { key, field: Some(field), value, .. } => {
                pipe.cmd("HSET").arg(key).arg(field).arg(value);
            }
            Effect::Set { key, field: None, value, .. } => {
                pipe.cmd("SET").arg(key).arg(value);
            }
            Effect::Del { key, field: Some(field) } => {
                pipe.cmd("HDEL").arg(key).arg(field);
            }
            Effect::Del { key, field: None } => {
                pipe.cmd("DEL").arg(key);
            }
        }
        pipe.ignore();
    }
}

/// True when `error` says the consumer group (or its stream) no longer exists:
/// the key was deleted, or Redis restarted without persistence.
pub fn is_missing_group(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<redis::RedisError>().and_then(|e| e.code()) == Some("NOGROUP"))
}

/// Whether `error` can pass by itself (Redis unreachable, a dropped
/// connection, a timeout) rather than say something about the key or the
/// server that waiting does not change (WRONGTYPE, NOPERM, OOM, …).
pub fn is_transient(error: &anyhow::Error) -> bool {
    match error.chain().find_map(|cause| cause.downcast_ref::<redis::RedisError>()) {
        Some(e) => e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout(),
        None => true,
    }
}
