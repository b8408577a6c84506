//! Typed replies: Redis `Value`s of the stream commands parsed into the
//! host's types, moving byte buffers rather than copying them. (The hot
//! read's replies skip `Value`s: `resp.rs`.)

use crate::entry::Entry;
use anyhow::{Result, anyhow, bail};
use redis::Value;

/// Entries delivered by one read or claim, in stream order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Entries with their payload.
    pub entries: Vec<Entry>,
    /// Pending ids whose payload was trimmed away before they were handled.
    pub trimmed: Vec<String>,
}

impl Batch {
    /// True when there is nothing to handle or record.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.trimmed.is_empty()
    }
}

/// Parses an `XREADGROUP` reply for one stream (RESP2 array or RESP3 map);
/// every entry gets `delivery_count`. A nil field list (history read of a
/// trimmed entry) becomes a trimmed id.
pub fn read_reply(reply: Value, delivery_count: u32) -> Result<Batch> {
    let streams = match reply {
        Value::Nil => return Ok(Batch::default()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => Ok(pair.into_iter().nth(1).unwrap_or(Value::Nil)),
                other => Err(anyhow!("stream reply is not a [key, entries] pair: {other:?}")),
            })
            .collect::<Result<Vec<_>>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        other => bail!("expected an array of streams, got {other:?}"),
    };
    let mut batch = Batch::default();
    for stream_entries in streams {
        entries_into(stream_entries, delivery_count, &mut batch)?;
    }
    Ok(batch)
}

/// Parses an `XRANGE` reply.
pub fn range_reply(reply: Value) -> Result<Vec<Entry>> {
    let mut batch = Batch::default();
    entries_into(reply, 0, &mut batch)?;
    Ok(batch.entries)
}

/// Parses an `XAUTOCLAIM` reply: `[next-cursor, [entries], [deleted ids]]`.
/// Delivery counts are unknown here (set to 0); callers look them up.
pub fn autoclaim_reply(reply: Value) -> Result<(String, Batch)> {
    let Value::Array(parts) = reply else {
        bail!("XAUTOCLAIM reply is not an array: {reply:?}");
    };
    let mut parts = parts.into_iter();
    let cursor = string(parts.next().unwrap_or(Value::Nil))?;
    let mut batch = Batch::default();
    entries_into(parts.next().unwrap_or(Value::Array(Vec::new())), 0, &mut batch)?;
    if let Some(Value::Array(deleted)) = parts.next() {
        for id in deleted {
            batch.trimmed.push(string(id)?);
        }
    }
    Ok((cursor, batch))
}

fn entries_into(items: Value, delivery_count: u32, batch: &mut Batch) -> Result<()> {
    let items = match items {
        Value::Array(items) => items,
        Value::Nil => return Ok(()),
        other => bail!("stream entries are not an array: {other:?}"),
    };
    batch.entries.reserve(items.len());
    for item in items {
        let Value::Array(parts) = item else {
            bail!("entry is not an [id, fields] pair: {item:?}");
        };
        let mut parts = parts.into_iter();
        let id = string(parts.next().unwrap_or(Value::Nil))?;
        let flat = match parts.next() {
            Some(Value::Array(flat)) => flat,
            Some(Value::Map(pairs)) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            Some(Value::Nil) | None => {
                batch.trimmed.push(id);
                continue;
            }
            Some(other) => bail!("entry {id} has no field list: {other:?}"),
        };
        if flat.len() % 2 != 0 {
            bail!("entry {id} has an odd number of field items ({})", flat.len());
        }
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
            fields.push((bytes(name, &id)?, bytes(value, &id)?));
        }
        batch.entries.push(Entry { id, fields, delivery_count });
    }
    Ok(())
}

/// One row of extended `XPENDING`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingEntry {
    /// Entry id.
    pub id: String,
    /// Consumer that holds it.
    pub consumer: String,
    /// Milliseconds since it was last delivered (or its lease refreshed).
    pub idle_ms: u64,
    /// Times delivered.
    pub deliveries: u64,
}

/// One consumer of a group, from `XINFO CONSUMERS`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerInfo {
    /// Consumer name.
    pub name: String,
    /// Entries in its pending list.
    pub pending: u64,
    /// Milliseconds since its last read or claim.
    pub idle_ms: u64,
}

/// Parses `XINFO CONSUMERS` (a list of flat field/value arrays or maps).
pub fn consumers_reply(reply: Value) -> Result<Vec<ConsumerInfo>> {
    rows(reply, "XINFO CONSUMERS")?
        .into_iter()
        .map(|row| {
            let mut info = ConsumerInfo { name: String::new(), pending: 0, idle_ms: 0 };
            for (key, value) in pairs(row)? {
                match (key.as_str(), value) {
                    ("name", v) => info.name = string(v)?,
                    ("pending", Value::Int(n)) => info.pending = n.max(0) as u64,
                    ("idle", Value::Int(n)) => info.idle_ms = n.max(0) as u64,
                    _ => {}
                }
            }
            Ok(info)
        })
        .collect()
}

/// A stream as `XINFO STREAM` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamInfo {
    /// Entries in the stream (`XLEN`).
    pub length: u64,
    /// Consumer groups.
    pub groups: u64,
    /// The id of the newest entry ever added (trimming does not lower it).
    pub last_generated_id: String,
    /// Oldest entry id, if any.
    pub first_id: Option<String>,
    /// Newest entry id, if any.
    pub last_id: Option<String>,
    /// Entries ever added (Redis 7): more than `length` once some were trimmed or deleted.
    pub entries_added: Option<u64>,
}

/// Parses `XINFO STREAM` (a flat field/value array or a map).
pub fn stream_info_reply(reply: Value) -> Result<StreamInfo> {
    let mut info = StreamInfo::default();
    for (key, value) in pairs(reply)? {
        match (key.as_str(), value) {
            ("length", Value::Int(n)) => info.length = n.max(0) as u64,
            ("groups", Value::Int(n)) => info.groups = n.max(0) as u64,
            ("last-generated-id", v) => info.last_generated_id = string(v)?,
            ("entries-added", Value::Int(n)) => info.entries_added = Some(n.max(0) as u64),
            ("first-entry", Value::Array(entry)) => info.first_id = entry.into_iter().next().map(string).transpose()?,
            ("last-entry", Value::Array(entry)) => info.last_id = entry.into_iter().next().map(string).transpose()?,
            _ => {}
        }
    }
    Ok(info)
}

/// One consumer group, from `XINFO GROUPS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Consumers in the group.
    pub consumers: u64,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
    /// The last entry id delivered to the group.
    pub last_delivered_id: String,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell,
    /// e.g. after deletions).
    pub lag: Option<u64>,
}

/// Parses `XINFO GROUPS`.
pub fn groups_reply(reply: Value) -> Result<Vec<GroupInfo>> {
    rows(reply, "XINFO GROUPS")?
        .into_iter()
        .map(|row| {
            let mut info = GroupInfo::default();
            for (key, value) in pairs(row)? {
                match (key.as_str(), value) {
                    ("name", v) => info.name = string(v)?,
                    ("consumers", Value::Int(n)) => info.consumers = n.max(0) as u64,
                    ("pending", Value::Int(n)) => info.pending = n.max(0) as u64,
                    ("last-delivered-id", v) => info.last_delivered_id = string(v)?,
                    ("lag", Value::Int(n)) => info.lag = Some(n.max(0) as u64),
                    _ => {}
                }
            }
            Ok(info)
        })
        .collect()
}

/// The rows of an array reply.
fn rows(reply: Value, what: &str) -> Result<Vec<Value>> {
    match reply {
        Value::Array(rows) => Ok(rows),
        other => bail!("{what} reply is not an array: {other:?}"),
    }
}

/// A map reply (RESP3) or a flat field/value array (RESP2) as pairs.
fn pairs(row: Value) -> Result<Vec<(String, Value)>> {
    let pairs: Vec<(Value, Value)> = match row {
        Value::Map(pairs) => pairs,
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        other => bail!("expected a map, got {other:?}"),
    };
    pairs.into_iter().map(|(k, v)| Ok((string(k)?, v))).collect()
}

pub fn string(value: Value) -> Result<String> {
    match value {
        Value::BulkString(b) => Ok(String::from_utf8(b)?),
        Value::SimpleString(s) => Ok(s),
        Value::Okay => Ok("OK".into()),
        other => bail!("expected a string, got {other:?}"),
    }
}

fn bytes(value: Value, id: &str) -> Result<Vec<u8>> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => bail!("entry {id} has a field that is not a string: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn parses_resp2_read_reply_binary_safe_and_in_order() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"orders"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk(b"1-0"),
                    Value::Array(vec![bulk(b"b"), bulk(&[0xff, 0x00]), bulk(b"a"), bulk(b"x")]),
                ]),
                Value::Array(vec![bulk(b"2-0"), Value::Nil]),
            ]),
        ])]);
        let batch = read_reply(reply, 1).unwrap();
        let expected = Entry {
            id: "1-0".into(),
            fields: vec![(b"b".to_vec(), vec![0xff, 0x00]), (b"a".to_vec(), b"x".to_vec())],
            delivery_count: 1,
        };
        assert_eq!(batch, Batch { entries: vec![expected], trimmed: vec!["2-0".into()] });
    }

    #[test]
    fn nil_reply_is_no_entries() {
        assert!(read_reply(Value::Nil, 1).unwrap().is_empty());
    }

    #[test]
    fn parses_autoclaim_with_deleted_ids() {
        let reply = Value::Array(vec![
            bulk(b"0-0"),
            Value::Array(vec![Value::Array(vec![bulk(b"3-0"), Value::Array(vec![bulk(b"k"), bulk(b"v")])])]),
            Value::Array(vec![bulk(b"1-0")]),
        ]);
        let (cursor, batch) = autoclaim_reply(reply).unwrap();
        assert_eq!(cursor, "0-0");
        assert_eq!(batch.entries[0].id, "3-0");
        assert_eq!(batch.trimmed, vec!["1-0".to_string()]);
    }
}
