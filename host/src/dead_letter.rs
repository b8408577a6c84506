//! The dead-letter record: an entry's original fields behind a block of
//! metadata saying where it came from and why it was given up on.
//!
//! Layout of a dead-letter entry's fields, in order:
//! `dlq:meta-fields N`, then N-1 more `dlq:*` metadata pairs, then the
//! original fields untouched. The count makes the split unambiguous even when
//! an original field name starts with `dlq:`.
//!
//! An entry of more than [`MAX_PLAIN_FIELDS`] fields is recorded packed: a
//! `dlq:packed` metadata pair (the field count) and one field
//! `dlq:packed-fields` holding them all, each name and value behind its
//! 4-byte big-endian length. The record is written by a Lua script, and Lua
//! cannot pass more than ~8000 values to one command.

use crate::entry::Entry;
use anyhow::{Context, Result, bail};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why an entry was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The plugin (or the host, for a non-UTF-8 field name) rejected it.
    Rejected,
    /// It failed on its last allowed delivery, or was about to be delivered
    /// more than `--max-deliveries` times.
    MaxDeliveries,
    /// Its payload was trimmed from the stream before it was handled; the
    /// record is an audit trail with no original fields.
    Trimmed,
}

impl Reason {
    /// The text stored in `dlq:reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::MaxDeliveries => "max deliveries exceeded",
            Reason::Trimmed => "trimmed before processing",
        }
    }
}

/// Who gave up on the entry, and where it was.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// Stream the entry came from.
    pub stream: &'a str,
    /// Consumer group.
    pub group: &'a str,
    /// Consumer that gave up.
    pub consumer: &'a str,
    /// Plugin name.
    pub plugin: &'a str,
    /// Plugin version hash.
    pub version: &'a str,
}

/// Original fields written as they are at most; more are packed (see above).
pub const MAX_PLAIN_FIELDS: usize = 3000;

/// Builds the fields of a dead-letter entry for `id` (with `fields`, or none
/// when trimmed).
pub fn record(
    origin: &Origin<'_>,
    id: &str,
    fields: &[(Vec<u8>, Vec<u8>)],
    deliveries: u32,
    reason: Reason,
    error: &str,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let packed = fields.len() > MAX_PLAIN_FIELDS;
    let meta: [(&str, String); 11] = [
        ("dlq:meta-fields", if packed { "12" } else { "11" }.into()),
        ("dlq:reason", reason.as_str().into()),
        ("dlq:stream", origin.stream.into()),
        ("dlq:id", id.into()),
        ("dlq:group", origin.group.into()),
        ("dlq:consumer", origin.consumer.into()),
        ("dlq:deliveries", deliveries.to_string()),
        ("dlq:error", error.into()),
        ("dlq:plugin", origin.plugin.into()),
        ("dlq:version", origin.version.into()),
        ("dlq:time-ms", now_ms.to_string()),
    ];
    let mut out: Vec<(Vec<u8>, Vec<u8>)> =
        meta.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes())).collect();
    if packed {
        out.push((b"dlq:packed".to_vec(), fields.len().to_string().into_bytes()));
        out.push((b"dlq:packed-fields".to_vec(), pack(fields)));
    } else {
        out.extend(fields.iter().cloned());
    }
    out
}

/// Names and values, each behind its 4-byte big-endian length.
fn pack(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|(n, v)| 8 + n.len() + v.len()).sum());
    for part in fields.iter().flat_map(|(n, v)| [n, v]) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The inverse of [`pack`]; `None` when `bytes` is not `count` packed pairs.
fn unpack(mut bytes: &[u8], count: usize) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut next = || {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let part = bytes.get(4..4 + len)?.to_vec();
        bytes = &bytes[4 + len..];
        Some(part)
    };
    let mut fields = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        fields.push((next()?, next()?));
    }
    bytes.is_empty().then_some(fields)
}

/// A dead-letter entry read back: metadata and the original fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id of the dead-letter entry itself.
    pub dead_id: String,
    /// Metadata pairs (`dlq:*`), in order.
    pub meta: Vec<(String, String)>,
    /// The original fields (empty for a trimmed audit record).
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl DeadLetter {
    /// Splits a dead-letter stream entry into metadata and original fields.
    pub fn parse(entry: Entry) -> Result<Self> {
        let count = entry
            .field("dlq:meta-fields")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
            .with_context(|| format!("{} is not a dead-letter record (no dlq:meta-fields)", entry.id))?;
        if count > entry.fields.len() {
            bail!("dead-letter record {} is truncated", entry.id);
        }
        let mut fields = entry.fields;
        let mut original = fields.split_off(count);
        let meta: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            .collect();
        if let Some((_, n)) = meta.iter().find(|(k, _)| k == "dlq:packed") {
            let n: usize = n.parse().with_context(|| format!("dead-letter record {}: bad dlq:packed", entry.id))?;
            let Some(packed) = original.pop().filter(|(k, _)| k == b"dlq:packed-fields" && original.is_empty()) else {
                bail!("dead-letter record {} says dlq:packed but has no single dlq:packed-fields", entry.id);
            };
            original = unpack(&packed.1, n).with_context(|| {
                format!("dead-letter record {}: dlq:packed-fields is not {n} packed fields", entry.id)
            })?;
        }
        Ok(DeadLetter { dead_id: entry.id, meta, fields: original })
    }

    /// A metadata value, e.g. `meta("dlq:stream")`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_even_with_dlq_prefixed_fields() {
        let origin = Origin { stream: "s", group: "g", consumer: "c", plugin: "p", version: "v1" };
        let fields = vec![(b"dlq:stream".to_vec(), b"mine".to_vec()), (b"x".to_vec(), vec![0xff])];
        let rec = record(&origin, "1-0", &fields, 3, Reason::MaxDeliveries, "boom");
        let parsed = DeadLetter::parse(Entry { id: "9-0".into(), fields: rec, delivery_count: 0 }).unwrap();
        assert_eq!(parsed.fields, fields);
        assert_eq!(parsed.meta("dlq:stream"), Some("s"));
        assert_eq!(parsed.meta("dlq:deliveries"), Some("3"));
        assert_eq!(parsed.meta("dlq:reason"), Some("max deliveries exceeded"));
    }

    #[test]
    fn many_fields_are_packed_and_come_back() {
        let origin = Origin { stream: "s", group: "g", consumer: "c", plugin: "p", version: "v1" };
        let fields: Vec<_> = (0..MAX_PLAIN_FIELDS + 1).map(|i| (format!("f{i}").into_bytes(), vec![i as u8])).collect();
        let rec = record(&origin, "1-0", &fields, 1, Reason::Rejected, "too big");
        assert_eq!(rec.len(), 13);
        let parsed = DeadLetter::parse(Entry { id: "9-0".into(), fields: rec.clone(), delivery_count: 0 }).unwrap();
        assert_eq!(parsed.fields, fields);
        let mut cut = rec;
        cut.last_mut().unwrap().1.pop();
        assert!(DeadLetter::parse(Entry { id: "9-0".into(), fields: cut, delivery_count: 0 }).is_err());
    }
}
