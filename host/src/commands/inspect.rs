//! Inspection and repair commands: `host info`, `host tail`, `host replay`,
//! `host trim`, `host pending`, `host dlq list`, `host dlq requeue`. Each
//! returns the text to print (`tail` prints as entries arrive); `--json`
//! gives one JSON object per line instead.

use crate::config::{EventsConfig, InspectConfig, ReplayConfig, StreamConfig, TrimConfig};
use crate::dead_letter::DeadLetter;
use crate::entry::Entry;
use crate::streams::{Connection, Redis};
use anyhow::Result;
use std::fmt::Write;
use std::time::Duration;

async fn connect(url: &str) -> Result<Connection> {
    Redis::open(url)?.connect(Duration::ZERO).await
}

/// `host info`: what `XINFO STREAM`, `XINFO GROUPS` and `XINFO CONSUMERS` say.
pub async fn info(config: &StreamConfig) -> Result<String> {
    let mut conn = connect(&config.redis_url).await?;
    let stream = &config.stream;
    let info = conn.stream_info(stream).await.map_err(|error| match format!("{error:#}").contains("no such key") {
        true => anyhow::anyhow!("stream {stream:?} does not exist (check --stream and --redis)"),
        false => error,
    })?;
    let mut groups = Vec::new();
    for group in conn.groups(stream).await? {
        let consumers = conn.consumers(stream, &group.name).await?;
        groups.push((group, consumers));
    }
    if config.json {
        let groups: Vec<_> = groups
            .iter()
            .map(|(g, consumers)| {
                let consumers: Vec<_> = consumers
                    .iter()
                    .map(|c| serde_json::json!({"name": c.name, "pending": c.pending, "idle_ms": c.idle_ms}))
                    .collect();
                serde_json::json!({"name": g.name, "consumers": consumers, "pending": g.pending,
                    "last_delivered_id": g.last_delivered_id, "lag": g.lag})
            })
            .collect();
        let json = serde_json::json!({"stream": stream, "length": info.length, "first_id": info.first_id,
            "last_id": info.last_id, "last_generated_id": info.last_generated_id, "groups": groups});
        return Ok(format!("{json}\n"));
    }
    let id = |id: &Option<String>| id.clone().unwrap_or_else(|| "-".into());
    let mut out = format!(
        "stream {stream}: {} entries, first {}, last {}, last generated {}, {} groups\n",
        info.length,
        id(&info.first_id),
        id(&info.last_id),
        info.last_generated_id,
        info.groups
    );
    for (group, consumers) in &groups {
        let lag = group.lag.map_or_else(|| "unknown".to_string(), |n| n.to_string());
        writeln!(
            out,
            "\ngroup {}: {} consumers, {} pending, last delivered {}, lag {lag}",
            group.name, group.consumers, group.pending, group.last_delivered_id
        )?;
        if !consumers.is_empty() {
            writeln!(out, "  {:<24} {:>10} {:>12}", "CONSUMER", "PENDING", "IDLE-MS")?;
        }
        for c in consumers {
            writeln!(out, "  {:<24} {:>10} {:>12}", c.name, c.pending, c.idle_ms)?;
        }
    }
    Ok(out)
}

/// `host replay`: the entries of an `XRANGE`, oldest first.
pub async fn replay(config: &ReplayConfig) -> Result<String> {
    let mut conn = connect(&config.target.redis_url).await?;
    let entries = conn.range(&config.target.stream, &config.from, &config.to, config.count).await?;
    let mut out = String::new();
    for entry in &entries {
        out.push_str(&entry_line(entry, config.target.json));
    }
    if !config.target.json {
        writeln!(out, "{} entries from {} ({} .. {})", entries.len(), config.target.stream, config.from, config.to)?;
    }
    Ok(out)
}

/// `host trim`: `XTRIM … MAXLEN|MINID [~|=]`, then the new length.
pub async fn trim(config: &TrimConfig) -> Result<String> {
    let mut conn = connect(&config.target.redis_url).await?;
    let stream = &config.target.stream;
    let trimmed = conn.trim(stream, &config.trim, config.exact).await?;
    let length = conn.stream_info(stream).await.map(|i| i.length).unwrap_or(0);
    Ok(if config.target.json {
        format!("{}\n", serde_json::json!({"stream": stream, "trimmed": trimmed, "length": length}))
    } else {
        format!("trimmed {trimmed} entries from {stream}; {length} left\n")
    })
}

/// `host tail`: prints entries added from now on, like `tail -f` (no group
/// state is touched), until `shutdown`.
pub async fn tail(config: &StreamConfig, shutdown: tokio_util::sync::CancellationToken) -> Result<()> {
    let mut conn = connect(&config.redis_url).await?;
    let after = last_id(&mut conn, &config.stream).await;
    follow(config, after, shutdown).await
}

/// The id of the newest entry `stream` ever had (`0-0` when there is no stream).
async fn last_id(conn: &mut crate::streams::Connection, stream: &str) -> String {
    conn.stream_info(stream).await.map(|i| i.last_generated_id).unwrap_or_else(|_| "0-0".into())
}

/// Prints the entries of `config.stream` added after id `after`, as they
/// come, until `shutdown`.
async fn follow(config: &StreamConfig, mut after: String, shutdown: tokio_util::sync::CancellationToken) -> Result<()> {
    use std::io::Write as _;
    let block = Duration::from_millis(500);
    let mut conn = Redis::open(&config.redis_url)?.connect(block).await?;
    tracing::info!(stream = %config.stream, "following entries added after {after}");
    let mut stdout = std::io::stdout();
    while !shutdown.is_cancelled() {
        let entries = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = conn.read_after(&config.stream, &after, 1000, block) => read?,
        };
        for entry in &entries {
            stdout.write_all(entry_line(entry, config.json).as_bytes())?;
        }
        stdout.flush()?;
        if let Some(last) = entries.last() {
            after = last.id.clone();
        }
    }
    Ok(())
}

/// `host events`: the newest failure events (oldest first), then with
/// `follow` each new one as it comes, until `shutdown`.
pub async fn events(config: &EventsConfig, shutdown: tokio_util::sync::CancellationToken) -> Result<()> {
    use std::io::Write as _;
    let mut conn = connect(&config.target.redis_url).await?;
    // Taken before the newest are read, so that following from it (or from
    // the last one printed) misses nothing added meanwhile.
    let before = last_id(&mut conn, &config.target.stream).await;
    let mut newest = conn.latest(&config.target.stream, config.count).await?;
    newest.reverse();
    let mut out = String::new();
    for entry in &newest {
        out.push_str(&entry_line(entry, config.target.json));
    }
    std::io::stdout().write_all(out.as_bytes())?;
    if config.follow {
        let after = newest.last().map_or(before, |e| e.id.clone());
        follow(&config.target, after, shutdown).await?;
    }
    Ok(())
}

/// One entry as a line: `ID field=value …` (values quoted, binary as hex), or
/// `{"id": …, "fields": [[name, value], …]}` with binary values as `{"hex": …}`.
/// An entry as JSON: `{"id", "fields": [[name, value], …]}`, each name and
/// value a string when it is UTF-8, else `{"hex": …}`.
pub fn entry_json(entry: &Entry) -> serde_json::Value {
    let fields: Vec<_> = entry.fields.iter().map(|(n, v)| serde_json::json!([text_json(n), text_json(v)])).collect();
    serde_json::json!({"id": entry.id, "fields": fields})
}

/// Bytes as a JSON string when UTF-8, else `{"hex": …}`.
pub fn text_json(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => serde_json::Value::from(s),
        Err(_) => serde_json::json!({"hex": hex(bytes)}),
    }
}

fn entry_line(entry: &Entry, json: bool) -> String {
    if json {
        return format!("{}\n", entry_json(entry));
    }
    let mut line = entry.id.clone();
    for (name, value) in &entry.fields {
        let _ = write!(line, " {}={}", String::from_utf8_lossy(name), printable(value));
    }
    line.push('\n');
    line
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    if config.json {
        let mut out = String::new();
        for entry in entries {
            let dead = DeadLetter::parse(entry)?;
            let meta: serde_json::Map<String, serde_json::Value> =
                dead.meta.iter().map(|(k, v)| (k.trim_start_matches("dlq:").to_string(), v.as_str().into())).collect();
            let fields: Vec<_> =
                dead.fields.iter().map(|(n, v)| serde_json::json!([text_json(n), text_json(v)])).collect();
            writeln!(out, "{}", serde_json::json!({"dead_id": dead.dead_id, "meta": meta, "fields": fields}))?;
        }
        return Ok(out);
    }
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

/// UTF-8 text as is (quoted), anything else as hex.
fn printable(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("0x{}", hex(value)),
    }
}
