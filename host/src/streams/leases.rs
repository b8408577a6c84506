//! Stream ownership mode's leases and its commands on the assignment
//! stream: taking, renewing and releasing a data stream's lease (its value
//! is the holder, `WORKER@RUN`), reading who holds which, finishing an
//! assignment (fenced: the assignment acked and the lease deleted in one
//! step), and reading and claiming assignments in the service's group.

use super::Connection;
use super::reply::{self, Batch};
use anyhow::{Context, Result};
use redis::{Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// Fails with a `DISOWNED` error unless lease key `key` holds `worker`:
/// the guard of every write for an owned stream (stream ownership mode), so
/// a worker whose lease lapsed cannot write, whatever it believes.
pub(super) const FENCE: &str = r#"
local function fence(key, worker)
  local holder = redis.call('GET', key)
  if holder ~= worker then
    local now = holder and ('held by ' .. holder) or 'gone'
    return redis.error_reply('DISOWNED the lease ' .. key .. ' is ' .. now .. ', not ' .. worker .. "'s")
  end
  return nil
end
"#;

/// Leases per script call: well under Lua's `unpack` limit.
const CHUNK: usize = 1000;
/// Takes lease KEYS[1] for ARGV[1] (TTL ARGV[2] ms) unless another holds
/// it; renews it when ARGV[1] holds it. Returns the holder after the call.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return holder
end
if holder then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"#,
    )
});

/// Renews every lease in KEYS that ARGV[1] holds (TTL ARGV[2] ms); returns
/// per key 1 renewed, 0 lost (gone or another's).
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"#,
    )
});

/// Deletes lease KEYS[1] if ARGV[1] holds it; returns 1 if it did.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// Finishes an assignment: KEYS = lease, assignment stream, the data
/// stream's adoption marker, and the data stream when one of its entries
/// is acked too; ARGV = lease holder, service group, assignment id, that
/// entry's id. Fenced; XACKs the entry and the assignment, then deletes the
/// lease and the marker — in one step: never a released lease with its
/// assignment still pending (a peer would take the stream over and go on
/// past the end), nor an end marker acked with the assignment pending. A
/// repeat after a lost reply finds the assignment no longer pending: done.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FENCE}{}",
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  -- Finished already (a try whose reply was lost) when no longer pending.
  if #redis.call('XPENDING', KEYS[2], ARGV[2], ARGV[3], ARGV[3], 1) == 0 then return 1 end
  return fence(KEYS[1], ARGV[1])
end
if KEYS[4] then redis.call('XACK', KEYS[4], ARGV[2], ARGV[4]) end
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[1], KEYS[3])
return 1
"#
    ))
});

/// Per key of KEYS: its value (false when absent, `?TYPE` when not a
/// string) and its PTTL.
static HOLDERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key)['ok']
  if t == 'string' then
    out[2 * i - 1] = redis.call('GET', key)
  elseif t == 'none' then
    out[2 * i - 1] = false
  else
    out[2 * i - 1] = '?' .. t
  end
  out[2 * i] = redis.call('PTTL', key)
end
return out
"#,
    )
});

impl Connection {
    /// Takes (or renews) lease `key` for `worker`; returns its holder after:
    /// `worker` when taken.
    pub async fn take_lease(&mut self, key: &str, worker: &str, ttl: Duration) -> Result<String> {
        TAKE.key(key)
            .arg(worker)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("taking lease {key:?} failed"))
    }

    /// Renews the leases `keys` that `worker` holds; per key whether it does.
    pub async fn renew_leases(&mut self, keys: &[String], worker: &str, ttl: Duration) -> Result<Vec<bool>> {
        let mut held = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let mut invocation = RENEW.prepare_invoke();
            for key in chunk {
                invocation.key(key);
            }
            invocation.arg(worker).arg(ttl.as_millis() as u64);
            let renewed: Vec<u8> = invocation
                .invoke_async(&mut self.conn)
                .await
                .with_context(|| format!("renewing {} leases failed", chunk.len()))?;
            held.extend(renewed.into_iter().map(|r| r == 1));
        }
        Ok(held)
    }

    /// Deletes lease `key` if `worker` holds it; whether it did.
    pub async fn release_lease(&mut self, key: &str, worker: &str) -> Result<bool> {
        let deleted: u8 = RELEASE
            .key(key)
            .arg(worker)
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("releasing lease {key:?} failed"))?;
        Ok(deleted == 1)
    }

    /// Acks assignment `id` (and `data`'s entry: stream, id) and deletes
    /// lease `lease`, while `worker` holds it ([`FINISH`]).
    pub async fn finish_assignment(
        &mut self,
        lease: &str,
        assignments: &str,
        group: &str,
        id: &str,
        worker: &str,
        (marker, data): (&str, Option<(&str, &str)>),
    ) -> Result<()> {
        let mut invocation = FINISH.prepare_invoke();
        invocation.key(lease).key(assignments).arg(worker).arg(group).arg(id);
        invocation.key(marker);
        if let Some((stream, entry)) = data {
            invocation.key(stream).arg(entry);
        }
        let _: u8 = invocation
            .invoke_async(&mut self.conn)
            .await
            .with_context(|| format!("finishing assignment {id} of {assignments:?} failed"))?;
        Ok(())
    }

    /// `XREADGROUP GROUP g c COUNT n BLOCK b STREAMS s >`: new assignments.
    pub async fn read_assignments(
        &mut self,
        stream: &str,
        group: &str,
        worker: &str,
        count: usize,
        block: Duration,
    ) -> Result<Batch> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(group).arg(worker).arg("COUNT").arg(count);
        cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64).arg("STREAMS").arg(stream).arg(">");
        let reply =
            self.entries_reply(&cmd).await.with_context(|| format!("reading assignments of {stream:?} failed"))?;
        reply::read_reply(reply, 1).with_context(|| format!("unexpected XREADGROUP reply on {stream:?}"))
    }

    /// `XCLAIM s g worker 0 id JUSTID`: whether assignment `id` is now the
    /// worker's (false: it was acked meanwhile).
    pub async fn claim_assignment(&mut self, stream: &str, group: &str, worker: &str, id: &str) -> Result<bool> {
        let claimed: Vec<String> = redis::cmd("XCLAIM")
            .arg(stream)
            .arg(group)
            .arg(worker)
            .arg(0)
            .arg(id)
            .arg("JUSTID")
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("claiming assignment {id} of {stream:?} failed"))?;
        Ok(!claimed.is_empty())
    }

    /// Extended `XPENDING stream group IDLE ms (after + count`: pending
    /// entries idle at least `idle`, with ids above `after` (`-`: all), oldest first.
    pub async fn pending_after(
        &mut self,
        stream: &str,
        group: &str,
        idle: Duration,
        after: &str,
        count: usize,
    ) -> Result<Vec<super::PendingEntry>> {
        let start = if after == "-" { after.to_string() } else { format!("({after}") };
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .arg("IDLE")
            .arg(idle.as_millis() as u64)
            .arg(start)
            .arg("+")
            .arg(count)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XPENDING on {stream:?} group {group:?} failed"))?;
        Ok(rows
            .into_iter()
            .map(|(id, consumer, idle_ms, deliveries)| super::PendingEntry { id, consumer, idle_ms, deliveries })
            .collect())
    }

    /// The holder of each lease in `keys` (`None`: free; a key of another
    /// type shows as `?TYPE`, held: nobody takes it) and its time left.
    pub async fn lease_holders(&mut self, keys: &[String]) -> Result<Vec<(Option<String>, Option<Duration>)>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let mut invocation = HOLDERS.prepare_invoke();
            for key in chunk {
                invocation.key(key);
            }
            let replies: Vec<Value> = invocation.invoke_async(&mut self.conn).await.context("reading leases failed")?;
            let mut replies = replies.into_iter();
            while let (Some(holder), Some(ttl)) = (replies.next(), replies.next()) {
                let holder: Option<String> = redis::from_redis_value(holder).context("unexpected lease value")?;
                let ttl: i64 = redis::from_redis_value(ttl).context("unexpected PTTL reply")?;
                out.push((holder, u64::try_from(ttl).ok().map(Duration::from_millis)));
            }
        }
        Ok(out)
    }
}
