-- The effects commit: see the doc comment of COMMIT in commit.rs.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
-- An owned stream's commit (ARGV[6]: the lease holder): nothing at all
-- unless its lease (KEYS[2]) still holds it.
if ARGV[6] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder ~= ARGV[6] then
    local now = holder and ('held by ' .. holder) or 'gone'
    return redis.error_reply('DISOWNED the lease ' .. KEYS[2] .. ' is ' .. now .. ', not ' .. ARGV[6])
  end
end
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
-- Streams that can take no more entries: their last id is the largest there is.
local full = {}
local function exhausted(key)
  local f = full[key]
  if f == nil then
    f = false
    local info = redis.call('XINFO', 'STREAM', key)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then f = info[i + 1] == '18446744073709551615-18446744073709551615' end
    end
    full[key] = f
  end
  return f
end
local function expect(key, want)
  local t = type_of(key)
  if t ~= want and t ~= 'none' then
    return 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want
  end
  if want == 'stream' and t == 'stream' and not cleared[key] and exhausted(key) then
    return 'ERR the stream ' .. key .. ' has used up the last possible id'
  end
  put(types, key, want)
  return nil
end
-- The integer at t[k] as planned: read from Redis (`redis.call(...)`) the
-- first time, unless the plan deleted `key` (then 0, itself a planned change).
local function planned(t, k, key, ...)
  local v = t[k]
  if v == nil then
    if cleared[key] then
      v = 0
      put(t, k, 0)
    else
      local raw = redis.call(...)
      v = raw and int_of(raw) or 0
      t[k] = v
    end
  end
  return v
end
-- A string key's integer as planned (called once its type is checked).
local function str_val(key)
  return planned(strs, key, key, 'GET', key)
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
  return h, planned(h, field, key, 'HGET', key, field)
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
local blocked = nil
local pos = 7
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
    if ARGV[6] ~= '' and not err and (key == KEYS[2] or string.sub(key, -6) == ':owner') then
      err = 'ERR effects may not write ' .. key .. ': a lease key (…:owner) of stream ownership mode'
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
    -- An owned stream's entries are applied in order: none past a refusal.
    if ARGV[6] ~= '' and not blocked then blocked = id end
  elseif blocked then
    err = 'held back behind entry ' .. blocked .. ', whose effects were refused'
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
end
-- The summed increments, then the acks: the acks come last, so a write
-- that failed after all could never leave an entry acked without it.
for _, key in ipairs(touched) do flush(key) end
for from = 1, na, 1000 do
  redis.call('XACK', stream, group, unpack(acc_id, from, math.min(from + 999, na)))
end
return results
