//! `host replay --stream S --through PLUGIN.wasm [--against OTHER.wasm]
//! [--from ID --to ID | --dlq]`: entries (or dead letters) run through one
//! or two plugin versions in the sandbox, touching nothing in Redis: no
//! group, no ack; effects captured, not applied; `state` reads answered
//! from Redis, `seen` only looked up (nothing recorded). Reports the
//! verdict counts of each version and the entries where two disagree: how
//! a new version is checked before it is dropped into the folder, and how a
//! fixed plugin is tried on the dead letters before `host dlq requeue`.

use crate::commands::test::{describe, verdict_parts};
use crate::config::ReplayConfig;
use crate::dead_letter::DeadLetter;
use crate::effects::StateStore;
use crate::entry::Entry;
use crate::handler::Handler;
use crate::settings::Grants;
use crate::streams::Redis;
use crate::wasm::engine::Engine;
use crate::wasm::instance::{Delivery, Instance};
use crate::wasm::plugin::Plugin;
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one version made of one entry: verdict kind, text, effects.
type Made = (&'static str, Option<String>, Vec<String>);

/// `state` for a replay: reads go to Redis; `seen` looks the key up and
/// records nothing (a replay must leave Redis as it found it).
#[derive(Debug)]
pub(crate) struct ReadOnly(pub(crate) Arc<dyn StateStore>);

impl StateStore for ReadOnly {
    fn get(&self, key: &str, until: Instant) -> Result<Option<Vec<u8>>, String> {
        self.0.get(key, until)
    }

    fn hget(&self, key: &str, field: &str, until: Instant) -> Result<Option<Vec<u8>>, String> {
        self.0.hget(key, field, until)
    }

    fn seen(&self, key: &str, _ttl: Duration, until: Instant) -> Result<bool, String> {
        self.0.get(key, until).map(|v| v.is_some())
    }
}

/// Runs the replay: reads the entries, then calls the plugins on a blocking thread.
pub async fn replay_through(config: &ReplayConfig) -> Result<String> {
    let redis = Redis::open(&config.target.redis_url)?;
    let mut conn = redis.connect(Duration::ZERO).await?;
    let stream = &config.target.stream;
    let entries: Vec<(String, Entry)> = if let Some(configured) = &config.dlq {
        let dlq = redis.dead_letter_of(stream, configured).await?;
        let mut out = Vec::new();
        for record in conn.range(&dlq, &config.from, &config.to, config.count).await? {
            let dead = DeadLetter::parse(record)?;
            let label = format!("{} (dead letter of {})", dead.dead_id, dead.meta("dlq:id").unwrap_or("?"));
            out.push((
                label,
                Entry { id: dead.meta("dlq:id").unwrap_or("0-0").into(), fields: dead.fields, delivery_count: 1 },
            ));
        }
        out
    } else {
        let mut out = Vec::new();
        for mut entry in conn.range(stream, &config.from, &config.to, config.count).await? {
            entry.delivery_count = 1;
            out.push((entry.id.clone(), entry));
        }
        out
    };
    let state: Arc<dyn StateStore> = Arc::new(ReadOnly(redis.state()));
    let versions: Vec<PathBuf> = config.through.iter().chain(config.against.iter()).cloned().collect();
    let (stream, json) = (stream.clone(), config.target.json);
    tokio::task::spawn_blocking(move || report(&versions, &entries, &stream, state, json))
        .await
        .context("the replay task failed")?
}

/// Each version's verdicts on `entries`, and where two disagree.
fn report(
    versions: &[PathBuf],
    entries: &[(String, Entry)],
    stream: &str,
    state: Arc<dyn StateStore>,
    json: bool,
) -> Result<String> {
    let engine = Engine::new()?;
    let mut made: Vec<(Plugin, Vec<Made>)> = Vec::new();
    for path in versions {
        let plugin = Plugin::load(&engine, path)?;
        let delivery = Delivery {
            state: Some(state.clone()),
            http: None,
            stream: stream.into(),
            group: "replay".into(),
            consumer: "replay".into(),
        };
        let grants = Grants { keys: vec!["*".into()], streams: vec!["*".into()], ..Default::default() };
        let limits = crate::commands::tool_limits(grants);
        let deadline = Duration::from_millis(crate::settings::DEFAULT_CALL_DEADLINE_MS);
        let mut instance = Instance::new(&plugin, delivery, deadline, limits)?;
        let mut verdicts = Vec::with_capacity(entries.len());
        for (_, entry) in entries {
            let mut entry = entry.clone();
            let verdict = instance.handle(&mut entry);
            let effects = Handler::take_effects(&mut instance).take(&entry.id).unwrap_or_default();
            let (kind, reason, _) = verdict_parts(&verdict);
            verdicts.push((kind, reason, effects.iter().map(describe).collect()));
        }
        made.push((plugin, verdicts));
    }
    let name = |p: &Plugin| format!("{}@{}", p.tag.name, p.tag.version);
    let mut out = String::new();
    for (plugin, verdicts) in &made {
        let kinds = ["ok", "retry", "reject", "fault"];
        let counts: Vec<(&str, usize)> =
            kinds.iter().map(|k| (*k, verdicts.iter().filter(|(kind, ..)| kind == k).count())).collect();
        if json {
            let by: BTreeMap<&str, usize> = counts.iter().copied().collect();
            writeln!(out, "{}", json!({"version": name(plugin), "entries": verdicts.len(), "verdicts": by}))?;
        } else {
            let shown: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            writeln!(out, "{} on {} entries of {stream}: {}", name(plugin), verdicts.len(), shown.join(", "))?;
        }
    }
    if let [(a, va), (b, vb)] = made.as_slice() {
        let mut differ = 0;
        for (((label, _), x), y) in entries.iter().zip(va).zip(vb) {
            if x.0 == y.0 && x.2 == y.2 {
                continue;
            }
            differ += 1;
            let said = |m: &Made| match &m.1 {
                Some(text) => format!("{}: {text}", m.0),
                None => format!("{} (effects {:?})", m.0, m.2),
            };
            if json {
                writeln!(out, "{}", json!({"entry": label, name(a): said(x), name(b): said(y)}))?;
            } else {
                writeln!(out, "  {label}: {} {} | {} {}", name(a), said(x), name(b), said(y))?;
            }
        }
        if json {
            writeln!(out, "{}", json!({"disagree": differ, "of": entries.len()}))?;
        } else {
            writeln!(out, "{differ} of {} entries handled differently (nothing was written to Redis)", entries.len())?;
        }
    }
    Ok(out)
}
