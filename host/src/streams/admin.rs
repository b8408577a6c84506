//! Inspection and repair: stream, group and consumer info, pending
//! listings, ranges, trimming, starting a stream over, appending. What
//! `commands/` (inspect, produce, demo, bench) use; a leaving consumer also
//! lists its peers and its own pending entries here (`consumer/handover.rs`).

use super::reply;
use super::{Connection, ConsumerInfo, GroupInfo, PendingEntry, StreamInfo};
use crate::entry::Entry;
use anyhow::{Context, Result};
use redis::Value;
use std::time::Duration;

/// How a stream is trimmed (`host trim`, the demo's trim action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trim {
    /// Keep about (or exactly) this many newest entries.
    MaxLen(u64),
    /// Drop entries with ids below this one.
    MinId(String),
}

/// What `host demo`'s analytics panel compares, read at one instant.
#[derive(Debug, Default)]
pub struct TotalsSnapshot {
    /// The stream, as `XINFO STREAM` tells.
    pub info: StreamInfo,
    /// Its entries.
    pub entries: Vec<Entry>,
    /// The dead-letter stream's entries.
    pub dead: Vec<Entry>,
    /// The group, as `XINFO GROUPS` tells (none: no such group).
    pub group: Option<GroupInfo>,
    /// Ids pending in the group.
    pub pending: Vec<String>,
    /// The totals hash.
    pub totals: Vec<(String, i64)>,
    /// The `source` field of each entry of the paid stream.
    pub paid: Vec<Entry>,
}

impl Connection {
    /// Reads everything [`TotalsSnapshot`] holds in one `MULTI`, so the
    /// totals and the acks it compares belong to the same instant.
    pub async fn totals_snapshot(
        &mut self,
        stream: &str,
        group: &str,
        dlq: &str,
        totals: &str,
        paid: &str,
    ) -> Result<TotalsSnapshot> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XINFO").arg("STREAM").arg(stream);
        pipe.cmd("XRANGE").arg(stream).arg("-").arg("+");
        pipe.cmd("XRANGE").arg(dlq).arg("-").arg("+");
        pipe.cmd("XINFO").arg("GROUPS").arg(stream);
        pipe.cmd("XPENDING").arg(stream).arg(group).arg("-").arg("+").arg(100_000);
        pipe.cmd("HGETALL").arg(totals);
        pipe.cmd("XRANGE").arg(paid).arg("-").arg("+");
        type Replies = (Value, Value, Value, Value, Vec<(String, String, u64, u64)>, Vec<(String, i64)>, Value);
        let (info, entries, dead, groups, pending, totals, paid): Replies = pipe
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("reading the totals of {stream:?} failed"))?;
        Ok(TotalsSnapshot {
            info: reply::stream_info_reply(info)?,
            entries: reply::range_reply(entries)?,
            dead: reply::range_reply(dead)?,
            group: reply::groups_reply(groups)?.into_iter().find(|g| g.name == group),
            pending: pending.into_iter().map(|(id, ..)| id).collect(),
            totals,
            paid: reply::range_reply(paid)?,
        })
    }

    /// `XINFO STREAM stream`.
    pub async fn stream_info(&mut self, stream: &str) -> Result<StreamInfo> {
        let reply = self.xinfo(&["STREAM", stream]).await?;
        reply::stream_info_reply(reply)
    }

    /// `XINFO GROUPS stream`.
    pub async fn groups(&mut self, stream: &str) -> Result<Vec<GroupInfo>> {
        let reply = self.xinfo(&["GROUPS", stream]).await?;
        reply::groups_reply(reply)
    }

    /// `XINFO CONSUMERS stream group`.
    pub async fn consumers(&mut self, stream: &str, group: &str) -> Result<Vec<ConsumerInfo>> {
        let reply = self.xinfo(&["CONSUMERS", stream, group]).await?;
        reply::consumers_reply(reply)
    }

    /// `XINFO ARGS…`, the raw reply; the error names the command.
    async fn xinfo(&mut self, args: &[&str]) -> Result<Value> {
        redis::cmd("XINFO").arg(args).query_async(&mut self.conn).await.with_context(|| {
            format!("XINFO {} failed", args.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" "))
        })
    }

    /// Extended `XPENDING stream group - + count [consumer]`, oldest first.
    pub async fn pending(
        &mut self,
        stream: &str,
        group: &str,
        consumer: Option<&str>,
        count: usize,
    ) -> Result<Vec<PendingEntry>> {
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(stream).arg(group).arg("-").arg("+").arg(count);
        if let Some(consumer) = consumer {
            cmd.arg(consumer);
        }
        let rows: Vec<(String, String, u64, u64)> = cmd
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XPENDING on stream {stream:?} group {group:?} failed"))?;
        Ok(rows
            .into_iter()
            .map(|(id, consumer, idle_ms, deliveries)| PendingEntry { id, consumer, idle_ms, deliveries })
            .collect())
    }

    /// `XPENDING stream group` summary: total and per-consumer counts.
    pub async fn pending_summary(&mut self, stream: &str, group: &str) -> Result<(u64, Vec<(String, u64)>)> {
        type Summary = (u64, Value, Value, Option<Vec<(String, String)>>);
        let (total, _min, _max, per_consumer): Summary = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XPENDING on stream {stream:?} group {group:?} failed"))?;
        let per_consumer =
            per_consumer.unwrap_or_default().into_iter().map(|(name, n)| (name, n.parse().unwrap_or(0))).collect();
        Ok((total, per_consumer))
    }

    /// `XRANGE stream start end [COUNT n]`.
    pub async fn range(&mut self, stream: &str, start: &str, end: &str, count: Option<usize>) -> Result<Vec<Entry>> {
        self.range_with("XRANGE", stream, start, end, count).await
    }

    /// `XREVRANGE stream + - COUNT n`: the newest `count` entries, newest first.
    pub async fn latest(&mut self, stream: &str, count: usize) -> Result<Vec<Entry>> {
        self.range_with("XREVRANGE", stream, "+", "-", Some(count)).await
    }

    /// `XRANGE` or `XREVRANGE stream start end [COUNT n]`.
    async fn range_with(
        &mut self,
        command: &str,
        stream: &str,
        start: &str,
        end: &str,
        count: Option<usize>,
    ) -> Result<Vec<Entry>> {
        let mut cmd = redis::cmd(command);
        cmd.arg(stream).arg(start).arg(end);
        if let Some(n) = count {
            cmd.arg("COUNT").arg(n);
        }
        let reply = self.entries_reply(&cmd).await.with_context(|| format!("{command} on stream {stream:?} failed"))?;
        reply::range_reply(reply).with_context(|| format!("unexpected {command} reply on stream {stream:?}"))
    }

    /// `XREAD [COUNT n] BLOCK ms STREAMS stream after`: entries newer than
    /// `after`, no group involved (empty after the block time).
    pub async fn read_after(&mut self, stream: &str, after: &str, count: usize, block: Duration) -> Result<Vec<Entry>> {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(after)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XREAD on stream {stream:?} failed"))?;
        Ok(reply::read_reply(reply, 0)?.entries)
    }

    /// `HGETALL key` with integer values (a field that is not one is left out).
    pub async fn hash_counts(&mut self, key: &str) -> Result<std::collections::BTreeMap<String, i64>> {
        let all: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("HGETALL {key:?} failed"))?;
        Ok(all.into_iter().filter_map(|(field, value)| Some((field, value.parse().ok()?))).collect())
    }

    /// `XLEN stream` (0 when it does not exist).
    pub async fn length(&mut self, stream: &str) -> Result<u64> {
        redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XLEN {stream:?} failed"))
    }

    /// `XTRIM stream MAXLEN|MINID [~] threshold`; returns how many entries went.
    pub async fn trim(&mut self, stream: &str, trim: &Trim, exact: bool) -> Result<u64> {
        let mut cmd = redis::cmd("XTRIM");
        cmd.arg(stream);
        match trim {
            Trim::MaxLen(n) => cmd.arg("MAXLEN").arg(if exact { "=" } else { "~" }).arg(*n),
            Trim::MinId(id) => cmd.arg("MINID").arg(if exact { "=" } else { "~" }).arg(id),
        };
        cmd.query_async(&mut self.conn).await.with_context(|| format!("XTRIM on stream {stream:?} failed"))
    }

    /// Starts a stream over in one atomic step (MULTI/EXEC): `DEL` of the
    /// stream and of `also` (its dead letters), then `XGROUP CREATE … 0
    /// MKSTREAM` for each group, so its consumers never see it missing.
    pub async fn recreate(&mut self, stream: &str, also: &[&str], groups: &[&str]) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(stream).arg(also).ignore();
        for group in groups {
            pipe.cmd("XGROUP").arg("CREATE").arg(stream).arg(*group).arg("0").arg("MKSTREAM").ignore();
        }
        let () =
            pipe.query_async(&mut self.conn).await.with_context(|| format!("reset of stream {stream:?} failed"))?;
        Ok(())
    }

    /// Replaces entry `id` of `stream` by a new one with `fields`, in one
    /// script: `XDEL` first, and `XADD` only if it deleted the old one
    /// (someone may have requeued it meanwhile). The new id, or none.
    pub async fn replace_entry(
        &mut self,
        stream: &str,
        id: &str,
        fields: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Option<String>> {
        static REPLACE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end \
                 return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))",
            )
        });
        let mut invocation = REPLACE.prepare_invoke();
        invocation.key(stream).arg(id);
        for (name, value) in fields {
            invocation.arg(name).arg(value);
        }
        invocation.invoke_async(&mut self.conn).await.with_context(|| format!("replacing {id} in {stream:?} failed"))
    }

    /// `INCR key`: the new value.
    pub async fn increment(&mut self, key: &str) -> Result<u64> {
        redis::cmd("INCR").arg(key).query_async(&mut self.conn).await.with_context(|| format!("INCR {key:?} failed"))
    }

    /// Deletes every key matching `pattern` (`SCAN … MATCH`, then `DEL`);
    /// returns how many. For the demo's reset, on one server.
    pub async fn delete_matching(&mut self, pattern: &str) -> Result<u64> {
        let (mut cursor, mut deleted) = (0u64, 0u64);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn)
                .await
                .with_context(|| format!("SCAN MATCH {pattern:?} failed"))?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut self.conn).await.context("DEL failed")?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// `XADD stream [MAXLEN ~ n] * field value…`; returns the new entry id.
    pub async fn add(&mut self, stream: &str, maxlen: Option<u64>, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<String> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream);
        if let Some(n) = maxlen {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg("*");
        for (name, value) in fields {
            cmd.arg(name).arg(value);
        }
        cmd.query_async(&mut self.conn).await.with_context(|| format!("XADD to stream {stream:?} failed"))
    }

    /// One pipeline of `XADD stream * field value…`, one per entry.
    pub async fn add_batch(&mut self, stream: &str, entries: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Result<()> {
        let mut pipe = redis::pipe();
        for fields in entries {
            let cmd = pipe.cmd("XADD").arg(stream).arg("*");
            for (name, value) in fields {
                cmd.arg(name).arg(value);
            }
            cmd.ignore();
        }
        let () = pipe
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XADD of {} entries to stream {stream:?} failed", entries.len()))?;
        Ok(())
    }
}
