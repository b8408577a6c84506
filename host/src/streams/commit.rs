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

/// KEYS = the stream, for an owned stream its lease key, then every key
/// the effects write; ARGV = group, consumer, entry count, the lowest and
/// highest entry id (or two empty strings), for an owned stream the lease
/// holder (nothing written unless the lease holds it) or empty, then per entry: id, effect count, and per effect
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
static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("commit.lua")));

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
        self.commit_fenced(stream, group, consumer, entries, None).await
    }

    /// [`Self::commit`] for an owned stream: each chunk only while `fence`
    /// (lease key, holder) holds (else a `DISOWNED` error, nothing written).
    pub async fn commit_fenced(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        entries: &[(&str, &[Effect])],
        fence: Option<(&str, &str)>,
    ) -> Result<Vec<Committed>> {
        let first_key = if fence.is_some() { 3 } else { 2 };
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
            match fence {
                Some((lease, holder)) => invocation.key(lease).arg(holder),
                None => invocation.arg(""),
            };
            for (id, effects) in chunk {
                invocation.arg(*id).arg(effects.len());
                for effect in *effects {
                    let next = keys.len() + first_key;
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
