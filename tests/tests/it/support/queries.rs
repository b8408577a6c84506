//! Entries into streams and what Redis says about them: producing (pipelined)
//! and the queries tests assert on (XINFO GROUPS and CONSUMERS, XPENDING,
//! XLEN, XREVRANGE, the dead-letter stream). The commands and the parsing of
//! their replies are shared with their blocking twins in `blocking.rs`.

use redis::aio::MultiplexedConnection;
use std::collections::HashMap;

/// One row of an `XINFO` reply: field name to value.
pub(super) type Row = HashMap<String, redis::Value>;

/// Appends entries, pipelined; returns their ids in order.
pub async fn produce(conn: &mut MultiplexedConnection, stream: &str, entries: &[Vec<(&str, Vec<u8>)>]) -> Vec<String> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(500) {
        let mut pipe = redis::pipe();
        for fields in chunk {
            let cmd = pipe.cmd("XADD").arg(stream).arg("*");
            for (name, value) in fields {
                cmd.arg(*name).arg(value.as_slice());
            }
        }
        let chunk_ids: Vec<String> = pipe.query_async(conn).await.expect("XADD");
        ids.extend(chunk_ids);
    }
    ids
}

/// A valid order event of the redis.io guide.
pub fn order(i: usize) -> Vec<(&'static str, Vec<u8>)> {
    let kinds = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];
    vec![
        ("type", kinds[i % 4].as_bytes().to_vec()),
        ("order_id", format!("o-{i}").into_bytes()),
        ("customer", format!("customer-{}", i % 7).into_bytes()),
        ("amount", format!("{}.{:02}", i % 500, i % 100).into_bytes()),
    ]
}

/// One consumer group's state, as `XINFO GROUPS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub pending: u64,
    pub lag: Option<u64>,
    pub last_delivered_id: String,
    pub entries_read: Option<u64>,
}

/// `XINFO GROUPS stream`.
pub(super) fn xinfo_groups(stream: &str) -> redis::Cmd {
    redis::cmd("XINFO").arg("GROUPS").arg(stream).clone()
}

/// The groups of an `XINFO GROUPS` reply.
pub(super) fn groups_of(rows: Vec<Row>) -> Vec<GroupInfo> {
    rows.into_iter()
        .filter_map(|g| {
            let name = bulk(&g, "name")?;
            let int = |k: &str| match g.get(k) {
                Some(redis::Value::Int(n)) => Some(*n as u64),
                _ => None,
            };
            let last = match g.get("last-delivered-id") {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("last-delivered-id: {other:?}"),
            };
            Some(GroupInfo {
                name,
                pending: int("pending").unwrap_or(0),
                lag: int("lag"),
                last_delivered_id: last,
                entries_read: int("entries-read"),
            })
        })
        .collect()
}

/// The text of field `key` of a row, if it is a bulk string.
fn bulk(row: &Row, key: &str) -> Option<String> {
    match row.get(key) {
        Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// Every group of `stream`; none while the stream does not exist.
pub async fn groups(conn: &mut MultiplexedConnection, stream: &str) -> Vec<GroupInfo> {
    groups_of(xinfo_groups(stream).query_async(conn).await.unwrap_or_default())
}

/// `None` until the group exists.
pub async fn group_info(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Option<GroupInfo> {
    groups(conn, stream).await.into_iter().find(|g| g.name == group)
}

/// `XINFO CONSUMERS stream group`.
pub(super) fn xinfo_consumers(stream: &str, group: &str) -> redis::Cmd {
    redis::cmd("XINFO").arg("CONSUMERS").arg(stream).arg(group).clone()
}

/// The consumers of an `XINFO CONSUMERS` reply: (name, pending).
pub(super) fn consumers_of(rows: Vec<Row>) -> Vec<(String, u64)> {
    rows.into_iter()
        .filter_map(|row| {
            let pending = match row.get("pending") {
                Some(redis::Value::Int(n)) => *n as u64,
                _ => 0,
            };
            Some((bulk(&row, "name")?, pending))
        })
        .collect()
}

/// Consumers of a group (`XINFO CONSUMERS`): (name, pending); none while the group does not exist.
pub async fn consumers(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Vec<(String, u64)> {
    consumers_of(xinfo_consumers(stream, group).query_async(conn).await.unwrap_or_default())
}

/// Consumer names of a group (`XINFO CONSUMERS`).
pub async fn consumer_names(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Vec<String> {
    consumers(conn, stream, group).await.into_iter().map(|(name, _)| name).collect()
}

/// An extended `XPENDING` reply: (id, consumer, idle ms, deliveries).
pub(super) type PendingRows = Vec<(String, String, u64, u64)>;

/// Extended `XPENDING stream group - + 100000`.
pub(super) fn xpending(stream: &str, group: &str) -> redis::Cmd {
    redis::cmd("XPENDING").arg(stream).arg(group).arg("-").arg("+").arg(100_000).clone()
}

/// The entries of an `XPENDING` reply: (id, consumer, delivery count); none for NOGROUP.
pub(super) fn pending_of(reply: redis::RedisResult<PendingRows>) -> Vec<(String, String, u64)> {
    let rows = reply.or_else(|e| if e.code() == Some("NOGROUP") { Ok(Vec::new()) } else { Err(e) }).expect("XPENDING");
    rows.into_iter().map(|(id, consumer, _idle, count)| (id, consumer, count)).collect()
}

/// Pending entries of a group: (id, consumer, delivery count); none while the group does not exist yet.
pub async fn pending(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Vec<(String, String, u64)> {
    pending_of(xpending(stream, group).query_async(conn).await)
}

/// `XLEN key`.
pub async fn xlen(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.expect("XLEN")
}

/// The newest entry of `stream` (`XREVRANGE + - COUNT 1`): its id and its
/// fields and values, flat.
pub async fn newest(conn: &mut MultiplexedConnection, stream: &str) -> (String, Vec<Vec<u8>>) {
    let mut rows: Vec<(String, Vec<Vec<u8>>)> =
        redis::cmd("XREVRANGE").arg(stream).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn).await.unwrap();
    rows.pop().unwrap_or_else(|| panic!("{stream} is empty"))
}

/// Every record of `stream`'s default dead-letter stream, parsed.
pub async fn dead_letters(conn: &mut MultiplexedConnection, stream: &str) -> Vec<host::DeadLetter> {
    let reply: redis::Value =
        redis::cmd("XRANGE").arg(format!("{stream}:dlq")).arg("-").arg("+").query_async(conn).await.expect("XRANGE");
    let redis::Value::Array(items) = reply else { panic!("XRANGE reply {reply:?}") };
    items
        .into_iter()
        .map(|item| {
            let redis::Value::Array(parts) = item else { panic!("entry {item:?}") };
            let mut parts = parts.into_iter();
            let id: String = redis::from_redis_value(parts.next().unwrap()).unwrap();
            let flat: Vec<Vec<u8>> = redis::from_redis_value(parts.next().unwrap()).unwrap();
            let fields = flat.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            host::DeadLetter::parse(host::Entry { id, fields, delivery_count: 0 }).expect("a dead-letter record")
        })
        .collect()
}
