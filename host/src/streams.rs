//! Every Redis command the host sends, with typed replies. The rest of the
//! code never builds a raw command.

use crate::entry::Entry;
use anyhow::{Context, Result, anyhow, bail};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use std::time::Duration;

/// How long to wait for a TCP connection before calling Redis unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack on top of a blocking read's own timeout before a reply is overdue:
/// generous, because a busy Redis may be slow, but finite so a dead peer is
/// noticed and the connection replaced.
const REPLY_SLACK: Duration = Duration::from_secs(10);

/// Where Redis is: a parsed URL that opens connections.
#[derive(Clone, Debug)]
pub struct Redis {
    client: redis::Client,
    /// The URL with any password masked, for messages.
    shown_url: String,
}

impl Redis {
    /// Parses `url`; fails with a message naming it when it is not a Redis URL.
    pub fn open(url: &str) -> Result<Self> {
        let shown_url = mask_password(url);
        let client = redis::Client::open(url).map_err(|e| {
            anyhow!("invalid Redis URL {shown_url:?}: {e} (expected redis://HOST:PORT[/DB])")
        })?;
        Ok(Redis { client, shown_url })
    }

    /// The URL, password masked.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// Opens a dedicated connection. `block` is the longest blocking read the
    /// connection will make, so replies may legitimately take that long.
    pub async fn connect(&self, block: Duration) -> Result<Connection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + REPLY_SLACK));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot reach Redis at {}: {e} (is redis-server running? set --redis or REDIS_URL)",
                    self.shown_url
                )
            })?;
        Ok(Connection { conn })
    }
}

/// One connection to Redis. Blocking reads hold it, so each consumer has its own.
pub struct Connection {
    conn: MultiplexedConnection,
}

impl Connection {
    /// `XGROUP CREATE stream group start MKSTREAM`; an existing group is fine.
    /// Returns whether the group was created.
    pub async fn ensure_group(
        &mut self,
        stream: &str,
        group: &str,
        start_id: &str,
    ) -> Result<bool> {
        let reply: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg(start_id)
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match reply {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot create consumer group {group:?} on stream {stream:?} at {start_id:?}"
                )
            }),
        }
    }

    /// `XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS stream >`: new entries
    /// for `consumer`, in stream order; empty when `block` passed without any.
    pub async fn read_new(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>> {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XREADGROUP on stream {stream:?} group {group:?} failed"))?;
        parse_read_reply(reply, 1)
            .with_context(|| format!("unexpected XREADGROUP reply on stream {stream:?}"))
    }

    /// `XACK stream group id…`; returns how many entries Redis acknowledged.
    pub async fn ack(&mut self, stream: &str, group: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        redis::cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(ids)
            .query_async(&mut self.conn)
            .await
            .with_context(|| {
                format!(
                    "XACK of {} entries on stream {stream:?} group {group:?} failed",
                    ids.len()
                )
            })
    }

    /// `XADD stream [MAXLEN ~ n] * field value…`; returns the new entry id.
    pub async fn add(
        &mut self,
        stream: &str,
        maxlen: Option<u64>,
        fields: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<String> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream);
        if let Some(n) = maxlen {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg("*");
        for (name, value) in fields {
            cmd.arg(name).arg(value);
        }
        cmd.query_async(&mut self.conn)
            .await
            .with_context(|| format!("XADD to stream {stream:?} failed"))
    }
}

/// True when `error` says the consumer group (or its stream) no longer exists:
/// the key was deleted, or Redis restarted without persistence.
pub fn is_missing_group(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<redis::RedisError>()
            .and_then(|e| e.code())
            == Some("NOGROUP")
    })
}

/// Parses an `XREADGROUP`/`XREAD` reply for one stream into entries, each
/// given `delivery_count`. RESP2 (array) and RESP3 (map) shapes both parse.
fn parse_read_reply(reply: Value, delivery_count: u32) -> Result<Vec<Entry>> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => {
                    Ok(pair.into_iter().nth(1).unwrap_or(Value::Nil))
                }
                other => Err(anyhow!(
                    "stream reply is not a [key, entries] pair: {other:?}"
                )),
            })
            .collect::<Result<Vec<_>>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        other => bail!("expected an array of streams, got {other:?}"),
    };
    let mut entries = Vec::new();
    for stream_entries in streams {
        let Value::Array(items) = stream_entries else {
            bail!("stream entries are not an array: {stream_entries:?}");
        };
        entries.reserve(items.len());
        for item in items {
            entries.push(parse_entry(item, delivery_count)?);
        }
    }
    Ok(entries)
}

/// Parses `[id, [name, value, …]]`, moving the byte buffers (no copies).
fn parse_entry(item: Value, delivery_count: u32) -> Result<Entry> {
    let Value::Array(parts) = item else {
        bail!("entry is not an [id, fields] pair: {item:?}");
    };
    let mut parts = parts.into_iter();
    let id = match parts.next() {
        Some(Value::BulkString(id)) => String::from_utf8(id)?,
        Some(Value::SimpleString(id)) => id,
        other => bail!("entry id is not a string: {other:?}"),
    };
    let flat = match parts.next() {
        Some(Value::Array(flat)) => flat,
        Some(Value::Map(pairs)) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => bail!("entry {id} has no field list: {other:?}"),
    };
    if flat.len() % 2 != 0 {
        bail!(
            "entry {id} has an odd number of field items ({})",
            flat.len()
        );
    }
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        fields.push((bytes(name, &id)?, bytes(value, &id)?));
    }
    Ok(Entry {
        id,
        fields,
        delivery_count,
    })
}

fn bytes(value: Value, id: &str) -> Result<Vec<u8>> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => bail!("entry {id} has a field that is not a string: {other:?}"),
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`, so errors never print passwords.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => url.to_string(),
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
            Value::Array(vec![Value::Array(vec![
                bulk(b"1-0"),
                Value::Array(vec![
                    bulk(b"b"),
                    bulk(&[0xff, 0x00]),
                    bulk(b"a"),
                    bulk(b"x"),
                ]),
            ])]),
        ])]);
        let entries = parse_read_reply(reply, 1).unwrap();
        assert_eq!(
            entries,
            vec![Entry {
                id: "1-0".into(),
                fields: vec![
                    (b"b".to_vec(), vec![0xff, 0x00]),
                    (b"a".to_vec(), b"x".to_vec())
                ],
                delivery_count: 1,
            }]
        );
    }

    #[test]
    fn nil_reply_is_no_entries() {
        assert!(parse_read_reply(Value::Nil, 1).unwrap().is_empty());
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(mask_password("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(mask_password("redis://h:1"), "redis://h:1");
    }
}
