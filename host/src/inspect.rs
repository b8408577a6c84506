//! Inspection and repair commands: `host pending`, `host dlq list`,
//! `host dlq requeue`. Each returns the text to print.

use crate::config::{InspectConfig, RequeueConfig};
use crate::dead_letter::DeadLetter;
use crate::streams::{Connection, Redis};
use anyhow::{Result, bail};
use std::fmt::Write;
use std::time::Duration;

async fn connect(url: &str) -> Result<Connection> {
    Redis::open(url)?.connect(Duration::ZERO).await
}

/// `host pending`: per-consumer counts, then the oldest entries with idle
/// time and delivery count.
pub async fn pending(config: &InspectConfig) -> Result<String> {
    let mut conn = connect(&config.redis_url).await?;
    let (stream, group) = (&config.stream, &config.group);
    let (total, per_consumer) = conn.pending_summary(stream, group).await?;
    let mut out = format!("stream {stream} group {group}: {total} pending\n");
    if total == 0 {
        return Ok(out);
    }
    writeln!(out, "\n{:<24} {:>10}", "CONSUMER", "PENDING")?;
    for (name, n) in &per_consumer {
        writeln!(out, "{name:<24} {n:>10}")?;
    }
    writeln!(out, "\n{:<22} {:<24} {:>10} {:>10}", "ID", "CONSUMER", "IDLE-MS", "DELIVERIES")?;
    for p in conn.pending(stream, group, None, config.count).await? {
        writeln!(out, "{:<22} {:<24} {:>10} {:>10}", p.id, p.consumer, p.idle_ms, p.deliveries)?;
    }
    if total > config.count as u64 {
        writeln!(out, "… {} more (raise --count)", total - config.count as u64)?;
    }
    Ok(out)
}

/// `host dlq list`: each dead letter with its metadata and original fields.
pub async fn dlq_list(config: &InspectConfig) -> Result<String> {
    let mut conn = connect(&config.redis_url).await?;
    let entries = conn.range(&config.dead_letter, "-", "+", Some(config.count)).await?;
    let mut out = format!("dead-letter stream {}: {} shown\n", config.dead_letter, entries.len());
    for entry in entries {
        let dead = DeadLetter::parse(entry)?;
        let m = |k: &str| dead.meta(k).unwrap_or("?").to_string();
        writeln!(
            out,
            "\n{}  from {} {}  group {}  consumer {}\n  reason: {}  deliveries: {}  plugin: {}@{}  time-ms: {}\n  error: {}",
            dead.dead_id,
            m("dlq:stream"),
            m("dlq:id"),
            m("dlq:group"),
            m("dlq:consumer"),
            m("dlq:reason"),
            m("dlq:deliveries"),
            m("dlq:plugin"),
            m("dlq:version"),
            m("dlq:time-ms"),
            m("dlq:error"),
        )?;
        for (name, value) in &dead.fields {
            writeln!(out, "  {} = {}", String::from_utf8_lossy(name), printable(value))?;
        }
    }
    Ok(out)
}

/// `host dlq requeue`: each chosen dead letter goes back onto its origin
/// stream as a new entry and off the dead-letter stream, atomically.
pub async fn dlq_requeue(config: &RequeueConfig) -> Result<String> {
    let mut conn = connect(&config.redis_url).await?;
    let dlq = &config.dead_letter;
    let mut out = String::new();
    let mut requeued = 0;
    if config.ids.is_empty() {
        // All: page from the start, skipping records that cannot be requeued.
        let mut start = "-".to_string();
        loop {
            let page = conn.range(dlq, &start, "+", Some(100)).await?;
            let Some(last) = page.last() else { break };
            start = format!("({}", last.id);
            for entry in page {
                requeued += requeue_one(&mut conn, dlq, entry, &mut out).await?;
            }
        }
    } else {
        for id in &config.ids {
            let Some(entry) = conn.range(dlq, id, id, Some(1)).await?.pop() else {
                bail!("no entry {id} in dead-letter stream {dlq:?}");
            };
            requeued += requeue_one(&mut conn, dlq, entry, &mut out).await?;
        }
    }
    writeln!(out, "requeued {requeued} entries from {dlq}")?;
    Ok(out)
}

async fn requeue_one(conn: &mut Connection, dlq: &str, entry: crate::entry::Entry, out: &mut String) -> Result<u32> {
    let dead = DeadLetter::parse(entry)?;
    let Some(origin) = dead.meta("dlq:stream") else {
        bail!("dead letter {} has no dlq:stream", dead.dead_id);
    };
    if dead.fields.is_empty() {
        writeln!(
            out,
            "skipped {}: an audit record ({}) has no payload to requeue",
            dead.dead_id,
            dead.meta("dlq:reason").unwrap_or("?")
        )?;
        return Ok(0);
    }
    let new_id = conn.requeue(dlq, &dead.dead_id, origin, &dead.fields).await?;
    writeln!(
        out,
        "requeued {} (was {} {}) as {} {}",
        dead.dead_id,
        origin,
        dead.meta("dlq:id").unwrap_or("?"),
        origin,
        new_id
    )?;
    Ok(1)
}

/// UTF-8 text as is (quoted), anything else as hex.
fn printable(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("0x{}", value.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}
