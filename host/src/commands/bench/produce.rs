//! Producing `host bench`'s entries: order entries (stamped with their
//! produce time), pipelined into the stream or routed over its partitions
//! by order id, all first or alongside the consumers.

use super::TS_FIELD;
use super::latency::now_us;
use crate::streams::Redis;
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

/// Entries per pipeline when producing the backlog.
const PRODUCE_BATCH: usize = 1000;

/// Order entries `from..to` of three fields, all stamped now; for the
/// analytics workload (`paid`), paid orders of five fields.
fn orders(from: u64, to: u64, paid: bool) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let ts = now_us().to_string().into_bytes();
    (from..to)
        .map(|i| {
            let mut fields = vec![
                (b"order_id".to_vec(), format!("o-{i}").into_bytes()),
                (b"amount".to_vec(), format!("{}.{:02}", i % 500, i % 100).into_bytes()),
                (TS_FIELD.as_bytes().to_vec(), ts.clone()),
            ];
            if paid {
                fields.push((b"type".to_vec(), b"order.paid".to_vec()));
                fields.push((b"customer".to_vec(), b"c".to_vec()));
            }
            fields
        })
        .collect()
}

/// The producer running alongside the consumers (paced at `rate`, or as fast
/// as pipelining allows), on a thread and runtime of its own as a producing
/// service would be: its work then does not queue behind the consumers' tasks
/// on the host's runtime (it still shares the machine's cores with them).
pub(super) fn producer_thread(
    redis: &Redis,
    streams: &[String],
    entries: u64,
    rate: Option<u64>,
    paid: bool,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let (redis, streams) = (redis.clone(), streams.to_vec());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("producer runtime")?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-producer".into())
        .spawn(move || {
            let _ = done.send(runtime.block_on(produce(&redis, &streams, entries, rate, paid)));
        })
        .context("cannot start the producer thread")?;
    Ok(tokio::spawn(async move { finished.await.unwrap_or_else(|_| bail!("the producer thread panicked")) }))
}

/// The streams of `stream`: itself, or its `partitions`.
pub(super) fn partitions(stream: &str, partitions: Option<u32>) -> Vec<String> {
    match partitions {
        Some(n) => (0..n).map(|p| crate::keys::partition_name(stream, p)).collect(),
        None => vec![stream.to_string()],
    }
}

/// XADDs orders `from..to` to `streams`: to the one, or each to the
/// partition its `order_id` picks (as `host produce --partition-key order_id`).
async fn add_orders(
    conn: &mut crate::streams::Connection,
    streams: &[String],
    from: u64,
    to: u64,
    paid: bool,
) -> Result<()> {
    let batch = orders(from, to, paid);
    if let [stream] = streams {
        return conn.add_batch(stream, &batch).await.map(|_| ());
    }
    let mut by_partition = vec![Vec::new(); streams.len()];
    for fields in batch {
        let p = crate::keys::partition_of(&fields[0].1, streams.len() as u32) as usize;
        by_partition[p].push(fields);
    }
    for (stream, batch) in streams.iter().zip(by_partition) {
        if !batch.is_empty() {
            conn.add_batch(stream, &batch).await?;
        }
    }
    Ok(())
}

/// XADDs `entries` orders: as fast as pipelining allows, or paced at `rate`
/// per second (a pipeline per millisecond tick).
pub(super) async fn produce(
    redis: &Redis,
    streams: &[String],
    entries: u64,
    rate: Option<u64>,
    paid: bool,
) -> Result<()> {
    let mut conn = redis.connect(Duration::ZERO).await?;
    let Some(rate) = rate else {
        let mut sent = 0;
        while sent < entries {
            let n = (entries - sent).min(PRODUCE_BATCH as u64);
            add_orders(&mut conn, streams, sent, sent + n, paid).await?;
            sent += n;
        }
        return Ok(());
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0;
    while sent < entries {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(entries);
        if due > sent {
            add_orders(&mut conn, streams, sent, due, paid).await?;
            sent = due;
        }
    }
    Ok(())
}
