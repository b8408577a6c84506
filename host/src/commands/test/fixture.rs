//! The fixture format of `host test` (TOML): cases, each an entry and what
//! the plugin must make of it. Documented in docs/testing-plugins.md.
//!
//! ```toml
//! max_deliveries = 5                 # as --max-deliveries (default 5)
//! backoff = ["1s", "5s"]             # as --backoff (default none)
//! stream = "orders"                  # the entries' stream (default "test")
//! [config]                           # values of the `config` import, every case
//! webhook = "http://example.test"
//! [state]                            # what `state` reads: a string, or a table (a hash)
//! "seen:o-1" = "1"
//! [[http]]                           # answers to outbound requests (every case; [[case.http]] for one, tried first)
//! method = "POST"                    # any method when left out
//! url = "http://example.test/*"      # `*` matches any run of characters
//! status = 200                       # (default 200), body = "…", headers = { name = "value" }
//!
//! [[case]]
//! name = "a paid order is acked"
//! fields = [["type", "order.paid"], ["amount", "12.50"], ["blob", { hex = "00ff" }]]
//! deliveries = 1                     # or [1, 5]: each delivery count in turn
//! info = '{"user": "ann"}'           # the assignment's Info (stream ownership mode)
//! expect = "ok"                      # ok | retry | reject | fault
//! reason = "substring"               # of the retry/reject/fault text
//! delay_ms = 1000                    # of the retry (the plugin's own)
//! retry_delay_ms = 5000              # the host's: the plugin's delay, else backoff's step (last delivery)
//! then = "ack"                       # ack | pending | dead-letter: at the last delivery
//! effects = ["hincr totals order.paid 1"]   # exactly these, in order
//! requests = ["POST http://example.test/hook *"]  # the HTTP requests made, in order (patterns)
//! ```

use crate::settings::GroupSettings;
use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;

/// A parsed fixture file.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub max_deliveries: u32,
    /// The retry delays by delivery count when the plugin gives none.
    pub backoff: Vec<std::time::Duration>,
    pub stream: String,
    pub config: BTreeMap<String, String>,
    pub state: State,
    pub http: Vec<Answer>,
    pub cases: Vec<Case>,
}

/// A stand-in answer to the plugin's outbound requests that match it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// None: any method.
    pub method: Option<String>,
    /// A pattern of the request's URL (`*` matches any run of characters).
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What `state` calls read: string keys and hashes.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub strings: BTreeMap<String, Vec<u8>>,
    pub hashes: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// One case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// The delivery counts to run it with, in turn.
    pub deliveries: Vec<u32>,
    pub info: Option<String>,
    pub config: BTreeMap<String, String>,
    pub state: State,
    pub expect: Option<String>,
    pub reason: Option<String>,
    pub delay_ms: Option<u64>,
    pub retry_delay_ms: Option<u64>,
    pub then: Option<String>,
    pub effects: Option<Vec<String>>,
    pub http: Vec<Answer>,
    pub requests: Option<Vec<String>>,
}

/// Field/value pairs, in order.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

const VERDICTS: [&str; 4] = ["ok", "retry", "reject", "fault"];
const ACTIONS: [&str; 3] = ["ack", "pending", "dead-letter"];

/// Reads fixture text; `place` names it in errors.
pub fn parse(text: &str, place: &str) -> Result<Fixture> {
    let root: toml::Table = toml::from_str(text).with_context(|| format!("invalid fixture file {place}"))?;
    let bad = |what: String| anyhow!("invalid fixture file {place}: {what}");
    for key in root.keys() {
        let known = ["max_deliveries", "backoff", "stream", "config", "state", "http", "case"];
        if !known.contains(&key.as_str()) {
            return Err(bad(format!("unknown key {key:?} (expected one of {known:?})")));
        }
    }
    let max_deliveries = match root.get("max_deliveries") {
        None => crate::settings::DEFAULT_MAX_DELIVERIES,
        Some(v) => v
            .as_integer()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(format!("max_deliveries must be a whole number from 1, not {v}")))?,
    };
    let backoff = match root.get("backoff") {
        None => Vec::new(),
        Some(toml::Value::Array(list)) => list
            .iter()
            .map(|v| {
                let text = v.as_str().ok_or_else(|| bad(format!("backoff delays are strings (\"5s\"), not {v}")))?;
                crate::settings::backoff::parse_duration(text).map_err(|e| bad(format!("backoff: {e}")))
            })
            .collect::<Result<_>>()?,
        Some(v) => return Err(bad(format!("backoff must be a list such as [\"1s\", \"5s\"], not {v}"))),
    };
    // The same limits as a sidecar's backoff.
    retry_policy(&backoff).validate().map_err(|invalid| bad(format!("{}: {}", invalid.key, invalid.problem)))?;
    let stream = match root.get("stream") {
        None => "test".to_string(),
        Some(v) => v.as_str().ok_or_else(|| bad("stream must be a string".into()))?.to_string(),
    };
    let config = strings(root.get("config"), "config").map_err(bad)?;
    let state = state(root.get("state")).map_err(bad)?;
    let http = answers(root.get("http")).map_err(bad)?;
    let cases = match root.get("case") {
        Some(toml::Value::Array(cases)) => cases,
        _ => return Err(bad("no [[case]]: a fixture file has one or more cases".into())),
    };
    let cases = cases
        .iter()
        .enumerate()
        .map(|(i, c)| case(c).map_err(|what| bad(format!("case {}: {what}", i + 1))))
        .collect::<Result<Vec<_>>>()?;
    Ok(Fixture { max_deliveries, backoff, stream, config, state, http, cases })
}

fn case(value: &toml::Value) -> Result<Case, String> {
    let t = value.as_table().ok_or("not a table")?;
    for key in t.keys() {
        let known = [
            "name",
            "fields",
            "deliveries",
            "info",
            "config",
            "state",
            "expect",
            "reason",
            "delay_ms",
            "retry_delay_ms",
            "then",
            "effects",
            "http",
            "requests",
        ];
        if !known.contains(&key.as_str()) {
            return Err(format!("unknown key {key:?} (expected one of {known:?})"));
        }
    }
    let name = t.get("name").and_then(|v| v.as_str()).ok_or("no name (a string)")?.to_string();
    let fields = fields(t.get("fields")).map_err(|e| format!("{name:?}: {e}"))?;
    let deliveries = match t.get("deliveries") {
        None => vec![1],
        Some(toml::Value::Integer(n)) if (1..=1_000).contains(n) => vec![*n as u32],
        Some(toml::Value::Array(r)) if r.len() == 2 => {
            let n = |v: &toml::Value| v.as_integer().filter(|n| *n >= 1 && *n <= 1_000).map(|n| n as u32);
            match (n(&r[0]), n(&r[1])) {
                (Some(a), Some(b)) if a <= b => (a..=b).collect(),
                _ => return Err(format!("{name:?}: deliveries [FROM, TO] needs 1 <= FROM <= TO <= 1000")),
            }
        }
        Some(other) => {
            return Err(format!("{name:?}: deliveries must be N or [FROM, TO] within 1..=1000, not {other}"));
        }
    };
    let text = |key: &str| -> Result<Option<String>, String> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{name:?}: {key} must be a string, not {other}")),
        }
    };
    let info = text("info")?;
    if let Some(info) = &info
        && !matches!(serde_json::from_str::<serde_json::Value>(info), Ok(serde_json::Value::Object(_)))
    {
        return Err(format!("{name:?}: info must be a JSON object, not {info:?}"));
    }
    let expect = text("expect")?;
    if let Some(e) = &expect
        && !VERDICTS.contains(&e.as_str())
    {
        return Err(format!("{name:?}: expect {e:?} is not one of {VERDICTS:?}"));
    }
    let then = text("then")?;
    if let Some(e) = &then
        && !ACTIONS.contains(&e.as_str())
    {
        return Err(format!("{name:?}: then {e:?} is not one of {ACTIONS:?}"));
    }
    let ms = |key: &str| -> Result<Option<u64>, String> {
        match t.get(key) {
            None => Ok(None),
            Some(v) => {
                Ok(Some(v.as_integer().and_then(|n| u64::try_from(n).ok()).ok_or(format!("{name:?}: bad {key}: {v}"))?))
            }
        }
    };
    let (delay_ms, retry_delay_ms) = (ms("delay_ms")?, ms("retry_delay_ms")?);
    let list = |key: &str| -> Result<Option<Vec<String>>, String> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or(format!("{name:?}: {key} are strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(format!("{name:?}: {key} must be a list of strings")),
        }
    };
    let effects = list("effects")?;
    let requests = list("requests")?;
    if expect.is_none() && then.is_none() && effects.is_none() && requests.is_none() {
        return Err(format!("{name:?}: expects nothing (set expect, then, effects or requests)"));
    }
    let reason = text("reason")?;
    let http = answers(t.get("http")).map_err(|e| format!("{name:?}: {e}"))?;
    Ok(Case {
        config: strings(t.get("config"), "config").map_err(|e| format!("{name:?}: {e}"))?,
        state: state(t.get("state")).map_err(|e| format!("{name:?}: {e}"))?,
        name,
        fields,
        deliveries,
        info,
        expect,
        reason,
        delay_ms,
        retry_delay_ms,
        then,
        effects,
        http,
        requests,
    })
}

/// `host run`'s settings with `backoff`: what decides a retry's delay.
pub fn retry_policy(backoff: &[std::time::Duration]) -> GroupSettings {
    GroupSettings { backoff: backoff.to_vec(), ..GroupSettings::new("test", "test", vec!["host-test".into()]) }
}

/// `[[http]]` answers: `url` (a pattern), and optionally `method`,
/// `status` (default 200), `headers`, `body`.
fn answers(value: Option<&toml::Value>) -> Result<Vec<Answer>, String> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let list = value.as_array().ok_or("http must be a list of answers ([[http]])")?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("http answer {}", i + 1);
            let t = v.as_table().ok_or(format!("{at} is not a table"))?;
            for key in t.keys() {
                if !["method", "url", "status", "headers", "body"].contains(&key.as_str()) {
                    return Err(format!("{at}: unknown key {key:?} (expected method, url, status, headers, body)"));
                }
            }
            let url = t.get("url").and_then(|v| v.as_str()).ok_or(format!("{at}: no url (a string)"))?.to_string();
            let method = match t.get("method") {
                None => None,
                Some(v) => Some(v.as_str().ok_or(format!("{at}: method must be a string"))?.to_string()),
            };
            let status = match t.get("status") {
                None => 200,
                Some(v) => v
                    .as_integer()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| (100..=999).contains(n))
                    .ok_or(format!("{at}: status must be an HTTP status (100..=999), not {v}"))?,
            };
            let headers: Vec<(String, String)> =
                strings(t.get("headers"), "headers").map_err(|e| format!("{at}: {e}"))?.into_iter().collect();
            for (name, value) in &headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(format!("{at}: {name:?} is not an HTTP header name"));
                }
                if http::HeaderValue::from_str(value).is_err() {
                    return Err(format!("{at}: the value of header {name:?} is not a valid HTTP header value"));
                }
            }
            let body =
                t.get("body").map(bytes).transpose().map_err(|e| format!("{at}: body: {e}"))?.unwrap_or_default();
            Ok(Answer { method, url, status, headers, body })
        })
        .collect()
}

/// `[[name, value], …]`, a value a string or `{ hex = "…" }`.
fn fields(value: Option<&toml::Value>) -> Result<Fields, String> {
    let Some(toml::Value::Array(pairs)) = value else { return Err("no fields ([[name, value], …])".into()) };
    pairs
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([toml::Value::String(name), value]) => Ok((name.as_bytes().to_vec(), bytes(value)?)),
            _ => Err(format!("a field is [name, value], not {pair}")),
        })
        .collect()
}

/// A string, or `{ hex = "…" }` for bytes that are not text.
fn bytes(value: &toml::Value) -> Result<Vec<u8>, String> {
    match value {
        toml::Value::String(s) => Ok(s.as_bytes().to_vec()),
        toml::Value::Table(t) if t.len() == 1 && t.contains_key("hex") => {
            let hex = t["hex"].as_str().ok_or("hex must be a string")?;
            if hex.len() % 2 != 0 {
                return Err(format!("hex {hex:?} has an odd number of digits"));
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| {
                    let pair = hex.get(i..i + 2).ok_or_else(|| format!("hex {hex:?} is not hexadecimal"))?;
                    u8::from_str_radix(pair, 16).map_err(|_| format!("hex {hex:?} is not hexadecimal"))
                })
                .collect()
        }
        other => Err(format!("a value is a string or {{ hex = \"…\" }}, not {other}")),
    }
}

fn strings(value: Option<&toml::Value>, what: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(value) = value else { return Ok(BTreeMap::new()) };
    let t = value.as_table().ok_or(format!("{what} must be a table"))?;
    t.iter()
        .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())).ok_or(format!("{what}.{k} must be a string")))
        .collect()
}

fn state(value: Option<&toml::Value>) -> Result<State, String> {
    let mut state = State::default();
    let Some(value) = value else { return Ok(state) };
    for (key, v) in value.as_table().ok_or("state must be a table")? {
        match v {
            toml::Value::Table(hash) => {
                let mut fields = BTreeMap::new();
                for (field, v) in hash {
                    fields.insert(field.clone(), bytes(v).map_err(|e| format!("state.{key}.{field}: {e}"))?);
                }
                state.hashes.insert(key.clone(), fields);
            }
            other => {
                state.strings.insert(key.clone(), bytes(other).map_err(|e| format!("state.{key}: {e}"))?);
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_reads_and_bad_ones_say_why() {
        let f = parse(
            "max_deliveries = 3\n[config]\nk = \"v\"\n[state]\n\"a\" = \"1\"\nh = { f = \"x\" }\n\
             [[case]]\nname = \"n\"\nfields = [[\"a\", \"b\"], [\"bin\", { hex = \"00ff\" }]]\n\
             deliveries = [1, 3]\nexpect = \"retry\"\nthen = \"dead-letter\"\n",
            "f.toml",
        )
        .unwrap();
        assert_eq!((f.max_deliveries, f.cases[0].deliveries.clone()), (3, vec![1, 2, 3]));
        assert_eq!(f.cases[0].fields[1].1, vec![0, 255]);
        assert_eq!(f.state.hashes["h"]["f"], b"x");
        let err = |text: &str| parse(text, "f.toml").unwrap_err().to_string();
        assert!(err("[[case]]\nname = \"n\"\nfields = []\n").contains("expects nothing"));
        assert!(err("[[case]]\nname = \"n\"\nfields = []\nexpect = \"fine\"\n").contains("not one of"));
        assert!(err("cases = 1\n").contains("unknown key \"cases\""));
        assert!(err("x").contains("invalid fixture file f.toml"));
        assert!(err("[[case]]\nname = \"n\"\nfields = [[\"a\", { hex = \"0\" }]]\nexpect = \"ok\"\n").contains("odd"));
        let answer = |extra: &str| {
            err(&format!(
                "[[http]]\nurl = \"http://x/*\"\n{extra}\n[[case]]\nname = \"n\"\nfields = []\nexpect = \"ok\"\n"
            ))
        };
        assert!(answer("headers = { \"a b\" = \"1\" }").contains("http answer 1: \"a b\" is not an HTTP header name"));
        assert!(answer("headers = { a = \"x\\ny\" }").contains("not a valid HTTP header value"));
        assert!(answer("status = 42").contains("status must be an HTTP status"));
        assert!(answer("verb = \"GET\"").contains("unknown key \"verb\""));
    }
}
