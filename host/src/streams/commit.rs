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
const CHUNK_ENTRIES: usize = 1000;
/// Argument bytes per script call, roughly (an entry's effects are never split).
const CHUNK_BYTES: usize = 4 << 20;

/// KEYS = the stream, then every key the effects write; ARGV = group,
/// consumer, entry count, the lowest and highest entry id (or two empty
/// strings), then per entry: id, effect count, and per effect
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
/// entries' effects in order (increments summed per key and field) and
/// XACKs them. Returns per entry `1` committed, `"0" .. owner` not owned
/// (nothing written; owner empty: pending for nobody), `"2" .. error`
/// refused (nothing written, still pending).
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
local types, strs, fields, cleared = {}, {}, {}, {}
-- The undo log, as parallel arrays (no table per change).
local ut, uk, uv, un = {}, {}, {}, 0
local function put(t, k, v)
  local old = t[k]
  if old == v then return end
  un = un + 1
  ut[un], uk[un], uv[un] = t, k, old
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
-- range (ARGV[4], ARGV[5]: the lowest and highest id, from the host); an id
-- not found there is looked up alone (a peer's, or the reply was cut short).
local mine = {}
if exists and ARGV[4] ~= '' then
  for _, row in ipairs(redis.call('XPENDING', stream, group, ARGV[4], ARGV[5], n + 64, consumer)) do
    mine[row[1]] = true
  end
end
local results, acc_id, acc_start, acc_count, na = {}, {}, {}, {}, 0
local pos = 6
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
  un = 0
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
      if not err and types[key] ~= 'stream' then err = expect(key, 'stream') end
      pos = pos + 4 + 2 * tonumber(ARGV[pos + 3])
    elseif op == 'i' then
      err = err or expect(key, 'string') or incr(key, nil, tonumber(ARGV[pos + 2]))
      pos = pos + 3
    elseif op == 'h' then
      -- The common case inline (a known hash, a field already read or
      -- planned, no overflow); anything else through `expect` and `incr`.
      if not err then
        local field, by = ARGV[pos + 2], tonumber(ARGV[pos + 3])
        local h = types[key] == 'hash' and fields[key]
        local v = h and h[field]
        local sum = type(v) == 'number' and v + by
        if sum and sum < 9.2e18 and sum > -9.2e18 and v < 9.2e18 and v > -9.2e18 then
          un = un + 1
          ut[un], uk[un], uv[un] = h, field, v
          h[field] = sum
        else
          err = expect(key, 'hash') or incr(key, field, by)
        end
      end
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
    results[e] = '0' .. owner
  elseif err then
    results[e] = '2' .. err
  else
    results[e] = 1
    na = na + 1
    acc_id[na] = id
    acc_start[na] = start
    acc_count[na] = count
  end
  if owner ~= consumer or err then
    for i = un, 1, -1 do ut[i][uk[i]] = uv[i] end
  end
end
-- Increments are summed per key and field and applied once, before any
-- other write to that key and at the end: the same final state (nothing
-- else runs meanwhile), far fewer commands. A sum stays below 2^53, where
-- Lua's numbers are exact; past it the increment goes out alone.
local str_sums, hash_sums, touched = {}, {}, {}
local function flush(key)
  local s = str_sums[key]
  if s then
    redis.call('INCRBY', key, string.format('%d', s))
    str_sums[key] = nil
  end
  local h = hash_sums[key]
  if h then
    for field, sum in pairs(h) do redis.call('HINCRBY', key, field, string.format('%d', sum)) end
    hash_sums[key] = nil
  end
end
local EXACT = 9007199254740992
-- Adds `by` to the sum at sums[slot]; false when it must go out alone.
local function add(sums, slot, by, key)
  local nb = tonumber(by)
  local cur = sums[slot]
  if not cur then
    cur = 0
    touched[#touched + 1] = key
  end
  if nb < EXACT and nb > -EXACT and cur + nb < EXACT and cur + nb > -EXACT then
    sums[slot] = cur + nb
    return true
  end
  return false
end
local acked = {}
for a = 1, na do
  local p = acc_start[a]
  for _ = 1, acc_count[a] do
    local op, key = ARGV[p], KEYS[tonumber(ARGV[p + 1])]
    if op == 'x' then
      if str_sums[key] or hash_sums[key] then flush(key) end
      local last = p + 3 + 2 * tonumber(ARGV[p + 3])
      if ARGV[p + 2] ~= '' then
        redis.call('XADD', key, 'MAXLEN', '~', ARGV[p + 2], '*', unpack(ARGV, p + 4, last))
      else
        redis.call('XADD', key, '*', unpack(ARGV, p + 4, last))
      end
      p = last + 1
    elseif op == 'h' then
      local h = hash_sums[key]
      if not h then
        h = {}
        hash_sums[key] = h
        touched[#touched + 1] = key
      end
      local field, nb = ARGV[p + 2], tonumber(ARGV[p + 3])
      local sum = (h[field] or 0) + nb
      if nb < EXACT and nb > -EXACT and sum < EXACT and sum > -EXACT then
        h[field] = sum
      else
        flush(key)
        redis.call('HINCRBY', key, field, ARGV[p + 3])
      end
      p = p + 4
    elseif op == 'i' then
      if not add(str_sums, key, ARGV[p + 2], key) then
        flush(key)
        redis.call('INCRBY', key, ARGV[p + 2])
      end
      p = p + 3
    else
      flush(key)
      if op == 's' then
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
  end
  acked[#acked + 1] = acc_id[a]
  if #acked == 1000 then
    redis.call('XACK', stream, group, unpack(acked))
    acked = {}
  end
end
for _, key in ipairs(touched) do flush(key) end
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
            match id_range(chunk.iter().map(|(id, _)| *id)) {
                Some((lo, hi)) => invocation.arg(lo).arg(hi),
                None => invocation.arg("").arg(""),
            };
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
            let replies: Vec<redis::Value> = invocation.invoke_async(&mut self.conn).await.with_context(|| {
                format!("committing the effects of {} entries of stream {stream:?} failed", chunk.len())
            })?;
            anyhow::ensure!(
                replies.len() == chunk.len(),
                "effects commit answered {} of {}",
                replies.len(),
                chunk.len()
            );
            for reply in replies {
                results.push(match reply {
                    redis::Value::Int(1) => Committed::Applied,
                    other => {
                        let text: String = redis::from_redis_value(other).context("unexpected effects commit reply")?;
                        match text.split_at_checked(1) {
                            Some(("0", owner)) => Committed::NotOwned(owner.to_string()),
                            Some((_, error)) => Committed::Refused(error.to_string()),
                            None => Committed::Refused(text),
                        }
                    }
                });
            }
            start = end;
        }
        Ok(results)
    }
}

/// The lowest and highest of `ids` (stream ids compared as numbers); none
/// when one is not a stream id.
fn id_range<'a>(ids: impl Iterator<Item = &'a str>) -> Option<(&'a str, &'a str)> {
    let parse = |id: &str| {
        let (ms, seq) = id.split_once('-')?;
        Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?))
    };
    type Id<'a> = (u64, u64, &'a str);
    let mut range: Option<(Id, Id)> = None;
    for id in ids {
        let (ms, seq) = parse(id)?;
        let key = (ms, seq, id);
        range = Some(match range {
            None => (key, key),
            Some((lo, hi)) => (if key < lo { key } else { lo }, if key > hi { key } else { hi }),
        });
    }
    range.map(|(lo, hi)| (lo.2, hi.2))
}

fn ttl(ttl_ms: &Option<u64>) -> String {
    ttl_ms.map(|t| t.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_range_compares_ids_as_numbers() {
        let ids = ["10-0", "9-5", "10-11", "10-2"];
        assert_eq!(id_range(ids.into_iter()), Some(("9-5", "10-11")));
        assert_eq!(id_range(["5-0", "x"].into_iter()), None);
        assert_eq!(id_range(std::iter::empty()), None);
    }
}
