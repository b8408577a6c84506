//! Stream ownership mode (`host run --assignments`): data streams assigned
//! through a load-balancer stream in the seed library's format, each owned
//! by one worker at a time and handled in order, taken over when a worker
//! dies or stalls, its late writes refused by Redis.
//!
//! The chaos plugin checks the order itself: each entry carries `seq=N`,
//! and the plugin rejects a gap or a step back (kept in `<stream>:seq`,
//! written with the ack), so any order break shows up as a dead letter.
//! Every test runs on a private redis-server: they change its
//! `notify-keyspace-events` and stop workers abruptly.

mod demo;
mod failover;
mod fencing;
mod scale;
mod streams;

pub use crate::support::*;
pub use std::collections::{BTreeMap, BTreeSet};
pub use std::time::{Duration, Instant};

pub const SERVICE: &str = "sessions";
pub const ASSIGNMENTS: &str = "sessions-input";
/// Test timings: a lease of 1 s renewed every 300 ms.
pub const LEASE_TTL_MS: u64 = 1000;
pub const HEARTBEAT_MS: u64 = 300;

/// A worker `id` of the `sessions` service on `url`, running the chaos
/// plugin with `extra` flags (its `seq` checks need `*:seq` granted).
pub fn worker(url: &str, id: &str, extra: &[&str]) -> HostProcess {
    let chaos = plugin("chaos");
    let (ttl, beat) = (LEASE_TTL_MS.to_string(), HEARTBEAT_MS.to_string());
    Host::new(["run", "--assignments", ASSIGNMENTS, "--plugin", chaos.to_str().unwrap(), "--redis", url])
        .args(["--consumer", id, "--lease-ttl-ms", &ttl, "--heartbeat-ms", &beat, "--grant-key", "*:seq"])
        .args(["--min-idle-ms", "100", "--block-ms", "200"])
        .args(extra)
        .logging()
        .start()
}

/// Data stream `i` of a test.
pub fn data_stream(test: &str, i: usize) -> String {
    format!("{test}:session:{i}")
}

/// Appends `n` entries `seq=1..n` to `stream`, each with `extra` fields;
/// the last one gets `last` fields too (e.g. `finish`), but an end marker
/// (`lbs-end`) in `last` is an entry of its own after it.
pub async fn fill(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    n: usize,
    extra: &[(&str, &str)],
    last: &[(&str, &str)],
) {
    let mut pipe = redis::pipe();
    for i in 1..=n {
        let cmd = pipe.cmd("XADD").arg(stream).arg("*").arg("seq").arg(i);
        for (k, v) in extra {
            cmd.arg(*k).arg(*v);
        }
        if i == n {
            for (k, v) in last.iter().filter(|(k, _)| *k != "lbs-end") {
                cmd.arg(*k).arg(*v);
            }
        }
        cmd.ignore();
    }
    if last.iter().any(|(k, _)| *k == "lbs-end") {
        pipe.cmd("XADD").arg(stream).arg("*").arg("lbs-end").arg("1").ignore();
    }
    let () = pipe.query_async(conn).await.unwrap();
}

/// Assigns `stream` the way a producer written for the seed library does:
/// a plain XADD of field `lbs-input` holding the JSON message.
pub async fn assign_raw(conn: &mut redis::aio::MultiplexedConnection, stream: &str, info: &str) -> String {
    let message = format!(r#"{{"DataStreamName":"{stream}","Info":{info}}}"#);
    redis::cmd("XADD").arg(ASSIGNMENTS).arg("*").arg("lbs-input").arg(message).query_async(conn).await.unwrap()
}

/// Waits until every assignment is acked (none pending, none undelivered).
pub async fn wait_assignments_done(conn: &mut redis::aio::MultiplexedConnection, total: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let len = xlen(conn, ASSIGNMENTS).await;
        let info = group_info(conn, ASSIGNMENTS, SERVICE).await;
        if let Some(g) = &info
            && len == total
            && g.pending == 0
            && g.lag == Some(0)
        {
            return;
        }
        assert!(start.elapsed() < limit, "assignments not all done within {limit:?}: {len} of {total}, group {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lease keys left (`…:owner`).
pub async fn leases_left(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    redis::cmd("KEYS").arg("*:owner").query_async(conn).await.unwrap()
}

/// `<stream>:seq` of each stream: the last sequence number acked.
pub async fn last_seq(conn: &mut redis::aio::MultiplexedConnection, streams: &[String]) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for stream in streams {
        let v: Option<u64> = redis::cmd("GET").arg(format!("{stream}:seq")).query_async(conn).await.unwrap();
        out.push(v);
    }
    out
}

/// The dead letters of the service (order breaks land here).
pub async fn service_dead_letters(conn: &mut redis::aio::MultiplexedConnection) -> Vec<host::DeadLetter> {
    dead_letters(conn, ASSIGNMENTS).await
}

/// The streams a worker's log says it started owning (`owning` or `took over`), in order.
pub fn owned_in(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| l.contains("owning the stream") || l.contains("took over the stream"))
        .filter_map(|l| field(l, "stream"))
        .collect()
}

/// The value of `name=VALUE` in a log line.
pub fn field(line: &str, name: &str) -> Option<String> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[at..];
    let value = rest.split_whitespace().next()?;
    Some(value.trim_matches('"').to_string())
}

/// `seq STREAM N delivery D` lines of the chaos plugin: (stream, n, delivery).
pub fn seq_lines(log: &[String]) -> Vec<(String, u64, u32)> {
    log.iter()
        .filter_map(|l| {
            let at = l.find("seq ")?;
            let mut words = l[at + 4..].split_whitespace();
            let stream = words.next()?.to_string();
            let n = words.next()?.parse().ok()?;
            let _ = words.next()?;
            let d = words.next()?.trim_matches('"').parse().ok()?;
            Some((stream, n, d))
        })
        .collect()
}
