//! Stream ownership mode's commands on an owned data stream's group, each
//! one Lua script guarded by the stream's lease ([`super::leases::FENCE`]):
//! adopting the stream, reading it, redelivering a held-back entry, acking
//! (finishing the assignment, and the leases themselves: `leases.rs`). A worker whose lease is gone gets a
//! `DISOWNED` error from Redis ([`is_disowned`]) and nothing is done, so a
//! stalled worker that wakes up cannot act on a stream it no longer owns.
//! (Dead letters and effect commits take the same guard: `scripts.rs`,
//! `commit.rs`.) Reads are fenced too: a read moves entries into the
//! reader's pending list, which would hide them from the new owner.

use super::Connection;
use super::leases::FENCE;
use super::reply::{self, Batch};
use anyhow::{Context, Result, bail};
use redis::{Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// Adopts a data stream: KEYS = lease, stream, its adoption marker; ARGV
/// = lease holder, group, consumer. Fenced. A missing stream was deleted
/// if it was adopted before (the marker, deleted when its assignment is
/// finished): then 'gone'; else it is yet to come (an assignment may come
/// before the stream's first entry): it is made, empty. A key of another
/// type is a `WRONGTYPE` error. Then: marks the stream adopted, creates
/// the group at 0 if missing, moves every entry pending in it to the
/// consumer without counting a delivery (`XAUTOCLAIM … JUSTID`: the
/// previous owner's entries in hand), forgets the consumers left with
/// nothing pending, and returns `{'ok', trimmed}` (the pending ids Redis
/// dropped, their payload trimmed), or `{'ended', trimmed}` when the
/// stream ended already (its newest entry an end marker, delivered and
/// acked: a second assignment of a finished stream).
static ADOPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FENCE}{}",
        r#"
local bad = fence(KEYS[1], ARGV[1])
if bad then return bad end
local t = redis.call('TYPE', KEYS[2])['ok']
if t == 'none' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 'gone' end
elseif t ~= 'stream' then
  return redis.error_reply('WRONGTYPE the data stream key ' .. KEYS[2] .. ' holds a ' .. t .. ', not a stream')
end
redis.call('SET', KEYS[3], '1')
redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[2], '0', 'MKSTREAM')
local trimmed, cursor = {}, '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, cursor, 'COUNT', 1000, 'JUSTID')
  cursor = r[1]
  for _, id in ipairs(r[3] or {}) do trimmed[#trimmed + 1] = id end
until cursor == '0-0'
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[2], ARGV[2])) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name ~= ARGV[3] and pending == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], name) end
end
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if newest and redis.call('XPENDING', KEYS[2], ARGV[2])[1] == 0 then
  local ended = false
  for i = 1, #newest[2], 2 do
    if newest[2][i] == 'lbs-end' then ended = true end
  end
  if ended then
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
      local name, last
      for i = 1, #g, 2 do
        if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
      end
      if name == ARGV[2] and last == newest[1] then return {'ended', trimmed} end
    end
  end
end
return {'ok', trimmed}
"#
    ))
});

/// Reads an owned stream: KEYS = lease, stream; ARGV = lease holder,
/// group, count, from (`0`: the consumer's pending entries again, each
/// delivery counted; `>`: new ones), consumer. Fenced. Returns 'gone' (no stream), 'nogroup'
/// (the stream was deleted and made again), or `{reply, counts}`: the
/// XREADGROUP reply and, for a read of pending entries, each one's id and
/// delivery count (a new entry's is 1); `{false, {}, newest}` when there is
/// nothing new, with the newest entry's id (`0-0`: none).
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FENCE}{}",
        r#"
local bad = fence(KEYS[1], ARGV[1])
if bad then return bad end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'gone' end
local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[2], ARGV[5], 'COUNT', ARGV[3], 'STREAMS', KEYS[2], ARGV[4])
if not ok then
  if string.find(tostring(reply.err or reply), 'NOGROUP', 1, true) then return 'nogroup' end
  return redis.error_reply(tostring(reply.err or reply))
end
if not reply then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  return {false, {}, newest[1] and newest[1][1] or '0-0'}
end
local entries = reply[1][2]
local counts = {}
if ARGV[4] ~= '>' and #entries > 0 then
  local rows = redis.call('XPENDING', KEYS[2], ARGV[2], entries[1][1], entries[#entries][1], #entries, ARGV[5])
  for _, row in ipairs(rows) do
    counts[#counts + 1] = row[1]
    counts[#counts + 1] = row[4]
  end
end
return {reply, counts}
"#
    ))
});

/// Redelivers the head entry held back for a retry: KEYS = lease, stream;
/// ARGV = lease holder, group, id, consumer. Fenced. `XCLAIM … 0 id` (a delivery counted);
/// returns `{reply, count}`, the reply empty when the entry is no longer
/// pending (its payload trimmed: Redis dropped it).
static REDELIVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FENCE}{}",
        r#"
local bad = fence(KEYS[1], ARGV[1])
if bad then return bad end
local claimed = redis.call('XCLAIM', KEYS[2], ARGV[2], ARGV[4], 0, ARGV[3])
local count = 0
if #claimed > 0 then
  local row = redis.call('XPENDING', KEYS[2], ARGV[2], ARGV[3], ARGV[3], 1)
  if #row == 1 then count = row[1][4] end
end
return {claimed, count}
"#
    ))
});

/// Acks entries of an owned stream: KEYS = lease, stream; ARGV = lease
/// holder, group, ids. Fenced. Returns how many were acked.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FENCE}{}",
        r#"
local bad = fence(KEYS[1], ARGV[1])
if bad then return bad end
return redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 3))
"#
    ))
});

/// Ids acked per script call: well under Lua's `unpack` limit.
const ACK_CHUNK: usize = 1000;

/// Whether `error` is a fenced write refused because the lease is gone.
pub fn is_disowned(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<redis::RedisError>().and_then(|e| e.code()) == Some("DISOWNED"))
}

/// What adopting or reading an owned stream found.
#[derive(Debug)]
pub enum Owned {
    /// Entries, with their delivery counts (and trimmed ids, history only).
    Read(Batch),
    /// The stream does not exist (never made, or deleted): it is finished.
    Gone,
    /// The stream exists but its group does not: it was deleted and made again.
    NoGroup,
    /// The stream ended already (adopting it: a second assignment of it).
    Ended(Vec<String>),
    /// Nothing new; the id of the newest entry (`0-0`: none), to wait after.
    Dry(String),
}

impl Connection {
    /// Adopts owned stream `stream` for `consumer` while `fence` (lease
    /// key, holder) holds ([`ADOPT`]): `Read` with only the trimmed ids
    /// when ready, `Gone` (deleted) or `Ended`.
    pub async fn adopt(
        &mut self,
        (lease, holder): (&str, &str),
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Owned> {
        let reply: Value = ADOPT
            .key(lease)
            .key(stream)
            .key(crate::keys::companion(stream, "adopted"))
            .arg(holder)
            .arg(group)
            .arg(consumer)
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("adopting stream {stream:?} failed"))?;
        let (status, trimmed): (String, Vec<String>) = match reply {
            Value::BulkString(s) if s == b"gone" => return Ok(Owned::Gone),
            other => redis::from_redis_value(other).context("unexpected adopt reply")?,
        };
        match status.as_str() {
            "ended" => Ok(Owned::Ended(trimmed)),
            "ok" => Ok(Owned::Read(Batch { entries: Vec::new(), trimmed })),
            other => bail!("unexpected adopt reply {other:?}"),
        }
    }

    /// Reads up to `count` entries of owned stream `stream` for `consumer`
    /// while `fence` holds ([`READ`]): `from` `0` for its pending entries,
    /// `>` for new ones.
    pub async fn read_owned(
        &mut self,
        (lease, holder): (&str, &str),
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        from: &str,
    ) -> Result<Owned> {
        let mut invocation = READ.prepare_invoke();
        invocation.key(lease).key(stream).arg(holder).arg(group).arg(count).arg(from).arg(consumer);
        let reply: Value = invocation
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("reading owned stream {stream:?} failed"))?;
        let (reply, counts) = match reply {
            Value::BulkString(s) if s == b"gone" => return Ok(Owned::Gone),
            Value::BulkString(s) if s == b"nogroup" => return Ok(Owned::NoGroup),
            Value::Array(mut parts) if parts.len() == 3 => {
                return Ok(Owned::Dry(reply::string(parts.pop().expect("three parts"))?));
            }
            Value::Array(mut parts) if parts.len() == 2 => {
                let counts = parts.pop().expect("two parts");
                (parts.pop().expect("two parts"), counts)
            }
            other => bail!("unexpected owned read reply on {stream:?}: {other:?}"),
        };
        let mut batch = reply::read_reply(reply, 1).with_context(|| format!("unexpected read reply on {stream:?}"))?;
        let counts: Vec<(String, u64)> = redis::from_redis_value(counts).context("unexpected delivery counts")?;
        if !counts.is_empty() {
            let counts: std::collections::HashMap<String, u64> = counts.into_iter().collect();
            for entry in &mut batch.entries {
                let count = counts.get(&entry.id).copied().unwrap_or(1);
                entry.delivery_count = count.clamp(1, u64::from(u32::MAX)) as u32;
            }
        }
        Ok(Owned::Read(batch))
    }

    /// Redelivers held-back entry `id` of owned stream `stream` to
    /// `consumer` while `fence` holds ([`REDELIVER`]): the entry with its
    /// new delivery count, or `None` when it is pending no more (trimmed).
    pub async fn redeliver_owned(
        &mut self,
        (lease, holder): (&str, &str),
        stream: &str,
        group: &str,
        consumer: &str,
        id: &str,
    ) -> Result<Option<crate::entry::Entry>> {
        let (claimed, count): (Value, u64) = REDELIVER
            .key(lease)
            .key(stream)
            .arg(holder)
            .arg(group)
            .arg(id)
            .arg(consumer)
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("redelivering entry {id} of {stream:?} failed"))?;
        let mut entries = reply::range_reply(claimed)?;
        Ok(entries.pop().map(|mut entry| {
            entry.delivery_count = count.clamp(1, u64::from(u32::MAX)) as u32;
            entry
        }))
    }

    /// `XREAD BLOCK block STREAMS s… after…`: which of `streams` (each with
    /// the id to wait after) have entries past it, waiting up to `block`.
    /// Reads no group: nothing is delivered to anyone.
    pub async fn wait_for_entries(&mut self, streams: &[(String, String)], block: Duration) -> Result<Vec<String>> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(1).arg("BLOCK").arg(block.as_millis().max(1) as u64).arg("STREAMS");
        for (stream, _) in streams {
            cmd.arg(stream);
        }
        for (_, after) in streams {
            cmd.arg(after);
        }
        let reply = self.entries_reply(&cmd).await.context("waiting for entries on owned streams failed")?;
        Ok(match reply {
            Value::Array(rows) => rows
                .into_iter()
                .filter_map(|row| match row {
                    Value::Array(mut pair) if pair.len() == 2 => reply::string(pair.swap_remove(0)).ok(),
                    _ => None,
                })
                .collect(),
            Value::Map(rows) => rows.into_iter().filter_map(|(k, _)| reply::string(k).ok()).collect(),
            _ => Vec::new(),
        })
    }

    /// Acks `ids` of owned stream `stream` while `fence` (lease key, holder) holds.
    pub async fn ack_owned(
        &mut self,
        (lease, holder): (&str, &str),
        stream: &str,
        group: &str,
        ids: &[String],
    ) -> Result<u64> {
        let mut acked = 0;
        for chunk in ids.chunks(ACK_CHUNK) {
            let mut invocation = ACK.prepare_invoke();
            invocation.key(lease).key(stream).arg(holder).arg(group).arg(chunk);
            let n: u64 = invocation
                .invoke_async(&mut self.conn)
                .await
                .with_context(|| format!("acking {} entries of owned stream {stream:?} failed", chunk.len()))?;
            acked += n;
        }
        Ok(acked)
    }
}
