//! `host test PLUGIN.wasm FIXTURE…`: a plugin's unit tests, offline. Each
//! case of a fixture file ([`fixture`]) is an entry handed to the plugin in
//! the sandbox `host run` uses — no Redis: `state` reads come from the
//! fixture, effects are recorded, not applied — with what it must come to:
//! the verdict, its text and delay, what the host then does (ack, leave
//! pending, dead-letter at the delivery limit) and the effects recorded.
//! Output like a test runner: a line per case, what differs on a mismatch,
//! `N passed, M failed`; `--json` for CI; an error (exit 1) when any
//! failed. `--record` turns `host replay --json` / `host dlq list --json`
//! output into a fixture file (`record.rs`).

pub mod fixture;
mod http;
pub mod record;
mod store;

use crate::config::TestConfig;
use crate::consumer::settle::{Action, decide};
use crate::effects::Effect;
use crate::entry::Entry;
use crate::handler::Handler;
use crate::settings::Grants;
use crate::verdict::Verdict;
use crate::wasm::engine::Engine;
use crate::wasm::instance::{Delivery, Instance};
use crate::wasm::plugin::Plugin;
use anyhow::{Context, Result};
use fixture::{Case, Fixture};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Per call, as `host run`'s default.
const DEADLINE: Duration = Duration::from_millis(crate::settings::DEFAULT_CALL_DEADLINE_MS);

/// What one delivery of a case came to.
#[derive(Debug, serde::Serialize)]
struct Outcome {
    delivery: u32,
    verdict: &'static str,
    reason: Option<String>,
    delay_ms: Option<u64>,
    then: String,
    /// The retry delay the host applies to an entry left pending: the
    /// plugin's delay, else the fixture's backoff step; none: it comes back
    /// after `--min-idle-ms`.
    retry_delay_ms: Option<u64>,
    effects: Vec<String>,
    requests: Vec<String>,
}

/// Runs every case of every fixture; the report, and whether all passed.
pub fn test(config: &TestConfig) -> Result<(String, bool)> {
    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, &config.plugin)?;
    let (mut out, mut passed, mut failed) = (String::new(), 0, 0);
    for path in &config.fixtures {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let fixture = fixture::parse(&text, &path.display().to_string())?;
        if !config.json {
            writeln!(out, "{} ({}) against {}", config.plugin.display(), plugin.tag.version, path.display())?;
        }
        for case in &fixture.cases {
            let outcomes = run_case(&plugin, &fixture, case)?;
            let problems = check(case, &outcomes);
            if problems.is_empty() {
                passed += 1
            } else {
                failed += 1
            }
            if config.json {
                let line = json!({"fixture": path, "case": case.name, "passed": problems.is_empty(),
                    "problems": problems, "deliveries": outcomes});
                writeln!(out, "{line}")?;
                continue;
            }
            let mark = if problems.is_empty() { "ok  " } else { "FAIL" };
            writeln!(out, "  {mark}  {}", case.name)?;
            for Problem { what, expected, got } in &problems {
                writeln!(out, "        {what}: - expected {expected}")?;
                writeln!(out, "        {:w$}  + got      {got}", "", w = what.len())?;
            }
            if !problems.is_empty() {
                for o in &outcomes {
                    writeln!(out, "        delivery {}: {} → {}", o.delivery, said(o), o.then)?;
                    for effect in &o.effects {
                        writeln!(out, "          effect {effect}")?;
                    }
                    for request in &o.requests {
                        writeln!(out, "          request {request}")?;
                    }
                }
            }
        }
    }
    if config.json {
        writeln!(out, "{}", json!({"passed": passed, "failed": failed}))?;
    } else {
        writeln!(out, "{passed} passed, {failed} failed")?;
    }
    Ok((out, failed == 0))
}

/// A verdict's kind (`ok`, `retry`, `reject`, `fault`), its text and its
/// retry delay (ms).
pub fn verdict_parts(verdict: &Verdict) -> (&'static str, Option<String>, Option<u64>) {
    match verdict {
        Verdict::Ack => ("ok", None, None),
        Verdict::Retry { reason, delay } => ("retry", Some(reason.clone()), delay.map(|d| d.as_millis() as u64)),
        Verdict::Reject { reason } => ("reject", Some(reason.clone()), None),
        Verdict::Fault { reason } => ("fault", Some(reason.clone()), None),
    }
}

/// A verdict as the report shows it: `retry after 1000 ms: why`.
fn said(o: &Outcome) -> String {
    let mut text = o.verdict.to_string();
    if let Some(ms) = o.delay_ms {
        write!(text, " after {ms} ms").expect("a string");
    }
    if let Some(reason) = &o.reason {
        write!(text, ": {reason}").expect("a string");
    }
    text
}

/// Runs one case on a fresh instance: each of its delivery counts in turn
/// (the fixture's state shared between them, as Redis would keep it).
fn run_case(plugin: &Plugin, fixture: &Fixture, case: &Case) -> Result<Vec<Outcome>> {
    let mut config = fixture.config.clone();
    config.extend(case.config.clone());
    let mut state = fixture.state.clone();
    state.strings.extend(case.state.strings.clone());
    for (key, fields) in &case.state.hashes {
        state.hashes.entry(key.clone()).or_default().extend(fields.clone());
    }
    let answers = case.http.iter().chain(&fixture.http).cloned().collect();
    let http = Arc::new(http::FixtureHttp::new(answers));
    let delivery = Delivery {
        state: Some(Arc::new(store::FixtureState::new(state))),
        http: Some(http.clone()),
        stream: fixture.stream.clone(),
        group: "test".into(),
        consumer: "host-test".into(),
    };
    // Every key and stream granted: the cases test the plugin's logic (a
    // grant refused is a deployment matter); HTTP is answered by the fixture.
    let grants = Grants { config, keys: vec!["*".into()], streams: vec!["*".into()], ..Default::default() };
    let limits = crate::commands::tool_limits(grants);
    let mut instance = Instance::new(plugin, delivery, DEADLINE, limits)?;
    if let Some(info) = &case.info {
        let info: serde_json::Value = serde_json::from_str(info)?;
        instance.assign(&fixture.stream, &Arc::from(info.to_string()));
    }
    let policy = fixture::retry_policy(&fixture.backoff);
    let mut outcomes = Vec::new();
    for (i, count) in case.deliveries.iter().enumerate() {
        let mut entry = Entry { id: format!("{}-0", i + 1), fields: case.fields.clone(), delivery_count: *count };
        let verdict = instance.handle(&mut entry);
        let effects = Handler::take_effects(&mut instance).take(&entry.id).unwrap_or_default();
        let (kind, reason, delay_ms) = verdict_parts(&verdict);
        let mut retry_delay_ms = None;
        let then = match decide(verdict, *count, fixture.max_deliveries) {
            Action::Ack => "ack".to_string(),
            Action::Leave { hold, .. } => match policy.retry_delay(*count, hold) {
                Some(delay) => {
                    retry_delay_ms = Some(delay.as_millis() as u64);
                    format!("pending (retry delay {} ms)", delay.as_millis())
                }
                None => "pending (no retry delay: back after --min-idle-ms)".to_string(),
            },
            Action::DeadLetter { reason, .. } => format!("dead-letter ({})", reason.as_str()),
        };
        outcomes.push(Outcome {
            delivery: *count,
            verdict: kind,
            reason,
            delay_ms,
            then,
            retry_delay_ms,
            effects: effects.iter().map(describe).collect(),
            requests: http.take(),
        });
    }
    Ok(outcomes)
}

/// One way a case's outcome differs from its expectation.
#[derive(Debug, serde::Serialize)]
struct Problem {
    what: String,
    expected: String,
    got: String,
}

/// What differs from the case's expectations.
fn check(case: &Case, outcomes: &[Outcome]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut differ = |what: &str, expected: String, got: String| {
        problems.push(Problem { what: what.to_string(), expected, got });
    };
    for o in outcomes {
        let at = format!("delivery {}", o.delivery);
        if let Some(expect) = &case.expect
            && expect != o.verdict
        {
            differ(&format!("{at} verdict"), expect.clone(), said(o));
        }
        if let Some(want) = &case.reason
            && !o.reason.as_deref().is_some_and(|r| r.contains(want.as_str()))
        {
            differ(&format!("{at} reason"), format!("a text containing {want:?}"), said(o));
        }
        if let Some(ms) = case.delay_ms
            && o.delay_ms != Some(ms)
        {
            differ(&format!("{at} delay"), format!("{ms} ms"), said(o));
        }
    }
    let last = outcomes.last().expect("a case runs at least once");
    if let Some(then) = &case.then
        && !last.then.starts_with(then.as_str())
    {
        differ(&format!("delivery {} then", last.delivery), then.clone(), last.then.clone());
    }
    if let Some(ms) = case.retry_delay_ms
        && last.retry_delay_ms != Some(ms)
    {
        differ(&format!("delivery {} retry delay", last.delivery), format!("{ms} ms"), last.then.clone());
    }
    if let Some(effects) = &case.effects
        && effects != &last.effects
    {
        differ(&format!("delivery {} effects", last.delivery), format!("{effects:?}"), format!("{:?}", last.effects));
    }
    if let Some(requests) = &case.requests
        && !http::matches(requests, &last.requests)
    {
        let what = format!("delivery {} requests", last.delivery);
        differ(&what, format!("{requests:?}"), format!("{:?}", last.requests));
    }
    problems
}

/// An effect as fixtures write it: `emit STREAM name=value…`, `incr KEY
/// BY`, `hincr KEY FIELD BY`, `set KEY VALUE`, `hset KEY FIELD VALUE`
/// (then ` ttl MS`), `del KEY`, `hdel KEY FIELD`.
pub fn describe(effect: &Effect) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let ttl = |t: &Option<u64>| t.map(|ms| format!(" ttl {ms}")).unwrap_or_default();
    match effect {
        Effect::Emit { stream, fields, max_len } => {
            let pairs: Vec<String> = fields.iter().map(|(n, v)| format!("{}={}", text(n), text(v))).collect();
            let cap = max_len.map(|m| format!(" maxlen {m}")).unwrap_or_default();
            format!("emit {stream} {}{cap}", pairs.join(" "))
        }
        Effect::Incr { key, field: None, by } => format!("incr {key} {by}"),
        Effect::Incr { key, field: Some(f), by } => format!("hincr {key} {f} {by}"),
        Effect::Set { key, field: None, value, ttl_ms } => format!("set {key} {}{}", text(value), ttl(ttl_ms)),
        Effect::Set { key, field: Some(f), value, ttl_ms } => format!("hset {key} {f} {}{}", text(value), ttl(ttl_ms)),
        Effect::Del { key, field: None } => format!("del {key}"),
        Effect::Del { key, field: Some(f) } => format!("hdel {key} {f}"),
    }
}
