//! Committing plugin effects with their acks: one Lua script per chunk of
//! entries, each entry's writes applied and the entry XACKed only while this
//! consumer still owns it and only when every one of its writes can be
//! applied — checked before anything is written, because Redis does not roll
//! a script back when a command in it fails. An entry that fails a check
//! gets nothing written and stays pending; the others of the chunk go on.

use super::Connection;
use crate::effects::Effect;
use anyhow::{Context, Result};
use redis::Script;
use std::collections::HashMap;
use std::sync::LazyLock;

/// Entries per script call: bounds how long one call holds Redis.
const CHUNK_ENTRIES: usize = 200;
/// Argument bytes per script call, roughly (an entry's effects are never split).
const CHUNK_BYTES: usize = 4 << 20;

/// KEYS = the stream, then every key the effects write; ARGV = group,
/// consumer, entry count, then per entry: id, effect count, and per effect
/// an op and the KEYS index of its key, then its arguments:
/// `x` emit: max-len (or ''), pair count, pairs; `i` INCRBY by; `h` HINCRBY
/// field by; `s` SET value ttl (or ''); `f` HSET field value ttl (or '');
/// `d` DEL; `e` HDEL field.
///
/// Pass 1 checks each entry in order against the types and integers the
/// entries before it will leave (so two entries of one chunk cannot
/// conflict): its owner must be `consumer`; every target must have the
/// right type; every counter must hold an integer and stay in range. An
/// entry that fails is undone from that plan. Pass 2 writes the accepted
/// entries' effects in order and XACKs them. Returns per entry `{1, ''}`
/// committed, `{0, owner}` not owned (nothing written; empty: pending for
/// nobody), `{2, error}` refused (nothing written, still pending).
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
-- The plan: what the entries accepted so far (and the one being checked)
-- will have written. `types`: key type; `strs`: a string key's integer
-- value; `fields`: per hash key, its fields' integer values; `cleared`: keys
-- deleted by the plan (their old values must not be read). Every change goes
-- through `put`, so a refused entry's changes are undone; values read from
-- Redis are cached as they are (they are true whatever is undone).
local types, strs, fields, cleared, undo = {}, {}, {}, {}, nil
local function put(t, k, v)
  undo[#undo + 1] = {t, k, t[k]}
  t[k] = v
end
-- A value as Redis's INCRBY reads it: canonical decimal only (no leading
-- zeros, no '+', no '-0'), else 'bad'. Stricter than Redis near the int64
-- limits, never looser: a refused step writes nothing.
local function int_of(raw)
  if #raw <= 20 and (raw == '0' or string.match(raw, '^%-?[1-9]%d*$')) then return tonumber(raw) end
  return 'bad'
end
local function type_of(key)
  local t = types[key]
  if t == nil then
    t = redis.call('TYPE', key)['ok']
    types[key] = t
  end
  return t
end
local function expect(key, want)
  local t = type_of(key)
  if t ~= want and t ~= 'none' then
    return 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want
  end
  put(types, key, want)
  return nil
end
-- A string key's integer as planned (called once its type is checked).
local function str_val(key)
  local v = strs[key]
  if v == nil then
    if cleared[key] then
      v = 0
      put(strs, key, 0)
    else
      local raw = redis.call('GET', key)
      v = raw and int_of(raw) or 0
      strs[key] = v
    end
  end
  return v
end
-- A hash key's table of planned (or read) field values.
local function hash_of(key)
  local h = fields[key]
  if h == nil then
    h = {}
    fields[key] = h
  end
  return h
end
-- A hash key's field table and the field's integer as planned.
local function field_val(key, field)
  local h = hash_of(key)
  local v = h[field]
  if v == nil then
    if cleared[key] then
      v = 0
      put(h, field, 0)
    else
      local raw = redis.call('HGET', key, field)
      v = raw and int_of(raw) or 0
      h[field] = v
    end
  end
  return h, v
end
local function check_sum(v, by, what)
  if v == 'bad' then return 'ERR ' .. what .. ' does not hold an integer' end
  local sum = v + by
  if v > 9.2e18 or v < -9.2e18 or sum > 9.2e18 or sum < -9.2e18 then
    return 'ERR increment of ' .. what .. ' would overflow'
  end
  return nil, sum
end
local function incr(key, field, by)
  if field then
    local h, v = field_val(key, field)
    local err, sum = check_sum(v, by, 'hash field ' .. field .. ' of ' .. key)
    if err then return err end
    put(h, field, sum)
  else
    local err, sum = check_sum(str_val(key), by, 'key ' .. key)
    if err then return err end
    put(strs, key, sum)
  end
  return nil
end
local function ttl_ok(ttl)
  if ttl ~= '' and not (tonumber(ttl) and tonumber(ttl) >= 1 and tonumber(ttl) <= 3.2e12) then
    return 'ERR ttl ' .. ttl .. ' ms is out of range'
  end
  return nil
end
local exists = redis.call('EXISTS', stream) == 1
-- The chunk's entries pending for this consumer: one XPENDING over their id
-- range; an id not found there is looked up alone (a peer's, or the range
-- reply was cut short).
local mine = {}
if exists then
  local lo, hi, p = nil, nil, 4
  local function key_of(id)
    local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
    if not ms then return nil end
    return {tonumber(ms), tonumber(seq)}
  end
  local function less(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
  for _ = 1, n do
    local id, k = ARGV[p], key_of(ARGV[p])
    if k then
      if not lo or less(k, lo[1]) then lo = {k, id} end
      if not hi or less(hi[1], k) then hi = {k, id} end
    end
    p = p + 2
    for _ = 1, tonumber(ARGV[p - 1]) do
      local op = ARGV[p]
      if op == 'x' then p = p + 4 + 2 * tonumber(ARGV[p + 3])
      elseif op == 'i' or op == 'e' then p = p + 3
      elseif op == 'h' or op == 's' then p = p + 4
      elseif op == 'f' then p = p + 5
      elseif op == 'd' then p = p + 2
      else return redis.error_reply('ERR unknown effect op ' .. tostring(op)) end
    end
  end
  if lo then
    for _, row in ipairs(redis.call('XPENDING', stream, group, lo[2], hi[2], n + 64, consumer)) do
      mine[row[1]] = true
    end
  end
end
local results, accepted = {}, {}
local pos = 4
for e = 1, n do
  local id, count = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  local start = pos
  local owner = ''
  if mine[id] then
    owner = consumer
  elseif exists then
    local p = redis.call('XPENDING', stream, group, id, id, 1)
    if #p == 1 then owner = p[1][2] end
  end
  undo = {}
  local err = nil
  for _ = 1, count do
    local op, key = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])]
    if op ~= 'x' and key == stream and not err then
      err = 'ERR effects may only emit to the consumed stream ' .. key .. ', not ' .. op .. ' it'
    end
    if op == 'x' then
      local max_len = ARGV[pos + 2]
      if not err and max_len ~= '' and not (tonumber(max_len) and tonumber(max_len) <= 9.2e18) then
        err = 'ERR max-len ' .. max_len .. ' is out of range'
      end
      err = err or expect(key, 'stream')
      pos = pos + 4 + 2 * tonumber(ARGV[pos + 3])
    elseif op == 'i' then
      err = err or expect(key, 'string') or incr(key, nil, tonumber(ARGV[pos + 2]))
      pos = pos + 3
    elseif op == 'h' then
      err = err or expect(key, 'hash') or incr(key, ARGV[pos + 2], tonumber(ARGV[pos + 3]))
      pos = pos + 4
    elseif op == 's' then
      err = err or ttl_ok(ARGV[pos + 3]) or expect(key, 'string')
      if not err then put(strs, key, int_of(ARGV[pos + 2])) end
      pos = pos + 4
    elseif op == 'f' then
      err = err or ttl_ok(ARGV[pos + 4]) or expect(key, 'hash')
      if not err then put(hash_of(key), ARGV[pos + 2], int_of(ARGV[pos + 3])) end
      pos = pos + 5
    elseif op == 'd' then
      if not err then
        put(types, key, 'none')
        put(cleared, key, true)
        put(strs, key, 0)
        put(fields, key, {})
      end
      pos = pos + 2
    elseif op == 'e' then
      err = err or expect(key, 'hash')
      if not err then put(hash_of(key), ARGV[pos + 2], 0) end
      pos = pos + 3
    else
      return redis.error_reply('ERR unknown effect op ' .. tostring(op))
    end
  end
  if owner ~= consumer then
    err = nil
    results[e] = {0, owner}
  elseif err then
    results[e] = {2, err}
  else
    results[e] = {1, ''}
    accepted[#accepted + 1] = {id, start, count}
  end
  if owner ~= consumer or err then
    for i = #undo, 1, -1 do undo[i][1][undo[i][2]] = undo[i][3] end
  end
end
local acked = {}
for _, a in ipairs(accepted) do
  local p = a[2]
  for _ = 1, a[3] do
    local op, key = ARGV[p], KEYS[tonumber(ARGV[p + 1])]
    if op == 'x' then
      local pairs_n = tonumber(ARGV[p + 3])
      local args = {key}
      if ARGV[p + 2] ~= '' then
        args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[p + 2]
      end
      args[#args + 1] = '*'
      for i = p + 4, p + 3 + 2 * pairs_n do args[#args + 1] = ARGV[i] end
      redis.call('XADD', unpack(args))
      p = p + 4 + 2 * pairs_n
    elseif op == 'i' then
      redis.call('INCRBY', key, ARGV[p + 2]); p = p + 3
    elseif op == 'h' then
      redis.call('HINCRBY', key, ARGV[p + 2], ARGV[p + 3]); p = p + 4
    elseif op == 's' then
      if ARGV[p + 3] ~= '' then redis.call('SET', key, ARGV[p + 2], 'PX', ARGV[p + 3])
      else redis.call('SET', key, ARGV[p + 2]) end
      p = p + 4
    elseif op == 'f' then
      redis.call('HSET', key, ARGV[p + 2], ARGV[p + 3])
      if ARGV[p + 4] ~= '' then redis.call('PEXPIRE', key, ARGV[p + 4]) end
      p = p + 5
    elseif op == 'd' then
      redis.call('DEL', key); p = p + 2
    elseif op == 'e' then
      redis.call('HDEL', key, ARGV[p + 2]); p = p + 3
    end
  end
  acked[#acked + 1] = a[1]
  if #acked == 1000 then
    redis.call('XACK', stream, group, unpack(acked))
    acked = {}
  end
end
if #acked > 0 then redis.call('XACK', stream, group, unpack(acked)) end
return results
"#,
    )
});

/// What became of one entry's commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Its effects applied and the entry acked.
    Applied,
    /// Nothing written: the entry is pending for this consumer (its name)
    /// or for nobody (empty: acked, or gone).
    NotOwned(String),
    /// Nothing written, the entry still pending: an effect could not be
    /// applied (the error says which and why).
    Refused(String),
}

impl Connection {
    /// Applies each entry's effects and XACKs it, in one server-side step
    /// per chunk ([`COMMIT`]), only while `consumer` owns the entry and only
    /// when all its effects can be applied. One result per entry, in order.
    pub async fn commit(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        entries: &[(&str, &[Effect])],
    ) -> Result<Vec<Committed>> {
        let mut results = Vec::with_capacity(entries.len());
        let mut start = 0;
        while start < entries.len() {
            let (mut end, mut bytes) = (start, 0);
            while end < entries.len() && end - start < CHUNK_ENTRIES && (end == start || bytes < CHUNK_BYTES) {
                bytes += entries[end].1.iter().map(Effect::bytes).sum::<usize>();
                end += 1;
            }
            let chunk = &entries[start..end];
            let mut invocation = COMMIT.prepare_invoke();
            let mut keys: HashMap<&str, usize> = HashMap::new();
            invocation.key(stream).arg(group).arg(consumer).arg(chunk.len());
            for (id, effects) in chunk {
                invocation.arg(*id).arg(effects.len());
                for effect in *effects {
                    let next = keys.len() + 2;
                    let index = *keys.entry(effect.key()).or_insert_with(|| {
                        invocation.key(effect.key());
                        next
                    });
                    match effect {
                        Effect::Emit { fields, max_len, .. } => {
                            invocation.arg("x").arg(index).arg(max_len.map(|m| m.to_string()).unwrap_or_default());
                            invocation.arg(fields.len());
                            for (name, value) in fields {
                                invocation.arg(name).arg(value);
                            }
                        }
                        Effect::Incr { field: None, by, .. } => {
                            invocation.arg("i").arg(index).arg(*by);
                        }
                        Effect::Incr { field: Some(field), by, .. } => {
                            invocation.arg("h").arg(index).arg(field).arg(*by);
                        }
                        Effect::Set { field: None, value, ttl_ms, .. } => {
                            invocation.arg("s").arg(index).arg(value).arg(ttl(ttl_ms));
                        }
                        Effect::Set { field: Some(field), value, ttl_ms, .. } => {
                            invocation.arg("f").arg(index).arg(field).arg(value).arg(ttl(ttl_ms));
                        }
                        Effect::Del { field: None, .. } => {
                            invocation.arg("d").arg(index);
                        }
                        Effect::Del { field: Some(field), .. } => {
                            invocation.arg("e").arg(index).arg(field);
                        }
                    }
                }
            }
            let replies: Vec<(u8, String)> = invocation.invoke_async(&mut self.conn).await.with_context(|| {
                format!("committing the effects of {} entries of stream {stream:?} failed", chunk.len())
            })?;
            anyhow::ensure!(
                replies.len() == chunk.len(),
                "effects commit answered {} of {}",
                replies.len(),
                chunk.len()
            );
            results.extend(replies.into_iter().map(|(code, text)| match code {
                1 => Committed::Applied,
                0 => Committed::NotOwned(text),
                _ => Committed::Refused(text),
            }));
            start = end;
        }
        Ok(results)
    }
}

fn ttl(ttl_ms: &Option<u64>) -> String {
    ttl_ms.map(|t| t.to_string()).unwrap_or_default()
}
