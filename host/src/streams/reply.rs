//! Typed replies: Redis `Value`s of the stream commands parsed into the
//! host's types, moving byte buffers rather than copying them.

use crate::entry::Entry;
use anyhow::{Context, Result, anyhow, bail};
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

/// A cursor over RESP2 bytes as they arrive: each step returns `Ok(None)`
/// while its item is incomplete (read more and start over), an error when
/// the bytes are not what the reply must hold. Only what the hot read needs:
/// array and bulk-string headers, bulk strings, and status or error lines.
pub struct Resp<'a> {
    buf: &'a [u8],
    /// Bytes consumed so far.
    pub at: usize,
}

impl<'a> Resp<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Resp { buf, at: 0 }
    }

    /// The number of a header `<kind><integer>` CRLF (`*` array, `$` bulk
    /// string, `:` an integer reply itself); -1 is a null. An error line (`-…`) where a header was
    /// expected is a [`RespError::Server`].
    pub fn header(&mut self, kind: u8) -> Result<Option<i64>, RespError> {
        let rest = &self.buf[self.at..];
        let Some(&first) = rest.first() else { return Ok(None) };
        if first == b'-' {
            return self.error_line();
        }
        if first != kind {
            let expected = match kind {
                b'*' => "an array",
                b'$' => "a bulk string",
                _ => "an integer",
            };
            return Err(RespError::Malformed(format!("{:?} where {expected} was expected", first as char)));
        }
        let (mut n, mut i, negative) = (0i64, 1, rest.get(1) == Some(&b'-'));
        if negative {
            i += 1;
        }
        let digits = i;
        while let Some(&b) = rest.get(i) {
            match b {
                b'0'..=b'9' if i - digits < 18 => n = n * 10 + i64::from(b - b'0'),
                b'\r' if i > digits => {
                    return match rest.get(i + 1) {
                        None => Ok(None),
                        Some(b'\n') => {
                            self.at += i + 2;
                            Ok(Some(if negative { -n } else { n }))
                        }
                        Some(_) => Err(RespError::Malformed("a header without CRLF".into())),
                    };
                }
                _ => return Err(RespError::Malformed(format!("a bad {} header", kind as char))),
            }
            i += 1;
        }
        Ok(None)
    }

    /// A bulk string (not null), borrowed from the buffer.
    pub fn bulk(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        let start = self.at;
        let Some(len) = self.header(b'$')? else { return Ok(None) };
        let Ok(len) = usize::try_from(len) else {
            return Err(RespError::Malformed("a null where a bulk string was expected".into()));
        };
        let Some(body) = self.buf.get(self.at..).and_then(|rest| rest.get(..len + 2)) else {
            self.at = start;
            return Ok(None);
        };
        if &body[len..] != b"\r\n" {
            return Err(RespError::Malformed("a bulk string longer than its header says".into()));
        }
        self.at += len + 2;
        Ok(Some(&body[..len]))
    }

    /// A status line's text (`+…`, without `+` and CRLF); an error line
    /// (`-…`) is a [`RespError::Server`].
    pub fn line(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        match self.buf[self.at..].first() {
            None => Ok(None),
            Some(b'+') => Ok(self.raw_line()),
            Some(b'-') => self.error_line(),
            Some(&other) => Err(RespError::Malformed(format!("{:?} where a status line was expected", other as char))),
        }
    }

    fn error_line<T>(&mut self) -> Result<Option<T>, RespError> {
        match self.raw_line() {
            Some(text) => Err(RespError::Server(text.to_vec())),
            None => Ok(None),
        }
    }

    /// The line at the cursor without its type byte and CRLF.
    fn raw_line(&mut self) -> Option<&'a [u8]> {
        let rest = &self.buf[self.at..];
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        self.at += end + 2;
        Some(&rest[1..end])
    }
}

/// Why RESP bytes could not be taken as the reply expected.
#[derive(Debug, PartialEq, Eq)]
pub enum RespError {
    /// Redis answered with an error (its text, without `-` and CRLF).
    Server(Vec<u8>),
    /// Not the shape of reply the command has.
    Malformed(String),
}

/// Adds the entry at the cursor, an `[id, [field, value, …]]` array of a
/// read reply, to `batch`: one copy of each id, field and value, nothing
/// else. A nil field list (history read of a trimmed entry) becomes a
/// trimmed id. `Ok(false)` while the entry is incomplete (nothing added).
pub fn entry_resp(resp: &mut Resp<'_>, delivery_count: u32, batch: &mut Batch) -> Result<bool> {
    let bad = |e: RespError| match e {
        RespError::Server(text) => anyhow!("error inside an entry: {}", String::from_utf8_lossy(&text)),
        RespError::Malformed(what) => anyhow!("malformed entry: {what}"),
    };
    let start = resp.at;
    let incomplete = |resp: &mut Resp<'_>| {
        resp.at = start;
        Ok(false)
    };
    let Some(parts) = resp.header(b'*').map_err(bad)? else { return incomplete(resp) };
    if parts != 2 {
        bail!("entry is not an [id, fields] pair ({parts} items)");
    }
    let Some(id) = resp.bulk().map_err(bad)? else { return incomplete(resp) };
    let id = std::str::from_utf8(id).map_err(|_| anyhow!("entry id is not UTF-8"))?;
    let Some(items) = resp.header(b'*').map_err(bad)? else { return incomplete(resp) };
    let Ok(items) = usize::try_from(items) else {
        batch.trimmed.push(id.to_owned());
        return Ok(true);
    };
    if items % 2 != 0 {
        bail!("entry {id} has an odd number of field items ({items})");
    }
    // Each item takes at least 4 bytes: never reserve more than could arrive.
    let mut fields = Vec::with_capacity((items / 2).min(resp.buf.len() / 8));
    for _ in 0..items / 2 {
        let Some(name) = resp.bulk().map_err(bad).with_context(|| format!("entry {id}"))? else {
            return incomplete(resp);
        };
        let Some(value) = resp.bulk().map_err(bad).with_context(|| format!("entry {id}"))? else {
            return incomplete(resp);
        };
        fields.push((name.to_vec(), value.to_vec()));
    }
    batch.entries.push(Entry { id: id.to_owned(), fields, delivery_count });
    Ok(true)
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
}

/// Parses `XINFO STREAM` (a flat field/value array or a map).
pub fn stream_info_reply(reply: Value) -> Result<StreamInfo> {
    let mut info = StreamInfo::default();
    for (key, value) in pairs(reply)? {
        match (key.as_str(), value) {
            ("length", Value::Int(n)) => info.length = n.max(0) as u64,
            ("groups", Value::Int(n)) => info.groups = n.max(0) as u64,
            ("last-generated-id", v) => info.last_generated_id = string(v)?,
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

    const WIRE: &[u8] = b"*2\r\n$3\r\n1-0\r\n*4\r\n$1\r\nb\r\n$2\r\n\xff\x00\r\n$1\r\na\r\n$0\r\n\r\n\
                          *2\r\n$3\r\n2-0\r\n*-1\r\n";

    fn parse_all(wire: &[u8]) -> Result<Batch> {
        let (mut batch, mut resp) = (Batch::default(), Resp::new(wire));
        while resp.at < wire.len() {
            if !entry_resp(&mut resp, 1, &mut batch)? {
                bail!("incomplete at {}", resp.at);
            }
        }
        Ok(batch)
    }

    /// The hot read's parser (streams/reader.rs) agrees with redis-rs's.
    #[test]
    fn entries_parse_as_the_value_parser_does() {
        let batch = parse_all(WIRE).unwrap();
        let mut header = b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n".to_vec();
        header.extend_from_slice(WIRE);
        let expected = read_reply(redis::parse_redis_value(&header).unwrap(), 1).unwrap();
        assert_eq!(batch, expected);
        assert_eq!(batch.entries[0].fields, vec![(b"b".to_vec(), vec![0xff, 0x00]), (b"a".to_vec(), Vec::new())]);
        assert_eq!(batch.trimmed, vec!["2-0".to_string()]);
    }

    /// Cut anywhere (a reply arriving in pieces), an entry is incomplete:
    /// nothing added, the cursor back at its start; whole, it parses.
    #[test]
    fn a_cut_entry_is_incomplete_not_wrong() {
        let first = WIRE.len() - b"*2\r\n$3\r\n2-0\r\n*-1\r\n".len();
        for cut in 0..first {
            let (mut batch, mut resp) = (Batch::default(), Resp::new(&WIRE[..cut]));
            assert!(!entry_resp(&mut resp, 1, &mut batch).unwrap(), "cut at {cut}");
            assert_eq!((resp.at, batch), (0, Batch::default()), "cut at {cut}");
        }
        let mut resp = Resp::new(&WIRE[..first]);
        assert!(entry_resp(&mut resp, 1, &mut Batch::default()).unwrap());
        assert_eq!(resp.at, first);
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        for wire in [
            &b"*1\r\n$3\r\n1-0\r\n"[..],
            b"*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\nb\r\n",
            b"*2\r\n:1\r\n*0\r\n",
            b"*2\r\n$-1\r\n*0\r\n",
            b"*2\r\n$3\r\n1-00\r\n*0\r\n",
            b"*2\r\n$2\r\n\xff\xfe\r\n*0\r\n",
            b"*x\r\n",
            b"*2\n",
            b"*99999999999999999999\r\n",
            b"*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nb\r\n-ERR oops\r\n",
            b"$1\r\nx\r\n",
        ] {
            assert!(parse_all(wire).is_err(), "{:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn headers_nulls_and_error_lines() {
        let mut resp = Resp::new(b":12\r\n*-1\r\n*3\r\n-NOGROUP no such group\r\n+OK\r\n");
        assert_eq!(resp.header(b':'), Ok(Some(12)));
        assert_eq!(resp.header(b'*'), Ok(Some(-1)));
        assert_eq!(resp.header(b'*'), Ok(Some(3)));
        assert_eq!(resp.header(b'*'), Err(RespError::Server(b"NOGROUP no such group".to_vec())));
        assert_eq!(resp.line(), Ok(Some(&b"OK"[..])));
        assert_eq!(resp.header(b'*'), Ok(None));
        assert_eq!(Resp::new(b"-WRONGPASS nope\r\n").line(), Err(RespError::Server(b"WRONGPASS nope".to_vec())));
        assert_eq!(Resp::new(b"+OK\r").line(), Ok(None));
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
