//! `host bench`: throughput and produce-to-ack latency of the real consumer
//! machinery. Produces N order entries into a fresh stream (pipelined, all
//! first; or alongside the consumers, paced at `--rate` or unpaced with
//! `--alongside`), runs a deployment over them
//! with a plugin or the built-in native handler, waits until every entry is
//! acked, and prints one JSON line. `--handler loop` runs instead a minimal
//! hand-written consumer loop (no host machinery), the reference to beat.

mod latency;
mod native;
mod produce;

use crate::config::{BenchConfig, Production, RunConfig};
use crate::consumer::{AckObserver, ConsumerStats};
use crate::effects::Effect;
use crate::handler::HandlerSource;
use crate::settings::AckMode;
use crate::streams::Redis;
use crate::supervise::deployment::Deployment;
use crate::wasm::engine::Engine;
use anyhow::{Context, Result, bail};
use latency::{Latency, now_us};
use native::Native;
use produce::{partitions, produce, producer_thread};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The benchmark's group.
const GROUP: &str = "bench";
/// The field carrying the produce time (µs since the Unix epoch).
pub const TS_FIELD: &str = "ts";

/// The analytics workload's writes for one paid order (what the analytics
/// plugin records), as the minimal loop makes them.
fn analytics_writes(stream: &str, entry: &crate::entry::Entry, into: &mut Vec<Effect>) {
    let text = |name| String::from_utf8_lossy(entry.field(name).unwrap_or_default()).into_owned();
    let (units, cents) =
        text("amount").split_once('.').map(|(u, c)| (u.to_string(), c.to_string())).unwrap_or_default();
    let cents = units.parse::<i64>().unwrap_or(0) * 100 + cents.parse::<i64>().unwrap_or(0);
    let totals = format!("{stream}:totals");
    into.push(Effect::Incr { key: totals.clone(), field: Some("count:order.paid".into()), by: 1 });
    into.push(Effect::Incr { key: totals, field: Some("revenue:order.paid".into()), by: cents });
    let field = |name: &str, value: String| (name.as_bytes().to_vec(), value.into_bytes());
    let fields = vec![
        field("order_id", text("order_id")),
        field("customer", text("customer")),
        field("amount_cents", cents.to_string()),
        field("source", entry.id.clone()),
    ];
    into.push(Effect::Emit { stream: format!("{stream}:paid"), fields, max_len: None });
}

/// CPU time (user + system) of this process so far, and its peak RSS in bytes.
fn usage() -> (f64, u64) {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (seconds(usage.ru_utime) + seconds(usage.ru_stime), usage.ru_maxrss as u64 * 1024)
}

/// CPU time the hypervisor gave to other guests (steal, all CPUs together),
/// in seconds since boot; `None` where /proc/stat does not say (not Linux).
/// On a shared virtual machine this is what makes runs noisy: it is
/// reported with each run so a slow one can be told apart from a slow host.
fn steal() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    // cpu user nice system idle iowait irq softirq steal …, in clock ticks.
    let ticks: f64 = cpu.split_whitespace().nth(8)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// Runs one benchmark and returns its JSON line.
pub async fn bench(config: BenchConfig, shutdown: CancellationToken) -> Result<String> {
    if config.minimal_loop && config.partitions.is_some() {
        bail!("--handler loop reads one stream: drop --partitions");
    }
    let (url, _local) = crate::streams::local::resolve(config.redis_url.as_deref(), &config.probe_url).await?;
    let redis = Redis::open(&url)?;
    let mut admin = redis.connect(Duration::ZERO).await?;
    // A hash tag of its own: the stream, its totals and its paid stream
    // share a slot, as the effects' commit needs on a cluster.
    let run_id = format!("{}-{}", std::process::id(), now_us());
    let stream = match config.partitions {
        Some(_) => format!("bench:{run_id}"),
        None => format!("bench:{{{run_id}}}"),
    };
    let (totals, paid) = (format!("{stream}:totals"), format!("{stream}:paid"));
    let streams = partitions(&stream, config.partitions);
    // A partitioned run has no effects (`--effects` conflicts): nothing beside the streams.
    let also: Vec<&str> = if config.partitions.is_some() { Vec::new() } else { vec![&totals, &paid] };
    for part in &streams {
        admin.recreate(part, &also, &[GROUP]).await?;
    }
    if config.effects && config.plugin.is_none() && !config.minimal_loop {
        bail!("--effects needs a plugin that records them (--plugin plugins/dist/analytics.wasm) or --handler loop");
    }

    let engine = Engine::new()?;
    let latency = Arc::new(Latency::new()?);
    let mut run = RunConfig::new(&url, config.plugin.clone().unwrap_or_default(), &stream, GROUP, "bench-1");
    run.settings.consumers = (1..=config.consumers).map(|i| format!("bench-{i}")).collect();
    run.settings.count = config.count;
    run.settings.partitions = config.partitions;
    if config.ack_each {
        run.settings.ack = AckMode::EachBeforeRead;
    }
    run.settings.block = Duration::from_millis(100);
    // No reaping during the run: every entry is read once and acked.
    run.settings.min_idle = Duration::from_secs(3600);
    run.settings.reap_interval = Duration::from_secs(3600);
    if config.effects {
        run.settings.limits.grants = Arc::new(crate::settings::Grants {
            keys: vec![totals.clone()],
            streams: vec![paid.clone()],
            ..Default::default()
        });
    }
    let plugin = match &config.plugin {
        Some(_) => Some(crate::supervise::reload::load(&engine, &run).await?),
        None => None,
    };
    let handler = match &plugin {
        _ if config.minimal_loop => "loop".to_string(),
        Some(plugin) => plugin.tag.name.clone(),
        None => native::NATIVE.to_string(),
    };

    if config.production == Production::Backlog {
        tracing::info!("producing {} entries…", config.entries);
        let started = Instant::now();
        produce(&redis, &streams, config.entries, None, config.effects).await?;
        tracing::info!(entries = config.entries, "produced the backlog in {} ms", started.elapsed().as_millis());
    }
    let (cpu_before, _) = usage();
    let steal_before = steal();
    let started = Instant::now();
    let producer = match config.production {
        Production::Backlog => None,
        Production::Paced(rate) => Some(producer_thread(&redis, &streams, config.entries, Some(rate), config.effects)?),
        Production::Alongside => Some(producer_thread(&redis, &streams, config.entries, None, config.effects)?),
    };
    if config.minimal_loop {
        minimal_loop(&redis, &stream, &config, &latency, &shutdown).await?;
        let seconds = started.elapsed().as_secs_f64();
        if let Some(producer) = producer {
            producer.await.context("producer panicked")??;
        }
        let (pending, _) = admin.pending_summary(&stream, GROUP).await?;
        let counted = counted(&mut admin, &config, &totals, &paid).await;
        let _ = admin.recreate(&stream, &[&totals, &paid], &[]).await;
        if pending != 0 {
            bail!("the minimal loop left {pending} of {} entries unacked", config.entries);
        }
        counted?;
        return Ok(report(&config, &handler, seconds, &latency, (cpu_before, steal_before)));
    }
    let observer: Arc<dyn AckObserver> = latency.clone();
    let deployed = match plugin {
        Some(plugin) => {
            consume(&redis, &run, Arc::new(plugin), observer, (started, producer), &config, &shutdown).await
        }
        None => consume(&redis, &run, Arc::new(Native::new()), observer, (started, producer), &config, &shutdown).await,
    };
    let (seconds, total) = deployed?;
    let counted = counted(&mut admin, &config, &totals, &paid).await;
    for part in &streams {
        let _ = admin.recreate(part, &also, &[]).await;
    }
    counted?;
    if total.acked != config.entries || total.handled != config.entries {
        bail!("handled {} and acked {} of {} entries", total.handled, total.acked, config.entries);
    }
    Ok(report(&config, &handler, seconds, &latency, (cpu_before, steal_before)))
}

/// With `--effects`: checks every entry was counted once and emitted once.
async fn counted(admin: &mut crate::streams::Connection, config: &BenchConfig, totals: &str, paid: &str) -> Result<()> {
    if !config.effects {
        return Ok(());
    }
    let count = admin.hash_field(totals, "count:order.paid").await?.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let emitted = admin.length(paid).await?;
    if count != config.entries || emitted != config.entries {
        bail!("counted {count} and emitted {emitted} of {} entries", config.entries);
    }
    Ok(())
}

/// Runs a deployment of `source` until it acked every entry (and the
/// producer, if any, finished); returns the seconds from `started` until
/// the last ack, and what the consumers did.
async fn consume<S: HandlerSource>(
    redis: &Redis,
    run: &RunConfig,
    source: Arc<S>,
    observer: Arc<dyn AckObserver>,
    (started, mut producer): (Instant, Option<JoinHandle<Result<()>>>),
    config: &BenchConfig,
    shutdown: &CancellationToken,
) -> Result<(f64, ConsumerStats)> {
    let mut deployment = Deployment::start_observed(redis, &run.settings, source, shutdown, Some(observer)).await?;
    let mut progress = crate::commands::progress::Progress::new("bench acked", Some(config.entries));
    loop {
        let acked: u64 = deployment.members().iter().map(|m| m.control.stats().acked).sum();
        progress.update(acked);
        if acked >= config.entries {
            break;
        }
        if shutdown.is_cancelled() {
            bail!("interrupted after {acked} of {} entries", config.entries);
        }
        if producer.as_ref().is_some_and(|p| p.is_finished()) {
            // Finished producing (or failed: then stop here with its error).
            producer.take().expect("checked").await.context("producer panicked")??;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(producer) = producer {
        producer.await.context("producer panicked")??;
    }
    deployment.stop();
    Ok((seconds, deployment.finished().await?.total()))
}

/// The JSON line of a finished run.
fn report(config: &BenchConfig, handler: &str, seconds: f64, latency: &Latency, before: (f64, Option<f64>)) -> String {
    let (cpu_before, steal_before) = before;
    let (cpu_after, peak_rss) = usage();
    let stolen = steal_before.zip(steal()).map(|(before, after)| ((after - before) * 100.0).round() / 100.0);
    let line = serde_json::json!({
        "handler": handler,
        "entries": config.entries,
        "consumers": config.consumers,
        "partitions": config.partitions,
        "count": config.count,
        "ack": if config.ack_each { "each" } else { "batch" },
        // A number (paced), "max" (alongside, unpaced) or null (backlog).
        "rate": match config.production {
            Production::Backlog => serde_json::Value::Null,
            Production::Paced(rate) => rate.into(),
            Production::Alongside => "max".into(),
        },
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "entries_per_s": (config.entries as f64 / seconds).round(),
        "latency_ms": {"p50": latency.millis(0.5), "p99": latency.millis(0.99), "p999": latency.millis(0.999)},
        "cpu_seconds": ((cpu_after - cpu_before) * 1000.0).round() / 1000.0,
        "peak_rss_mb": (peak_rss as f64 / 1048576.0 * 10.0).round() / 10.0,
        "steal_seconds": stolen,
    });
    format!("{line}\n")
}

/// The reference: a minimal consumer as one would write it by hand with
/// redis-rs (one connection, COUNT `count`, the XACK of each batch pipelined
/// with the next XREADGROUP), reading entries into the same `Entry` values
/// the host uses and handling none of them.
async fn minimal_loop(
    redis: &Redis,
    stream: &str,
    config: &BenchConfig,
    latency: &Latency,
    shutdown: &CancellationToken,
) -> Result<()> {
    let (entries, count) = (config.entries, config.count);
    let block = Duration::from_millis(100);
    let mut conn = redis.connect(block).await?;
    let (mut ids, mut produced): (Vec<String>, Vec<u64>) = (Vec::new(), Vec::new());
    let mut writes = Vec::new();
    let mut acked = 0;
    while acked < entries {
        if shutdown.is_cancelled() {
            bail!("interrupted after {acked} of {entries} entries");
        }
        if acked + ids.len() as u64 >= entries {
            // All read: the last XACK goes alone, not held up by a read
            // that would block until its timeout with nothing left to read.
            conn.write_then_ack(&writes, stream, GROUP, &ids).await?;
            latency.acked(&produced);
            break;
        }
        let batch = conn.ack_then_read(stream, GROUP, "loop-1", &writes, &ids, count, block).await?;
        latency.acked(&produced);
        acked += ids.len() as u64;
        ids.clear();
        produced.clear();
        writes.clear();
        for entry in batch.entries {
            produced.push(latency.stamp(&entry));
            if config.effects {
                analytics_writes(stream, &entry, &mut writes);
            }
            ids.push(entry.id);
        }
    }
    Ok(())
}
