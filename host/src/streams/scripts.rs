//! The host's multi-key writes as Lua scripts: each runs as one server-side
//! step that checks everything that could make a write fail (key types, who
//! owns the entry) before it writes anything. `MULTI/EXEC` cannot do this:
//! Redis runs the rest of a transaction when one command in it fails
//! (WRONGTYPE), so an XACK went through while its XADD to the dead-letter
//! stream did not, and the entry was gone.
//!
//! Each script has its typed call on [`Connection`] below. Scripts name
//! every key they touch in KEYS (so they stay valid where keys
//! must be declared); argument lists are sent in chunks well under Lua's
//! stack limit (~8000 values per `unpack`).

use super::leases::FENCE;
use super::{Connection, Fields};
use anyhow::{Context, Result};
use redis::{Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// Ids sent to one lease script call, well under Lua's `unpack` limit.
const LEASE_CHUNK: usize = 1000;
/// Field/value pairs one script call passes on to a single XADD: Lua's
/// `unpack` stops at ~8000 values (4000 pairs failed on Redis 7.0.15).
/// Dead-letter records stay under it by packing larger entries
/// (`dead_letter::MAX_PLAIN_FIELDS`).
const MAX_FIELD_PAIRS: usize = 3500;

/// Fails with a WRONGTYPE error naming the key unless `key` is a stream or
/// absent; shared by the scripts below.
const CHECK_STREAM: &str = r#"
local function check_stream(key, role)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'stream' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE the ' .. role .. ' key ' .. key .. ' holds a ' .. t .. ', not a stream')
  end
  return nil
end
"#;

/// Dead-letters one entry: KEYS = stream, dead-letter stream, and for an
/// owned stream its lease key; ARGV = group, consumer, id, mode, for an
/// owned stream the lease holder it must hold (else nothing is written:
/// [`FENCE`]), then the record's field/value pairs.
///
/// Mode `settle`: only if `consumer` still owns the entry (a peer that
/// reclaimed it meanwhile decides its fate), XADD the record, then XACK —
/// or, when it is pending nowhere and its payload is gone from the stream
/// (trimmed, and dropped from the pending list by a command whose reply
/// never reached the host), XADD the record as its only trace.
/// Mode `audit` (a trimmed entry whose payload is gone): XADD the record
/// whatever the pending list says, XACK it if `consumer` owns it.
/// Returns `{1, dead_id}` when written, `{0, owner}` when the entry is owned
/// by `owner` (empty: pending nowhere) and nothing was written.
static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{CHECK_STREAM}{FENCE}{}",
        r#"
local bad = check_stream(KEYS[2], 'dead-letter')
if bad then return bad end
local first = 5
if #KEYS > 2 then
  bad = fence(KEYS[3], ARGV[5])
  if bad then return bad end
  first = 6
end
local group, consumer, id, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local owner = ''
if redis.call('EXISTS', KEYS[1]) == 1 then
  local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if #p == 1 then owner = p[1][2] end
end
if owner ~= consumer and mode ~= 'audit' then
  local gone = owner == '' and #redis.call('XRANGE', KEYS[1], id, id) == 0
  if not gone then return {0, owner} end
end
local dead = redis.call('XADD', KEYS[2], '*', unpack(ARGV, first))
if owner == consumer then redis.call('XACK', KEYS[1], group, id) end
return {1, dead}
"#
    ))
});

/// Moves a dead letter back: KEYS = dead-letter stream, origin stream; ARGV
/// = the dead letter's id, then the field/value pairs to append. XADD to the
/// origin first, XDEL after, both only once both keys are known to take
/// them. Returns the new id, or nil when the dead letter is no longer there
/// (requeued by someone else meanwhile).
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{CHECK_STREAM}{}",
        r#"
local bad = check_stream(KEYS[2], 'origin')
if bad then return bad end
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
"#
    ))
});

/// Refreshes leases: KEYS = stream; ARGV = group, consumer, ids. Resets the
/// idle clock (`XCLAIM … 0 … JUSTID`, no delivery counted) of those ids
/// `consumer` still owns, and only those: an entry a peer reclaimed stays
/// the peer's. Returns `{lost, deleted}`: ids pending for another consumer
/// or acked, and ids whose payload was trimmed — dropped from the pending
/// list by this XCLAIM (Redis 7's XCLAIM deletes those), or found pending
/// nowhere with no payload (dropped earlier, the reply lost).
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local group, consumer = ARGV[1], ARGV[2]
local lost, mine, gone = {}, {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == consumer then
    mine[#mine + 1] = ARGV[i]
  elseif #p == 0 and #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    gone[#gone + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
local deleted = gone
if #mine > 0 then
  local args = {KEYS[1], group, consumer, 0}
  for _, id in ipairs(mine) do args[#args + 1] = id end
  args[#args + 1] = 'JUSTID'
  local kept = {}
  for _, id in ipairs(redis.call('XCLAIM', unpack(args))) do
    kept[id] = true
  end
  for _, id in ipairs(mine) do
    if not kept[id] then deleted[#deleted + 1] = id end
  end
end
return {lost, deleted}
"#,
    )
});

/// Takes or renews a consumer name's lease: KEYS = the lease key; ARGV =
/// this holder's token, time to live in ms. Sets it when free or already
/// this holder's; otherwise returns the holder's token.
static NAME_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"#,
    )
});

/// Gives a consumer name's lease up: KEYS = the lease key; ARGV = token.
/// Only the holder's own token deletes it.
static NAME_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// Deletes a consumer from its group, only while the caller holds its name's
/// lease and the consumer has nothing pending: KEYS = the lease key,
/// stream; ARGV = token, group, consumer. Returns 0 when deleted, -1 when
/// the lease is not the caller's (another task or process now uses the
/// name, and its pending list must stay), -2 when entries are pending (one
/// arrived late, e.g. an abandoned read served after all): hand them over
/// first.
static DELETE_OWN_CONSUMER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if #redis.call('XPENDING', KEYS[2], ARGV[2], '-', '+', 1, ARGV[3]) > 0 then return -2 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], ARGV[3])
"#,
    )
});

/// Hands entries to a peer, only while the caller holds its name's lease:
/// KEYS = the lease key, stream; ARGV = token, group, peer, idle ms, ids.
/// `XCLAIM … 0 ids IDLE ms JUSTID`; returns the ids moved, or -1 when the
/// lease is not the caller's (the entries are a successor's now).
static HAND_TO: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local args = {KEYS[2], ARGV[2], ARGV[3], 0}
for i = 5, #ARGV do args[#args + 1] = ARGV[i] end
args[#args + 1] = 'IDLE'
args[#args + 1] = ARGV[4]
args[#args + 1] = 'JUSTID'
return redis.call('XCLAIM', unpack(args))
"#,
    )
});

/// What [`Connection::lease`] could not lease.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leases {
    /// Ids no longer pending for this consumer (acked, or reclaimed by a peer).
    pub lost: Vec<String>,
    /// Ids Redis dropped from the pending list: their payload was trimmed.
    pub deleted: Vec<String>,
}

/// What [`Connection::delete_own_consumer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The consumer is gone from the group.
    Done,
    /// Not deleted: its name is leased by someone else now.
    NotLeased,
    /// Not deleted: entries are pending for it (arrived late).
    StillPending,
}

/// Which dead-letter write [`Connection::dead_letter`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterMode {
    /// A verdict's: only while this consumer owns the entry.
    Settle,
    /// A trimmed entry's audit: always written (its payload is gone, so no
    /// peer can handle it), acked if this consumer owns it.
    Audit,
}

/// What a dead-letter attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLettered {
    /// Recorded (and acked) as this dead-letter id.
    Written(String),
    /// Nothing written: the entry is pending for this consumer (its name)
    /// or for nobody (empty: acked or trimmed meanwhile).
    NotOwned(String),
}

/// The commands these scripts make.
impl Connection {
    /// Refreshes the leases of `ids` (their idle clock, no delivery counted)
    /// that `consumer` still owns, and only those, in one server-side step
    /// per chunk ([`LEASE`]). Returns what could not be leased.
    pub async fn lease(&mut self, stream: &str, group: &str, consumer: &str, ids: &[String]) -> Result<Leases> {
        let mut leases = Leases::default();
        for chunk in ids.chunks(LEASE_CHUNK) {
            let mut invocation = LEASE.prepare_invoke();
            invocation.key(stream).arg(group).arg(consumer).arg(chunk);
            let (lost, deleted): (Vec<String>, Vec<String>) = invocation
                .invoke_async(&mut self.conn)
                .await
                .with_context(|| format!("lease refresh of {} entries on stream {stream:?} failed", chunk.len()))?;
            leases.lost.extend(lost);
            leases.deleted.extend(deleted);
        }
        Ok(leases)
    }

    /// `XCLAIM stream group peer 0 id… IDLE idle JUSTID`: hands entries to
    /// `peer` without counting a delivery, already `idle` so the peer's reaper
    /// picks them up on its next tick — only while `lease` (the leaving
    /// consumer's name lease key and token) is held ([`HAND_TO`]).
    /// Returns the ids moved, or `None` when the lease is someone else's.
    pub async fn hand_to(
        &mut self,
        stream: &str,
        group: &str,
        peer: &str,
        ids: &[String],
        idle: Duration,
        lease: (&str, &str),
    ) -> Result<Option<Vec<String>>> {
        let mut invocation = HAND_TO.prepare_invoke();
        invocation.key(lease.0).key(stream).arg(lease.1).arg(group).arg(peer).arg(idle.as_millis() as u64).arg(ids);
        let reply: Value = invocation
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("handover (XCLAIM) to {peer:?} on stream {stream:?} failed"))?;
        match reply {
            Value::Int(_) => Ok(None),
            reply => Ok(Some(redis::from_redis_value(reply).context("unexpected XCLAIM reply")?)),
        }
    }

    /// `XGROUP DELCONSUMER stream group consumer`, only while `lease` (the
    /// consumer name's lease key) holds `token` and nothing is pending for it.
    pub async fn delete_own_consumer(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        lease: &str,
        token: &str,
    ) -> Result<Deleted> {
        let mut invocation = DELETE_OWN_CONSUMER.prepare_invoke();
        invocation.key(lease).key(stream).arg(token).arg(group).arg(consumer);
        let dropped: i64 = invocation
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("XGROUP DELCONSUMER {consumer:?} on stream {stream:?} failed"))?;
        Ok(match dropped {
            -1 => Deleted::NotLeased,
            -2 => Deleted::StillPending,
            _ => Deleted::Done,
        })
    }

    /// Takes or renews the lease `key` for `token` for `ttl`; returns the
    /// other holder's token when someone else holds it.
    pub async fn acquire_name(&mut self, key: &str, token: &str, ttl: Duration) -> Result<Option<String>> {
        let mut invocation = NAME_ACQUIRE.prepare_invoke();
        invocation.key(key).arg(token).arg(ttl.as_millis() as u64);
        invocation.invoke_async(&mut self.conn).await.with_context(|| format!("consumer name lease {key:?} failed"))
    }

    /// Gives the lease `key` up if `token` holds it.
    pub async fn release_name(&mut self, key: &str, token: &str) -> Result<()> {
        let mut invocation = NAME_RELEASE.prepare_invoke();
        invocation.key(key).arg(token);
        let _: i64 = invocation
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("releasing consumer name lease {key:?} failed"))?;
        Ok(())
    }

    /// Dead-letters entry `id` in one server-side step ([`DEAD_LETTER`]):
    /// `XADD dlq * record…` then `XACK`, nothing written unless both can be
    /// (the dead-letter key is a stream or absent) and, for
    /// [`DeadLetterMode::Settle`], only while `consumer` still owns the entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn dead_letter(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &str,
        dlq: &str,
        mode: DeadLetterMode,
        record: &Fields,
        fence: Option<(&str, &str)>,
    ) -> Result<DeadLettered> {
        let mut invocation = DEAD_LETTER.prepare_invoke();
        invocation.key(stream).key(dlq);
        if let Some((lease, _)) = fence {
            invocation.key(lease);
        }
        invocation.arg(group).arg(consumer).arg(id).arg(match mode {
            DeadLetterMode::Settle => "settle",
            DeadLetterMode::Audit => "audit",
        });
        if let Some((_, holder)) = fence {
            invocation.arg(holder);
        }
        for (name, value) in record {
            invocation.arg(name).arg(value);
        }
        let (written, text): (u8, String) = invocation
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("dead-lettering entry {id} of stream {stream:?} to {dlq:?} failed"))?;
        Ok(if written == 1 { DeadLettered::Written(text) } else { DeadLettered::NotOwned(text) })
    }

    /// Moves a dead letter back in one server-side step ([`REQUEUE`]):
    /// `XADD origin * fields…` then `XDEL dlq dead_id`, nothing written unless
    /// both can be. Returns the new id on the origin stream, or `None` when
    /// the dead letter is gone (requeued by someone else meanwhile).
    ///
    /// An entry of more fields than one Lua call can pass on
    /// ([`MAX_FIELD_PAIRS`]) is requeued in two steps after the same
    /// checks: `XADD`, then `XDEL` — a crash between them leaves it requeued
    /// and still dead-lettered (a later requeue repeats it), never lost.
    pub async fn requeue(&mut self, dlq: &str, dead_id: &str, origin: &str, fields: &Fields) -> Result<Option<String>> {
        let failed = || format!("requeue of {dead_id} from {dlq:?} to {origin:?} failed");
        if fields.len() > MAX_FIELD_PAIRS {
            self.expect_stream_or_none(origin, "origin").await.with_context(failed)?;
            if self.range(dlq, dead_id, dead_id, Some(1)).await.with_context(failed)?.is_empty() {
                return Ok(None);
            }
            let id = self.add(origin, None, fields).await.with_context(failed)?;
            let _: u64 =
                redis::cmd("XDEL").arg(dlq).arg(dead_id).query_async(&mut self.conn).await.with_context(failed)?;
            return Ok(Some(id));
        }
        let mut invocation = REQUEUE.prepare_invoke();
        invocation.key(dlq).key(origin).arg(dead_id);
        for (name, value) in fields {
            invocation.arg(name).arg(value);
        }
        invocation.invoke_async(&mut self.conn).await.with_context(failed)
    }
}
