//! `host bench`: throughput and produce-to-ack latency of the real consumer
//! machinery. Produces N order entries into a fresh stream (pipelined, all
//! first; or alongside the consumers, paced at `--rate` or unpaced with
//! `--alongside`), runs a deployment over them
//! with a plugin or the built-in native handler, waits until every entry is
//! acked, and prints one JSON line. `--handler loop` runs instead a minimal
//! hand-written consumer loop (no host machinery), the reference to beat.

mod latency;
mod native;

use crate::config::{BenchConfig, Production, RunConfig};
use crate::consumer::{AckObserver, ConsumerStats};
use crate::handler::HandlerSource;
use crate::settings::AckMode;
use crate::streams::Redis;
use crate::supervise::deployment::Deployment;
use crate::wasm::engine::Engine;
use anyhow::{Context, Result, bail};
use latency::{Latency, now_us};
use native::Native;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The benchmark's group.
const GROUP: &str = "bench";
/// Entries per pipeline when producing the backlog.
const PRODUCE_BATCH: usize = 1000;
/// The field carrying the produce time (µs since the Unix epoch).
pub const TS_FIELD: &str = "ts";

/// Order entries `from..to` of three fields, all stamped now.
fn orders(from: u64, to: u64) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let ts = now_us().to_string().into_bytes();
    (from..to)
        .map(|i| {
            vec![
                (b"order_id".to_vec(), format!("o-{i}").into_bytes()),
                (b"amount".to_vec(), format!("{}.{:02}", i % 500, i % 100).into_bytes()),
                (TS_FIELD.as_bytes().to_vec(), ts.clone()),
            ]
        })
        .collect()
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
    let (url, _local) = crate::streams::local::resolve(config.redis_url.as_deref(), &config.probe_url).await?;
    let redis = Redis::open(&url)?;
    let mut admin = redis.connect(Duration::ZERO).await?;
    let stream = format!("bench:{}:{}", std::process::id(), now_us());
    admin.recreate(&stream, &[], &[GROUP]).await?;

    let engine = Engine::new()?;
    let latency = Arc::new(Latency::new()?);
    let mut run = RunConfig::new(&url, config.plugin.clone().unwrap_or_default(), &stream, GROUP, "bench-1");
    run.settings.consumers = (1..=config.consumers).map(|i| format!("bench-{i}")).collect();
    run.settings.count = config.count;
    if config.ack_each {
        run.settings.ack = AckMode::EachBeforeRead;
    }
    run.settings.block = Duration::from_millis(100);
    // No reaping during the run: every entry is read once and acked.
    run.settings.min_idle = Duration::from_secs(3600);
    run.settings.reap_interval = Duration::from_secs(3600);
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
        produce(&redis, &stream, config.entries, None).await?;
        tracing::info!(entries = config.entries, "produced the backlog in {} ms", started.elapsed().as_millis());
    }
    let (cpu_before, _) = usage();
    let steal_before = steal();
    let started = Instant::now();
    let producer = match config.production {
        Production::Backlog => None,
        Production::Paced(rate) => Some(producer_thread(&redis, &stream, config.entries, Some(rate))?),
        Production::Alongside => Some(producer_thread(&redis, &stream, config.entries, None)?),
    };
    if config.minimal_loop {
        minimal_loop(&redis, &stream, config.entries, config.count, &latency, &shutdown).await?;
        let seconds = started.elapsed().as_secs_f64();
        if let Some(producer) = producer {
            producer.await.context("producer panicked")??;
        }
        let (pending, _) = admin.pending_summary(&stream, GROUP).await?;
        let _ = admin.recreate(&stream, &[], &[]).await;
        if pending != 0 {
            bail!("the minimal loop left {pending} of {} entries unacked", config.entries);
        }
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
    let _ = admin.recreate(&stream, &[], &[]).await;
    if total.acked != config.entries || total.handled != config.entries {
        bail!("handled {} and acked {} of {} entries", total.handled, total.acked, config.entries);
    }
    Ok(report(&config, &handler, seconds, &latency, (cpu_before, steal_before)))
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
    entries: u64,
    count: usize,
    latency: &Latency,
    shutdown: &CancellationToken,
) -> Result<()> {
    let block = Duration::from_millis(100);
    let mut conn = redis.connect(block).await?;
    let (mut ids, mut produced): (Vec<String>, Vec<u64>) = (Vec::new(), Vec::new());
    let mut acked = 0;
    while acked < entries {
        if shutdown.is_cancelled() {
            bail!("interrupted after {acked} of {entries} entries");
        }
        if acked + ids.len() as u64 >= entries {
            // All read: the last XACK goes alone, not held up by a read
            // that would block until its timeout with nothing left to read.
            conn.ack(stream, GROUP, &ids).await?;
            latency.acked(&produced);
            break;
        }
        let batch = conn.ack_then_read(stream, GROUP, "loop-1", &ids, count, block).await?;
        latency.acked(&produced);
        acked += ids.len() as u64;
        ids.clear();
        produced.clear();
        for entry in batch.entries {
            produced.push(latency.stamp(&entry));
            ids.push(entry.id);
        }
    }
    Ok(())
}

/// The producer running alongside the consumers (paced at `rate`, or as fast
/// as pipelining allows), on a thread and runtime of its own as a producing
/// service would be: its work then does not queue behind the consumers' tasks
/// on the host's runtime (it still shares the machine's cores with them).
fn producer_thread(
    redis: &Redis,
    stream: &str,
    entries: u64,
    rate: Option<u64>,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let (redis, stream) = (redis.clone(), stream.to_string());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("producer runtime")?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-producer".into())
        .spawn(move || {
            let _ = done.send(runtime.block_on(produce(&redis, &stream, entries, rate)));
        })
        .context("cannot start the producer thread")?;
    Ok(tokio::spawn(async move { finished.await.unwrap_or_else(|_| bail!("the producer thread panicked")) }))
}

/// XADDs `entries` orders: as fast as pipelining allows, or paced at `rate`
/// per second (a pipeline per millisecond tick).
async fn produce(redis: &Redis, stream: &str, entries: u64, rate: Option<u64>) -> Result<()> {
    let mut conn = redis.connect(Duration::ZERO).await?;
    let Some(rate) = rate else {
        let mut sent = 0;
        while sent < entries {
            let n = (entries - sent).min(PRODUCE_BATCH as u64);
            conn.add_batch(stream, &orders(sent, sent + n)).await?;
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
            conn.add_batch(stream, &orders(sent, due)).await?;
            sent = due;
        }
    }
    Ok(())
}
