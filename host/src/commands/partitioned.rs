//! `host info`, `host pending` and `host dlq list|requeue` on a
//! partitioned stream (`--partitions N`): the partitions summed first, then
//! each partition as the single-stream command shows it. Without
//! `--partitions` each is the single-stream command itself.
//!
//! On a Redis Cluster the default dead-letter key of a stream without a
//! hash tag is `{STREAM}:dlq` (its slot, `keys::cluster_dead_letter`), as
//! the consumers use it.

use super::inspect;
use crate::config::{InspectConfig, RequeueConfig, StreamConfig};
use crate::keys::partition_name;
use crate::streams::Redis;
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// `host info [--partitions N]`.
pub async fn info(config: &StreamConfig) -> Result<String> {
    let Some(n) = config.partitions else { return inspect::info(config).await };
    let mut conn = Redis::open(&config.redis_url)?.connect(Duration::ZERO).await?;
    let (mut length, mut groups) = (0u64, BTreeMap::<String, (u64, Option<u64>)>::new());
    let mut each = Vec::new();
    for p in 0..n {
        let part = StreamConfig { stream: partition_name(&config.stream, p), partitions: None, ..config.clone() };
        if let Ok(info) = conn.stream_info(&part.stream).await {
            length += info.length;
        }
        for group in conn.groups(&part.stream).await.unwrap_or_default() {
            let sum = groups.entry(group.name).or_insert((0, Some(0)));
            sum.0 += group.pending;
            sum.1 = sum.1.zip(group.lag).map(|(a, b)| a + b);
        }
        each.push(inspect::info(&part).await.unwrap_or_else(|e| format!("{}: {e:#}\n", part.stream)));
    }
    if config.json {
        let groups: Vec<_> = groups
            .iter()
            .map(|(name, (pending, lag))| serde_json::json!({"name": name, "pending": pending, "lag": lag}))
            .collect();
        let parts: Vec<serde_json::Value> = each.iter().filter_map(|line| serde_json::from_str(line).ok()).collect();
        let json = serde_json::json!({"stream": config.stream, "partitions": n, "length": length,
            "groups": groups, "per_partition": parts});
        return Ok(format!("{json}\n"));
    }
    let mut out = format!("stream {} in {n} partitions: {length} entries in all\n", config.stream);
    for (name, (pending, lag)) in &groups {
        let lag = lag.map_or_else(|| "unknown".to_string(), |n| n.to_string());
        writeln!(out, "group {name}: {pending} pending, lag {lag} in all")?;
    }
    for text in each {
        write!(out, "\n{text}")?;
    }
    Ok(out)
}

/// `host pending [--partitions N]`.
pub async fn pending(config: &InspectConfig) -> Result<String> {
    let Some(n) = config.partitions else { return inspect::pending(config).await };
    let mut conn = Redis::open(&config.redis_url)?.connect(Duration::ZERO).await?;
    let (mut total, mut per_consumer, mut each) = (0u64, BTreeMap::<String, u64>::new(), Vec::new());
    for p in 0..n {
        let part = part_of(config, p);
        match conn.pending_summary(&part.stream, &part.group).await {
            Ok((count, consumers)) => {
                total += count;
                for (name, count) in consumers {
                    *per_consumer.entry(name).or_default() += count;
                }
                each.push(inspect::pending(&part).await?);
            }
            // A partition no consumer has read yet has no group: say so, go on.
            Err(error) if crate::streams::is_missing_group(&error) => {
                each.push(format!("stream {} group {}: no such group (or stream) yet\n", part.stream, part.group));
            }
            Err(error) => return Err(error),
        }
    }
    let mut out = format!("stream {} ({n} partitions) group {}: {total} pending in all\n", config.stream, config.group);
    for (name, count) in &per_consumer {
        writeln!(out, "  {name:<24} {count:>10}")?;
    }
    for text in each {
        write!(out, "\n{text}")?;
    }
    Ok(out)
}

/// `host dlq list [--partitions N]`.
pub async fn dlq_list(config: &InspectConfig) -> Result<String> {
    let Some(n) = config.partitions else {
        let dead_letter = Redis::open(&config.redis_url)?.dead_letter_of(&config.stream, &config.dead_letter).await?;
        return inspect::dlq_list(&InspectConfig { dead_letter, ..config.clone() }).await;
    };
    let mut conn = Redis::open(&config.redis_url)?.connect(Duration::ZERO).await?;
    let (mut total, mut each) = (0u64, Vec::new());
    for p in 0..n {
        let part = part_of(config, p);
        total += conn.length(&part.dead_letter).await?;
        each.push(inspect::dlq_list(&part).await?);
    }
    if config.json {
        return Ok(each.concat());
    }
    let mut out =
        format!("dead letters of {} ({n} partitions, {}:{{p}}): {total} in all\n", config.stream, config.dead_letter);
    for text in each {
        write!(out, "\n{text}")?;
    }
    Ok(out)
}

/// `host dlq requeue [--partitions N]`: each partition's dead letters back
/// onto their own partition.
pub async fn dlq_requeue(config: &RequeueConfig) -> Result<String> {
    let Some(n) = config.partitions else {
        let dead_letter = Redis::open(&config.redis_url)?.dead_letter_of(&config.stream, &config.dead_letter).await?;
        return crate::commands::redrive::dlq_requeue(&RequeueConfig { dead_letter, ..config.clone() }).await;
    };
    let mut conn = Redis::open(&config.redis_url)?.connect(Duration::ZERO).await?;
    let (mut out, mut missing) = (String::new(), config.ids.clone());
    for p in 0..n {
        let dead_letter = partition_name(&config.dead_letter, p);
        // Named ids: each from the partition whose dead letters hold it.
        let mut ids = Vec::new();
        for id in &config.ids {
            if !conn.range(&dead_letter, id, id, Some(1)).await?.is_empty() {
                ids.push(id.clone());
            }
        }
        if !config.ids.is_empty() && ids.is_empty() {
            continue;
        }
        missing.retain(|id| !ids.contains(id));
        let part = RequeueConfig {
            stream: partition_name(&config.stream, p),
            dead_letter,
            ids,
            partitions: None,
            ..config.clone()
        };
        out.push_str(&crate::commands::redrive::dlq_requeue(&part).await?);
    }
    if let Some(id) = missing.first() {
        anyhow::bail!("no entry {id} in the dead letters of any of the {n} partitions ({}:{{p}})", config.dead_letter);
    }
    Ok(out)
}

fn part_of(config: &InspectConfig, p: u32) -> InspectConfig {
    InspectConfig {
        stream: partition_name(&config.stream, p),
        dead_letter: partition_name(&config.dead_letter, p),
        partitions: None,
        ..config.clone()
    }
}
