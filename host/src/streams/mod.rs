//! Every Redis command the host sends, with typed replies. The rest of the
//! code never builds a raw command.

pub mod local;
pub mod masked;
mod reader;
mod reply;
mod scripts;

pub use reader::Reader;
pub use reply::{Batch, ConsumerInfo, GroupInfo, PendingEntry, StreamInfo};
pub use scripts::{DeadLetterMode, DeadLettered, Deleted};

use crate::config::Trim;
use crate::entry::Entry;
use anyhow::{Context, Result, anyhow};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, RedisResult, Value};
use std::time::Duration;

/// Field/value pairs as Redis stores them.
pub type Fields = [(Vec<u8>, Vec<u8>)];

/// How long to wait for a TCP connection before calling Redis unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack on top of a blocking read's own timeout before a reply is overdue:
/// generous, because a busy Redis may be slow, but finite so a dead peer is
/// noticed and the connection replaced.
const REPLY_SLACK: Duration = Duration::from_secs(10);

/// Where Redis is: a parsed URL that opens connections.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    /// The URL as given.
    url: String,
    /// The URL with any password masked, for messages.
    shown_url: String,
}

impl Redis {
    /// Parses `url`; fails with a message naming it when it is not a Redis URL.
    pub fn open(url: &str) -> Result<Self> {
        let shown_url = masked::url(url);
        let client = redis::Client::open(url)
            .map_err(|e| anyhow!("invalid Redis URL {shown_url:?}: {e} (expected redis://HOST:PORT[/DB])"))?;
        Ok(Redis { client, url: url.to_string(), shown_url })
    }

    /// The URL as given (with any password): for handing on, never for printing.
    pub fn raw_url(&self) -> &str {
        &self.url
    }

    /// The URL, password masked.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Opens a dedicated connection. `block` is the longest blocking read the
    /// connection will make, so replies may legitimately take that long.
    pub async fn connect(&self, block: Duration) -> Result<Connection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + REPLY_SLACK));
        let conn = self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| {
            anyhow!("cannot reach Redis at {}: {e} (is redis-server running? set --redis or REDIS_URL)", self.shown_url)
        })?;
        Ok(Connection { conn })
    }

    /// Opens a connection for a consumer's reads of new entries (the hot
    /// path: its replies skip redis-rs's parser, see [`Reader`]).
    pub async fn reader(&self) -> Result<Reader> {
        Reader::open(self.client.get_connection_info(), &self.shown_url).await
    }
}

/// Shows the URL masked: the raw one is never printed, not even by `{:?}`.
impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("url", &self.shown_url).finish_non_exhaustive()
    }
}

/// One connection to Redis. Blocking reads hold it, so each consumer has its own.
#[derive(Clone)]
pub struct Connection {
    conn: MultiplexedConnection,
}

impl Connection {
    /// `PING`: whether the server answers.
    pub async fn ping(&mut self) -> Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn).await.context("PING failed")?;
        Ok(())
    }

    /// One pipeline of `XACK stream group id…` (when there are ids) and
    /// `XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS stream >`: the loop of
    /// a minimal hand-written consumer (`host bench --handler loop`).
    pub async fn ack_then_read(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
        count: usize,
        block: Duration,
    ) -> Result<Batch> {
        let mut pipe = redis::pipe();
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

    /// Sends a command that answers with entries (XREADGROUP, XAUTOCLAIM,
    /// XRANGE) and returns its reply as parsed. Not `Cmd::query_async`: that
    /// first walks and rebuilds the whole reply looking for nested errors
    /// (`Value::extract_error`): ~9 values per entry moved for nothing, ~900
    /// instructions per entry by callgrind. These commands can only fail as a
    /// whole, with a top-level error.
    async fn entries_reply(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self.conn.req_packed_command(cmd).await? {
            Value::ServerError(error) => Err(error.into()),
            reply => Ok(reply),
        }
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
        self.read_group(stream, group, consumer, count, None, after, 0).await
    }

    /// The one `XREADGROUP`: new entries (`>`, blocking) or history (an id).
    #[allow(clippy::too_many_arguments)]
    async fn read_group(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
        from: &str,
        delivery_count: u32,
    ) -> Result<Batch> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(stream).arg(from);
        let reply = self
            .entries_reply(&cmd)
            .await
            .with_context(|| format!("XREADGROUP {from} on stream {stream:?} group {group:?} failed"))?;
        reply::read_reply(reply, delivery_count)
            .with_context(|| format!("unexpected XREADGROUP reply on stream {stream:?}"))
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

    /// `XINFO CONSUMERS stream group`.
    pub async fn consumers(&mut self, stream: &str, group: &str) -> Result<Vec<ConsumerInfo>> {
        let reply = self.xinfo(&["CONSUMERS", stream, group]).await?;
        reply::consumers_reply(reply)
    }

    /// `TYPE key`: "none", "stream", "string", …
    pub async fn key_type(&mut self, key: &str) -> Result<String> {
        redis::cmd("TYPE").arg(key).query_async(&mut self.conn).await.with_context(|| format!("TYPE {key:?} failed"))
    }

    /// Fails with a message saying what to do unless `key` is a stream or absent.
    pub async fn expect_stream_or_none(&mut self, key: &str, role: &str) -> Result<()> {
        match self.key_type(key).await?.as_str() {
            "stream" | "none" => Ok(()),
            other => anyhow::bail!(
                "the {role} key {key:?} holds a {other}, not a stream: delete it (DEL {key}) or choose another key"
            ),
        }
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

    /// `XINFO ARGS…`, the raw reply; the error names the command.
    async fn xinfo(&mut self, args: &[&str]) -> Result<Value> {
        redis::cmd("XINFO").arg(args).query_async(&mut self.conn).await.with_context(|| {
            format!("XINFO {} failed", args.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" "))
        })
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

    /// `XRANGE stream start end [COUNT n]`.
    pub async fn range(&mut self, stream: &str, start: &str, end: &str, count: Option<usize>) -> Result<Vec<Entry>> {
        self.range_with("XRANGE", stream, start, end, count).await
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

    /// `XREVRANGE stream + - COUNT n`: the newest `count` entries, newest first.
    pub async fn latest(&mut self, stream: &str, count: usize) -> Result<Vec<Entry>> {
        self.range_with("XREVRANGE", stream, "+", "-", Some(count)).await
    }

    /// `XLEN stream` (0 when it does not exist).
    pub async fn length(&mut self, stream: &str) -> Result<u64> {
        redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XLEN {stream:?} failed"))
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
}

/// True when `error` says the consumer group (or its stream) no longer exists:
/// the key was deleted, or Redis restarted without persistence.
pub fn is_missing_group(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<redis::RedisError>().and_then(|e| e.code()) == Some("NOGROUP"))
}
