//! One contract, five languages: the `orders` plugin written in Rust, Python,
//! JavaScript, C and Zig gets the same entries and must give the same
//! outcomes (acked / pending / dead-lettered with the same reason) and the
//! same log output. Plugins built against contract 0.1.0 (the files kept in
//! tests/fixtures/contract-0.1.0, built before 0.1.1 added effects) must
//! too, unchanged.

use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Rust first: the reference the others are compared with.
const PLUGINS: [&str; 5] = ["orders", "python-orders", "js-orders", "c-orders", "zig-orders"];

/// An entry's fields.
type Fields = Vec<(&'static str, Vec<u8>)>;

/// The input set, and what each entry must come to.
fn inputs() -> Vec<(Fields, &'static str)> {
    let with = |mut fields: Fields, name, value: Vec<u8>| {
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some(field) => field.1 = value,
            None => fields.push((name, value)),
        }
        fields
    };
    let without = |mut fields: Fields, name| {
        fields.retain(|(n, _)| *n != name);
        fields
    };
    vec![
        (order(0), "acked"), // one of each type
        (order(1), "acked"),
        (order(2), "acked"),
        (order(3), "acked"),
        (with(order(4), "amount", b"12.345".to_vec()), "dead-lettered"),
        (with(order(5), "payment", b"pending".to_vec()), "pending"),
        (with(order(6), "customer", vec![0xff, 0xfe, b'x']), "dead-lettered"),
        (with(order(7), "notes", vec![b'n'; 1 << 20]), "acked"),
        (vec![("", Vec::new())], "dead-lettered"), // as empty as Redis allows
        (with(order(9), "type", b"order.refunded".to_vec()), "dead-lettered"),
        (without(order(10), "amount"), "dead-lettered"),
        (with(order(11), "amount", b"184467440737095516.16".to_vec()), "dead-lettered"), // above u64 cents
        (with(order(12), "customer", "Zoë \"Z\"\t".as_bytes().to_vec()), "acked"),
    ]
}

/// What became of each entry, by input index: outcome and dead-letter error.
type Outcomes = BTreeMap<usize, (String, String)>;

#[tokio::test(flavor = "multi_thread")]
async fn every_language_gives_the_same_outcomes_and_log_lines() {
    let plugins: Vec<_> = PLUGINS.iter().map(|name| (*name, plugin(name))).collect();
    conform("conformance", &plugins).await;
}

/// The plugins built against 0.1.0 that the fixtures keep (the Python and
/// JavaScript ones are 12-18 MB each: not kept).
const CONTRACT_0_1_0: [&str; 3] = ["orders", "c-orders", "zig-orders"];

#[tokio::test(flavor = "multi_thread")]
async fn plugins_built_against_contract_0_1_0_still_conform() {
    let fixtures = root().join("tests/fixtures/contract-0.1.0");
    let plugins: Vec<_> = CONTRACT_0_1_0.iter().map(|name| (*name, fixtures.join(format!("{name}.wasm")))).collect();
    for (name, path) in &plugins {
        let out = Host::new(["check".as_ref(), path.as_os_str()]).output();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("redis-streams:plugin/log@0.1.0"), "{name} is not a 0.1.0 plugin: {text}");
        let imports_new = text.contains("plugin/log@0.1.1") || text.contains("plugin/effects");
        assert!(!imports_new, "{name} imports 0.1.1: {text}");
    }
    conform("contract-0.1.0", &plugins).await;
}

/// Runs `plugins` (the first is the reference) over [`inputs`] in one
/// folder-mode host and compares outcomes and log lines.
async fn conform(test: &str, plugins: &[(&str, std::path::PathBuf)]) {
    let mut conn = redis().await;
    let dir = plugin_dir(test);
    let inputs = inputs();
    let mut streams = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for (name, path) in plugins {
        let name = *name;
        let stream = unique_stream(&format!("{test}-{name}"));
        install(&dir.join(format!("{name}.wasm")), &std::fs::read(path).unwrap());
        // No redelivery during the test: the retried entry stays pending, delivered once.
        let sidecar = format!("stream = \"{stream}\"\ngroup = \"g\"\nmin_idle_ms = 600000\n");
        std::fs::write(dir.join(format!("{name}.toml")), sidecar).unwrap();
        let entries: Vec<_> = inputs.iter().map(|(fields, _)| fields.clone()).collect();
        ids.insert(name, produce(&mut conn, &stream, &entries).await);
        streams.insert(name, stream);
    }

    let args = ["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()];
    let mut host = Host::new(args).logging().start();
    // Cold compiles of the Python and JavaScript components take a while in a debug build.
    host.wait_log(Duration::from_secs(600), "every plugin started", |log| {
        log.iter().any(|l| l.contains("serving the plugin folder"))
    });
    for (name, _) in plugins {
        wait_drained(&mut conn, &streams[name], "g", 1).await;
    }
    host.wait_log(Duration::from_secs(60), "every plugin's log lines", |log| {
        plugins.iter().all(|(name, _)| plugin_lines(log, name, &ids[name]).len() >= inputs.len())
    });
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");

    let expected: BTreeMap<usize, &str> = inputs.iter().enumerate().map(|(i, (_, outcome))| (i, *outcome)).collect();
    let mut reference: Option<(Outcomes, Vec<String>)> = None;
    for (name, _) in plugins {
        let outcomes = outcomes(&mut conn, &streams[name], &ids[name]).await;
        let found: BTreeMap<usize, &str> = outcomes.iter().map(|(i, (o, _))| (*i, o.as_str())).collect();
        assert_eq!(found, expected, "{name}: outcome per input");
        let lines = plugin_lines(&host.log, name, &ids[name]);
        match &reference {
            None => reference = Some((outcomes, lines)),
            Some((want_outcomes, want_lines)) => {
                assert_eq!(&outcomes, want_outcomes, "{name} vs orders: outcomes and dead-letter reasons");
                assert_eq!(&lines, want_lines, "{name} vs orders: log lines");
            }
        }
    }
    let (outcomes, lines) = reference.unwrap();
    assert_eq!(lines.len(), inputs.len(), "one log line per entry: {lines:#?}");
    assert_eq!(outcomes[&4].1, "malformed amount \"12.345\"");
    assert_eq!(outcomes[&6].1, "field \"customer\" is not UTF-8");
    assert_eq!(outcomes[&8].1, "missing field \"type\"");
    assert!(lines.contains(&"WARN retrying #5: payment of o-5 still pending".to_string()), "{lines:#?}");
    assert!(lines.contains(&"INFO order o-12 placed for Zoë \"Z\"\t: amount 12.12".to_string()), "{lines:#?}");
}

/// Each input's outcome on `stream`: acked, pending, or dead-lettered (with the error).
async fn outcomes(conn: &mut redis::aio::MultiplexedConnection, stream: &str, ids: &[String]) -> Outcomes {
    let index = |id: &str| ids.iter().position(|i| i == id).unwrap_or_else(|| panic!("unknown id {id}"));
    let mut outcomes = Outcomes::new();
    let pending: BTreeSet<usize> = pending(conn, stream, "g").await.iter().map(|(id, _, _)| index(id)).collect();
    for dead in dead_letters(conn, stream).await {
        let i = index(dead.meta("dlq:id").unwrap());
        outcomes.insert(i, ("dead-lettered".into(), dead.meta("dlq:error").unwrap().to_string()));
    }
    for i in 0..ids.len() {
        if pending.contains(&i) {
            outcomes.insert(i, ("pending".into(), String::new()));
        } else {
            outcomes.entry(i).or_insert(("acked".into(), String::new()));
        }
    }
    outcomes
}

/// The plugin's own log lines ("LEVEL message"), entry ids replaced by `#index`.
fn plugin_lines(log: &[String], name: &str, ids: &[String]) -> Vec<String> {
    let tag = format!(" plugin={name} version=");
    log.iter()
        .filter_map(|line| {
            let (head, message) = line.split_once(" plugin: ")?;
            let message = message.strip_suffix(line.rsplit_once(&tag).map(|(_, v)| v)?)?.strip_suffix(&tag)?;
            let level = head.split_whitespace().nth(1)?;
            let mut message = message.to_string();
            // Longest ids first: "…-2" must not eat the start of "…-20".
            let mut by_length: Vec<(usize, &String)> = ids.iter().enumerate().collect();
            by_length.sort_by_key(|(_, id)| std::cmp::Reverse(id.len()));
            for (i, id) in by_length {
                message = message.replace(id.as_str(), &format!("#{i}"));
            }
            Some(format!("{level} {message}"))
        })
        .collect()
}
