//! `host dlq requeue`: each chosen dead letter goes back onto its origin
//! stream as a new entry and off the dead-letter stream, atomically — at
//! most `--rate N/s`, and with `--through PLUGIN.wasm` only those the given
//! version now accepts (run in the sandbox first, nothing written); the
//! others stay, their record given a `dlq:rejudged` field saying what that
//! version says now (the original error kept). Audit records (no payload)
//! are skipped. Progress on the terminal every 2 s.

use crate::commands::compare::ReadOnly;
use crate::commands::test::verdict_parts;
use crate::config::RequeueConfig;
use crate::dead_letter::DeadLetter;
use crate::entry::Entry;
use crate::settings::Grants;
use crate::streams::{Connection, Redis};
use crate::verdict::Verdict;
use crate::wasm::engine::Engine;
use crate::wasm::instance::{Delivery, Instance};
use crate::wasm::plugin::Plugin;
use anyhow::{Context, Result, bail};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A plugin version that judges dead letters before they are requeued.
struct Judge {
    instance: Instance,
    name: String,
}

impl Judge {
    async fn load(path: &std::path::Path, redis: &Redis, stream: &str) -> Result<Self> {
        let (path, state, stream) = (path.to_path_buf(), redis.state(), stream.to_string());
        tokio::task::spawn_blocking(move || {
            let plugin = Plugin::load(&Engine::new()?, &path)?;
            let state: Arc<dyn crate::effects::StateStore> = Arc::new(ReadOnly(state));
            let delivery = Delivery {
                state: Some(state),
                http: None,
                stream,
                group: "requeue".into(),
                consumer: "requeue".into(),
            };
            let grants = Grants { keys: vec!["*".into()], streams: vec!["*".into()], ..Default::default() };
            let limits = crate::commands::tool_limits(grants);
            let deadline = Duration::from_millis(crate::settings::DEFAULT_CALL_DEADLINE_MS);
            let name = format!("{}@{}", plugin.tag.name, plugin.tag.version);
            Ok(Judge { instance: Instance::new(&plugin, delivery, deadline, limits)?, name })
        })
        .await
        .context("loading the plugin failed")?
    }

    /// The version's verdict on `dead`'s original entry (on a blocking thread).
    async fn judge(self, dead: &DeadLetter) -> Result<(Self, Verdict)> {
        let id = dead.meta("dlq:id").unwrap_or("0-0").to_string();
        let mut entry = Entry { id, fields: dead.fields.clone(), delivery_count: 1 };
        let mut judge = self;
        tokio::task::spawn_blocking(move || {
            let verdict = judge.instance.handle(&mut entry);
            (judge, verdict)
        })
        .await
        .context("the plugin call failed")
    }
}

/// Spaces requeues at `rate` a second (never in a burst after a pause).
struct Pace {
    next: Instant,
    rate: Option<f64>,
}

impl Pace {
    async fn next(&mut self) {
        let Some(rate) = self.rate else { return };
        self.next = self.next.max(Instant::now());
        tokio::time::sleep_until(self.next.into()).await;
        self.next += Duration::from_secs_f64(1.0 / rate);
    }
}

/// Requeues the chosen dead letters (all when no ids are given).
pub async fn dlq_requeue(config: &RequeueConfig) -> Result<String> {
    let redis = Redis::open(&config.redis_url)?;
    let mut conn = redis.connect(Duration::ZERO).await?;
    let dlq = &config.dead_letter;
    let mut judge = match &config.through {
        Some(path) => Some(Judge::load(path, &redis, &config.stream).await?),
        None => None,
    };
    let mut pace = Pace { next: Instant::now(), rate: config.rate };
    let (mut out, mut requeued, mut kept) = (String::new(), 0, 0);
    conn.expect_stream_or_none(dlq, "dead-letter").await?;
    let mut chosen: Vec<String> = Vec::new();
    if config.ids.is_empty() {
        // All: up to the newest record as of now (a live consumer rejecting
        // what is requeued must not keep this going). Ids only: a large
        // dead-letter stream is not held in memory.
        let Some(end) = conn.latest(dlq, 1).await?.pop().map(|e| e.id) else {
            writeln!(out, "requeued 0 entries from {dlq} (it is empty)")?;
            return Ok(out);
        };
        let mut start = "-".to_string();
        loop {
            let page = conn.range(dlq, &start, &end, Some(100)).await?;
            let Some(last) = page.last() else { break };
            start = format!("({}", last.id);
            chosen.extend(page.into_iter().map(|e| e.id));
        }
    } else {
        for id in &config.ids {
            if conn.range(dlq, id, id, Some(1)).await?.is_empty() {
                bail!("no entry {id} in dead-letter stream {dlq:?}");
            }
        }
        chosen.clone_from(&config.ids);
    }
    let mut progress = crate::commands::progress::Progress::new("dlq requeue", Some(chosen.len() as u64));
    for (seen, id) in chosen.iter().enumerate() {
        let Some(record) = conn.range(dlq, id, id, Some(1)).await?.pop() else {
            writeln!(out, "skipped {id}: no longer in {dlq} (requeued by someone else meanwhile)")?;
            continue;
        };
        let raw = record.fields.clone();
        let dead = DeadLetter::parse(record)?;
        if let Some(j) = judge.take().filter(|_| !dead.fields.is_empty()) {
            let (j, verdict) = j.judge(&dead).await?;
            let name = j.name.clone();
            judge = Some(j);
            if !verdict.is_ack() {
                let (kind, reason, _) = verdict_parts(&verdict);
                let now = format!("{name}: {kind}: {}", reason.unwrap_or_default());
                match record_rejudged(&mut conn, dlq, &dead.dead_id, &raw, &now).await? {
                    Some(new_id) => writeln!(out, "kept {} as {new_id}: {now}", dead.dead_id)?,
                    None => writeln!(out, "skipped {}: no longer in {dlq} (requeued meanwhile)", dead.dead_id)?,
                }
                kept += 1;
                progress.update(seen as u64 + 1);
                continue;
            }
        }
        pace.next().await;
        requeued += requeue_one(&mut conn, dlq, dead, &mut out).await?;
        progress.update(seen as u64 + 1);
    }
    writeln!(out, "requeued {requeued} entries from {dlq}")?;
    if judge.is_some() {
        writeln!(out, "kept {kept} the plugin still does not accept (their dlq:error says why now)")?;
    }
    Ok(out)
}

/// The dead letter again with its verdict now in `dlq:rejudged` (a
/// metadata field added, or replaced), in place of the old one: one atomic
/// step, only while the old one is still there. Its original `dlq:error`,
/// time and payload are kept as they were.
async fn record_rejudged(
    conn: &mut Connection,
    dlq: &str,
    id: &str,
    raw: &[(Vec<u8>, Vec<u8>)],
    verdict: &str,
) -> Result<Option<String>> {
    let count: usize = raw
        .first()
        .filter(|(k, _)| k == b"dlq:meta-fields")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        .with_context(|| format!("{id} is not a dead-letter record"))?;
    let (meta, payload) = raw.split_at(count.min(raw.len()));
    let mut meta: Vec<(Vec<u8>, Vec<u8>)> = meta.iter().filter(|(k, _)| k != b"dlq:rejudged").cloned().collect();
    meta.push((b"dlq:rejudged".to_vec(), verdict.as_bytes().to_vec()));
    meta[0].1 = meta.len().to_string().into_bytes();
    meta.extend(payload.iter().cloned());
    conn.replace_entry(dlq, id, &meta).await
}

async fn requeue_one(conn: &mut Connection, dlq: &str, dead: DeadLetter, out: &mut String) -> Result<u32> {
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
    let Some(new_id) = conn.requeue(dlq, &dead.dead_id, origin, &dead.fields).await? else {
        writeln!(out, "skipped {}: no longer in {dlq} (requeued by someone else meanwhile)", dead.dead_id)?;
        return Ok(0);
    };
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
