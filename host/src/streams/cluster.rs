//! Redis Cluster: whether the server is one, and where a key's slot lives.
//!
//! A URL `redis+cluster://HOST:PORT` says so; a plain `redis://` URL is
//! asked once (`INFO cluster`, `cluster_enabled:1`). Either way any node
//! will do: the rest are learnt from it.
//!
//! Commands on [`super::Connection`] go through redis-rs's cluster client,
//! which routes each by its key's slot, follows `MOVED` and `ASK`, and
//! re-reads the slot map when a node fails. The hot reader has a TCP
//! connection of its own to the master of its stream's slot, found here
//! ([`Cluster::owner`], from `CLUSTER SLOTS`, asked of any known node that
//! answers): a `MOVED`, an `ASK` or a dead node fails its read, the consumer
//! drops it, and the next one is opened on the node the redirect named (for
//! an `ASK`, sending `ASKING` before each command), else on the slot's master.

use super::CONNECT_TIMEOUT;
use anyhow::{Context, Result, anyhow, bail};
use redis::{ConnectionAddr, ConnectionInfo, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// The URL scheme that names a cluster node explicitly.
pub const SCHEME: &str = "redis+cluster://";

/// A cluster URL's part after the scheme, `[USER:PASS@]HOST:PORT[,HOST:PORT…][/…]`,
/// as the `redis://` URL of its first node and the other nodes it lists
/// (asked when the first is down).
pub fn split_nodes(rest: &str) -> Result<(String, Vec<(String, u16)>)> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let mut nodes = hosts.split(',');
    let first = nodes.next().unwrap_or_default();
    let mut more = Vec::new();
    for node in nodes {
        let parsed = node.rsplit_once(':').and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)));
        match parsed {
            Some((host, port)) if !host.is_empty() => more.push((host.to_string(), port)),
            _ => bail!("invalid node {node:?} in the cluster URL: list nodes as HOST:PORT,HOST:PORT"),
        }
    }
    Ok((format!("redis://{userinfo}{first}{tail}"), more))
}

/// What is known of the cluster: the nodes to ask for the slot map.
pub struct Cluster {
    /// The URL's connection settings (auth) with its node's address.
    seed: ConnectionInfo,
    /// Every node seen in a slot map, masters and replicas (host, port):
    /// asked in turn when the seed is down (failover).
    known: Mutex<Vec<(String, u16)>>,
    /// Where a `MOVED` reply said a slot went, or an `ASK` said its key is
    /// now (the slot still migrating: `true`, the reader asks with `ASKING`):
    /// used first, once, by the next reader of that slot (other nodes may
    /// not have heard yet).
    moved: Mutex<HashMap<u16, (String, u16, bool)>>,
}

impl Cluster {
    /// `seed`: the URL's (first) node; `more`: other nodes the URL lists.
    pub(super) fn new(seed: ConnectionInfo, more: Vec<(String, u16)>) -> Result<Self> {
        if seed.redis_settings().db() != 0 {
            bail!("a Redis Cluster has only database 0: drop /{} from the URL", seed.redis_settings().db());
        }
        let mut known = match seed.addr() {
            ConnectionAddr::Tcp(host, port) => vec![(host.clone(), *port)],
            other => bail!("a Redis Cluster is reached over TCP, not {other}"),
        };
        known.extend(more);
        Ok(Cluster { seed, known: Mutex::new(known), moved: Mutex::default() })
    }

    /// Every node known, the URL's first, with the URL's settings (auth):
    /// the initial nodes of redis-rs's cluster client, so a new connection
    /// opens while the URL's node is down (after a failover) as long as any
    /// node seen before answers. The first time, the slot map is read from
    /// the URL's node to learn the rest.
    pub(super) async fn seeds(&self) -> Vec<ConnectionInfo> {
        if self.known.lock().expect("cluster nodes lock").len() <= 1
            && let Ok(map) = slot_map(&self.seed).await
        {
            self.learn(&map);
        }
        let known = self.known.lock().expect("cluster nodes lock").clone();
        known.into_iter().map(|(host, port)| self.seed.clone().set_addr(ConnectionAddr::Tcp(host, port))).collect()
    }

    /// The connection settings of the master serving `slot` now, asking the
    /// known nodes in turn for the slot map. `shown_url` is for messages.
    /// The second value: whether the node must be asked with `ASKING` (an
    /// `ASK` sent the reader there, the slot still migrating).
    pub(super) async fn owner(&self, slot: u16, shown_url: &str) -> Result<(ConnectionInfo, bool)> {
        if let Some((host, port, asking)) = self.moved.lock().expect("cluster moved lock").remove(&slot) {
            return Ok((self.seed.clone().set_addr(ConnectionAddr::Tcp(host, port)), asking));
        }
        let nodes = self.known.lock().expect("cluster nodes lock").clone();
        let mut last = None;
        for (host, port) in nodes {
            let info = self.seed.clone().set_addr(ConnectionAddr::Tcp(host.clone(), port));
            match slot_map(&info).await {
                Ok(map) => {
                    self.learn(&map);
                    let (host, port) = map
                        .iter()
                        .find(|range| range.start <= slot && slot <= range.end)
                        .map(|range| range.nodes[0].clone())
                        .ok_or_else(|| anyhow!("no node serves slot {slot} (is the cluster complete? CLUSTER INFO)"))?;
                    return Ok((self.seed.clone().set_addr(ConnectionAddr::Tcp(host, port)), false));
                }
                Err(error) => last = Some(error.context(format!("node {host}:{port}"))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no node known")))
            .with_context(|| format!("cannot read the slot map of the Redis Cluster at {shown_url}"))
    }

    /// Takes note of a `MOVED` or `ASK` in `error`, if it is one: the slot's
    /// next reader goes straight to the node it names (after an `ASK`,
    /// asking with `ASKING` before each command).
    pub(super) fn note_redirect(&self, error: &anyhow::Error) {
        let redirect = error.chain().filter_map(|cause| cause.downcast_ref::<redis::RedisError>()).find_map(|e| {
            let asking = match e.kind() {
                redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => false,
                redis::ErrorKind::Server(redis::ServerErrorKind::Ask) => true,
                _ => return None,
            };
            e.redirect_node().map(|(addr, slot)| (addr.to_string(), slot, asking))
        });
        if let Some((addr, slot, asking)) = redirect
            && let Some((host, port)) = addr.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            self.moved.lock().expect("cluster moved lock").insert(slot, (host.to_string(), port, asking));
        }
    }

    /// Remembers every node of `map` as one to ask later.
    fn learn(&self, map: &[SlotRange]) {
        let mut known = self.known.lock().expect("cluster nodes lock");
        for node in map.iter().flat_map(|range| &range.nodes) {
            if !known.contains(node) {
                known.push(node.clone());
            }
        }
    }
}

/// One row of `CLUSTER SLOTS`: a slot range and its nodes, master first.
struct SlotRange {
    start: u16,
    end: u16,
    nodes: Vec<(String, u16)>,
}

/// `CLUSTER SLOTS` of the node at `info`, on a connection of its own.
async fn slot_map(info: &ConnectionInfo) -> Result<Vec<SlotRange>> {
    let client = redis::Client::open(info.clone())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn).await?;
    let asked = match info.addr() {
        ConnectionAddr::Tcp(host, _) => host.as_str(),
        _ => "127.0.0.1",
    };
    parse_slots(reply, asked)
}

fn parse_slots(reply: Value, asked: &str) -> Result<Vec<SlotRange>> {
    let Value::Array(rows) = reply else { bail!("unexpected CLUSTER SLOTS reply") };
    let mut map = Vec::with_capacity(rows.len());
    for row in rows {
        let Value::Array(items) = row else { bail!("unexpected CLUSTER SLOTS row") };
        let mut items = items.into_iter();
        let (Some(Value::Int(start)), Some(Value::Int(end))) = (items.next(), items.next()) else {
            bail!("unexpected CLUSTER SLOTS range")
        };
        let mut nodes = Vec::new();
        for node in items {
            let Value::Array(parts) = node else { continue };
            let mut parts = parts.into_iter();
            // NULL or "?": an endpoint the node does not know (e.g.
            // `cluster-preferred-endpoint-type unknown-endpoint`): the
            // host the question went to, as redis-rs does.
            let host: String = match parts.next() {
                Some(Value::Nil) | None => asked.to_string(),
                Some(value) => match redis::from_redis_value::<String>(value)? {
                    host if host.is_empty() || host == "?" => asked.to_string(),
                    host => host,
                },
            };
            let Some(Value::Int(port)) = parts.next() else { continue };
            nodes.push((host, u16::try_from(port).context("node port")?));
        }
        if nodes.is_empty() {
            bail!("CLUSTER SLOTS names no node for slots {start}-{end}");
        }
        map.push(SlotRange { start: u16::try_from(start)?, end: u16::try_from(end)?, nodes });
    }
    Ok(map)
}

/// Whether the server on `conn` runs in cluster mode (`INFO cluster`). A
/// server that refuses `INFO` (an ACL without `@dangerous`, a renamed
/// command) is taken for one server: a cluster is then named by the URL
/// (`redis+cluster://`).
pub(super) async fn is_cluster(conn: &mut redis::aio::MultiplexedConnection) -> Result<bool> {
    match redis::cmd("INFO").arg("cluster").query_async::<String>(conn).await {
        Ok(info) => Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1")),
        Err(error) if error.code().is_some() => {
            tracing::debug!("INFO cluster refused ({error}): taken for one server");
            Ok(false)
        }
        Err(error) => Err(anyhow::Error::from(error).context("INFO cluster failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn cluster_urls_list_nodes() {
        let (first, more) = split_nodes("u:p@a:1,b:2,[::1]:3/0").unwrap();
        assert_eq!(first, "redis://u:p@a:1/0");
        assert_eq!(more, [("b".to_string(), 2), ("[::1]".to_string(), 3)]);
        assert_eq!(split_nodes("h:7000").unwrap(), ("redis://h:7000".to_string(), vec![]));
        assert!(split_nodes("a:1,b").unwrap_err().to_string().contains("invalid node \"b\""));
    }

    #[test]
    fn slot_maps_parse_with_unknown_endpoints() {
        let node = |host: Value, port| Value::Array(vec![host, Value::Int(port), bulk("id")]);
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(bulk("10.0.0.1"), 7000),
                node(bulk("10.0.0.4"), 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node(Value::Nil, 7001)]),
            Value::Array(vec![Value::Int(0), Value::Int(1), node(bulk("?"), 7002)]),
        ]);
        let map = parse_slots(reply, "seed").unwrap();
        assert_eq!(map[0].nodes, [("10.0.0.1".to_string(), 7000), ("10.0.0.4".to_string(), 7003)]);
        assert_eq!(map[1].nodes, [("seed".to_string(), 7001)]);
        assert_eq!(map[2].nodes, [("seed".to_string(), 7002)]);
        assert!(parse_slots(Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(1)])]), "s").is_err());
        assert!(parse_slots(Value::Int(3), "s").is_err());
    }
}
