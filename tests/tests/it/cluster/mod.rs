//! On a real local Redis Cluster (3 masters, 3 replicas, started by the
//! test support and stopped by pid): partitioned streams consumed by two
//! hosts with faults mixed in, a master killed mid-run, a partition's slot
//! resharded mid-run, and key layouts that would break a dead letter's
//! atomicity refused at start.

mod demo;
mod failover;
mod layout;
mod partitions;

use crate::support::*;
use redis::cluster_async::ClusterConnection;
use std::collections::BTreeMap;
use std::time::Duration;

/// What was produced: per partition, its entries' ids in stream order, and
/// what each entry asked of the chaos plugin.
pub struct Produced {
    pub ids: Vec<Vec<String>>,
    /// Entry id → its fields.
    pub fields: BTreeMap<String, Vec<(String, String)>>,
}

impl Produced {
    pub fn total(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }

    /// The partition entry `id` is in.
    pub fn partition_of_id(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|ids| ids.iter().any(|i| i == id))
    }
}

/// XADDs `n` entries to the `partitions` of `base`, entry i keyed by
/// `customer=c{i % 500}` and routed as `host produce --partition-key
/// customer` routes it; `log_first=P:K` (K: its place in partition P) comes
/// first, then `extra(i)`.
pub async fn produce(
    conn: &mut ClusterConnection,
    base: &str,
    partitions: u32,
    n: usize,
    extra: impl Fn(usize) -> Vec<(String, String)>,
) -> Produced {
    let mut batches: Vec<Vec<Vec<(String, String)>>> = vec![Vec::new(); partitions as usize];
    for i in 0..n {
        let customer = format!("c{}", i % 500);
        let p = host::partition_of(customer.as_bytes(), partitions) as usize;
        let k = batches[p].len();
        let mut fields = vec![("customer".to_string(), customer), ("log_first".to_string(), format!("{p}:{k}"))];
        fields.extend(extra(i));
        batches[p].push(fields);
    }
    let mut produced = Produced { ids: Vec::new(), fields: BTreeMap::new() };
    for (p, batch) in batches.into_iter().enumerate() {
        let stream = host::partition_name(base, p as u32);
        let mut ids = Vec::new();
        for chunk in batch.chunks(500) {
            let mut pipe = redis::pipe();
            for fields in chunk {
                pipe.cmd("XADD").arg(&stream).arg("*").arg(fields);
            }
            let added: Vec<String> = pipe.query_async(conn).await.expect("XADD to a partition");
            for (id, fields) in added.into_iter().zip(chunk) {
                produced.fields.insert(id.clone(), fields.clone());
                ids.push(id);
            }
        }
        produced.ids.push(ids);
    }
    produced
}

/// A group on one stream as `XINFO GROUPS` says: (pending, lag, entries read).
pub async fn group_state(conn: &mut ClusterConnection, stream: &str, group: &str) -> Option<(u64, i64, i64)> {
    let groups: Vec<BTreeMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("GROUPS").arg(stream).query_async(conn).await.ok()?;
    let group = groups
        .into_iter()
        .find(|g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes()))?;
    let int = |key: &str| match group.get(key) {
        Some(redis::Value::Int(i)) => *i,
        _ => -1,
    };
    Some((int("pending") as u64, int("lag"), int("entries-read")))
}

/// Whether every partition's group has nothing pending and nothing unread.
pub async fn drained(conn: &mut ClusterConnection, base: &str, partitions: u32, group: &str) -> bool {
    for p in 0..partitions {
        match group_state(conn, &host::partition_name(base, p), group).await {
            Some((0, 0, _)) => {}
            _ => return false,
        }
    }
    true
}

/// Polls [`drained`] until it holds; fails after `limit`.
pub async fn wait_drained_all(conn: &mut ClusterConnection, base: &str, partitions: u32, group: &str, limit: Duration) {
    let start = std::time::Instant::now();
    while !drained(conn, base, partitions, group).await {
        let mut states = Vec::new();
        for p in 0..partitions {
            states.push(group_state(conn, &host::partition_name(base, p), group).await);
        }
        assert!(
            start.elapsed() < limit,
            "not drained within {} s: (pending, lag, read) per partition {states:?}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `host run` of the chaos plugin on the `partitions` of `base` (group `g`,
/// two consumers), against `cluster`, with quick recovery timings.
pub fn chaos_host(url: &str, base: &str, partitions: u32, extra: &[&str]) -> HostProcess {
    let plugin = plugin("chaos");
    Host::new(["run", "--plugin", plugin.to_str().unwrap(), "--stream", base, "--group", "g"])
        .args(["--partitions", &partitions.to_string(), "--consumers", "2", "--redis", url])
        .args(["--min-idle-ms", "1000", "--reap-interval-ms", "200", "--block-ms", "200", "--max-deliveries", "3"])
        .args(extra)
        .logging()
        .start()
}

/// The `first P:K` lines of a host's log (chaos `log_first`), in log order.
pub fn first_deliveries(log: &[String]) -> Vec<(usize, usize)> {
    log.iter()
        .filter_map(|line| {
            let rest = &line[line.find(" first ")? + 7..];
            let (p, k) = rest.split_whitespace().next()?.split_once(':')?;
            Some((p.parse().ok()?, k.parse().ok()?))
        })
        .collect()
}

/// The ids in `handled <id> by <consumer>` lines (chaos: each Ok), in log order.
pub fn handled_ids(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|line| {
            let rest = &line[line.find("handled ")? + 8..];
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}
