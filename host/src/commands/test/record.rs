//! `host test --record OUT.toml [--from FILE]`: a fixture file made from
//! entries as `host replay --json` prints them (`{"id", "fields"}`) or dead
//! letters as `host dlq list --json` does (`{"dead_id", "meta", "fields"}`),
//! one JSON object per line, so a production dead letter becomes a
//! regression test. Each case expects `ok` (what a fixed plugin should do);
//! the comment above it says where it came from.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;

/// Writes the fixture made from the JSON lines of `from` (stdin when none)
/// to `out`; says how many cases.
pub fn write(out: &std::path::Path, from: Option<&std::path::Path>) -> Result<String> {
    let (input, source) = match from {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            (text, path.display().to_string())
        }
        None => (std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?, "stdin".to_string()),
    };
    let fixture = fixture_of(&input, &source)?;
    let cases = fixture.matches("[[case]]").count();
    std::fs::write(out, fixture).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(format!("recorded {cases} cases to {} (each expects ok: edit as needed)\n", out.display()))
}

/// The fixture text for `input` (JSON lines).
pub fn fixture_of(input: &str, source: &str) -> Result<String> {
    let mut out = format!(
        "# Recorded by `host test --record` from {source}. Each case expects `ok`:\n\
         # change an expectation where the plugin should do otherwise (see docs/testing-plugins.md).\n"
    );
    let mut cases = 0;
    for (n, line) in input.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("line {} of {source} is not JSON", n + 1))?;
        let Some(fields) = value.get("fields").and_then(|f| f.as_array()) else {
            bail!(
                "line {} of {source} has no \"fields\": expected `host replay --json` or `host dlq list --json` output",
                n + 1
            );
        };
        let (name, note) = match (value.get("dead_id"), value.get("meta")) {
            (Some(dead), Some(meta)) => {
                let m = |k: &str| meta.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
                let name = format!("dead letter {} ({} {})", dead.as_str().unwrap_or("?"), m("stream"), m("id"));
                let note = format!("{}, delivered {} times: {}", m("reason"), m("deliveries"), m("error"));
                (name, Some(note))
            }
            _ => (format!("entry {}", value.get("id").and_then(|v| v.as_str()).unwrap_or("?")), None),
        };
        let mut pairs = Vec::new();
        for pair in fields {
            let (Some(name), Some(value)) = (pair.get(0), pair.get(1)) else {
                bail!("line {} of {source}: a field is [name, value], not {pair}", n + 1);
            };
            pairs.push(format!("[{}, {}]", value_toml(&bytes(name)?), value_toml(&bytes(value)?)));
        }
        out.push('\n');
        if let Some(note) = note {
            for line in note.lines() {
                writeln!(out, "# was: {line}")?;
            }
        }
        writeln!(out, "[[case]]\nname = {}", toml::Value::String(name))?;
        writeln!(out, "fields = [{}]\nexpect = \"ok\"", pairs.join(", "))?;
        cases += 1;
    }
    if cases == 0 {
        bail!("no entries in {source}: pipe `host replay --json` or `host dlq list --json` into it");
    }
    Ok(out)
}

/// A JSON string, or `{"hex": …}` as `host replay --json` prints bytes that are not text.
fn bytes(value: &serde_json::Value) -> Result<Vec<u8>> {
    if let Some(s) = value.as_str() {
        return Ok(s.as_bytes().to_vec());
    }
    let hex = value.get("hex").and_then(|h| h.as_str()).with_context(|| format!("unexpected value {value}"))?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16).context("bad hex"))
        .collect()
}

/// Bytes as a fixture value: a TOML string when UTF-8, else `{ hex = … }`.
pub fn value_toml(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => toml::Value::String(s.to_string()).to_string(),
        Err(_) => format!("{{ hex = \"{}\" }}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_and_dead_letter_lines_become_cases_that_parse() {
        let input = r#"{"id":"1-0","fields":[["type","order.paid"],["blob",{"hex":"00ff"}]]}
{"dead_id":"9-0","meta":{"stream":"orders","id":"2-0","reason":"rejected","deliveries":"1","error":"malformed amount \"x\""},"fields":[["amount","x"]]}
"#;
        let text = fixture_of(input, "stdin").unwrap();
        let fixture = super::super::fixture::parse(&text, "recorded").unwrap();
        assert_eq!(fixture.cases.len(), 2);
        assert_eq!(fixture.cases[0].fields[1].1, vec![0, 255]);
        assert!(fixture.cases[1].name.starts_with("dead letter 9-0 (orders 2-0)"), "{text}");
        assert!(text.contains("# was: rejected, delivered 1 times: malformed amount \"x\""), "{text}");
        assert!(fixture_of("{}", "x").unwrap_err().to_string().contains("no \"fields\""));
    }
}
