//! The host's multi-key writes as Lua scripts: each runs as one server-side
//! step that checks everything that could make a write fail (key types, who
//! owns the entry) before it writes anything. `MULTI/EXEC` cannot do this:
//! Redis runs the rest of a transaction when one command in it fails
//! (WRONGTYPE), so an XACK went through while its XADD to the dead-letter
//! stream did not, and the entry was gone.
//!
//! Scripts name every key they touch in KEYS (so they stay valid where keys
//! must be declared); argument lists are sent in chunks well under Lua's
//! stack limit (~8000 values per `unpack`).

use redis::Script;
use std::sync::LazyLock;

/// Ids sent to one lease script call, well under Lua's `unpack` limit.
pub const LEASE_CHUNK: usize = 1000;
/// Field/value pairs one script call passes on to a single XADD: Lua's
/// `unpack` stops at ~8000 values (4000 pairs failed on Redis 7.0.15).
/// Dead-letter records stay under it by packing larger entries
/// (`dead_letter::MAX_PLAIN_FIELDS`).
pub const MAX_FIELD_PAIRS: usize = 3500;

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

/// Dead-letters one entry: KEYS = stream, dead-letter stream; ARGV = group,
/// consumer, id, mode, then the record's field/value pairs.
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
        "{CHECK_STREAM}{}",
        r#"
local bad = check_stream(KEYS[2], 'dead-letter')
if bad then return bad end
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
local dead = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
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

/// The handover script.
pub fn hand_to() -> &'static Script {
    &HAND_TO
}

/// The name-lease scripts: acquire (or renew), release, delete the consumer.
pub fn name_lease() -> (&'static Script, &'static Script, &'static Script) {
    (&NAME_ACQUIRE, &NAME_RELEASE, &DELETE_OWN_CONSUMER)
}

/// The dead-letter script.
pub fn dead_letter() -> &'static Script {
    &DEAD_LETTER
}

/// The requeue script.
pub fn requeue() -> &'static Script {
    &REQUEUE
}

/// The lease script.
pub fn lease() -> &'static Script {
    &LEASE
}
