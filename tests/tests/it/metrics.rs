//! `--metrics ADDR`: the Prometheus endpoint parses as OpenMetrics text and
//! its counters match what happened, labelled with the plugin version.

use crate::support::*;
use crate::wait_until;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// One sample: metric name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// GETs `http://addr/metrics` and parses every line strictly: comments are
/// `# HELP|TYPE|UNIT` or the final `# EOF`; samples are `name{labels} value`.
pub fn scrape(addr: &str) -> Vec<Sample> {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics text ends with # EOF");
    lines[..lines.len() - 1]
        .iter()
        .filter(|l| {
            let comment = l.starts_with('#');
            assert!(!comment || ["# HELP ", "# TYPE ", "# UNIT "].iter().any(|p| l.starts_with(p)), "bad line {l:?}");
            !comment
        })
        .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample line: {l:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let mut labels = BTreeMap::new();
            let mut rest = rest.strip_suffix('}')?;
            while !rest.is_empty() {
                let (key, after) = rest.split_once("=\"")?;
                let end = after.find('"')?;
                labels.insert(key.to_string(), after[..end].to_string());
                rest = after[end + 1..].trim_start_matches(',');
            }
            (name, labels)
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    (!name.is_empty() && name.chars().all(valid)).then(|| (name.to_string(), labels, value))
}

/// The value of `name` whose labels include all of `want`; 0 when absent.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|(n, labels, _)| n == name && want.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(v)))
        .map(|s| s.2)
        .collect();
    assert!(matching.len() <= 1, "{name} {want:?} matches {matching:?}");
    matching.first().copied().unwrap_or(0.0)
}

/// Verdicts, acks, dead letters, call count, loads and the version in service
/// all show up with the right counts; after a hot reload the new version's
/// counters start from zero and it replaces the old one as serving; a failed
/// reload is counted.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_happened_per_plugin_version() {
    let mut conn = redis().await;
    let stream = unique_stream("metrics");
    let dir = plugin_dir("metrics");
    let wasm = dir.join("orders.wasm");
    let v1_bytes = std::fs::read(plugin("orders")).unwrap();
    install(&wasm, &v1_bytes);
    let v1 = host::plugin_version(&v1_bytes);
    let mut orders: Vec<_> = (0..21).map(order).collect();
    orders[4][3].1 = b"four".to_vec();
    orders[20].push(("payment", b"pending".to_vec())); // retried: stays pending (no redelivery in this test)
    produce(&mut conn, &stream, &orders).await;

    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let args = ["run", "--stream", &stream, "--group", "g", "--plugin", wasm.to_str().unwrap(), "--metrics", &addr];
    let mut host =
        Host::new([&args[..], &["--redis", redis_url(), "--min-idle-ms", "600000"]].concat()).logging().start();
    wait_drained(&mut conn, &stream, "g", 1).await;
    host.wait_log(MINUTE, "the metrics endpoint", |log| log.iter().any(|l| l.contains("metrics on http://")));

    let group = [("stream", stream.as_str()), ("group", "g")];
    let v1_labels = [group[0], group[1], ("plugin", "orders"), ("version", v1.as_str())];
    let dead_v1 = [&v1_labels[..], &[("reason", "rejected")]].concat();
    // Redis sees an ack or dead letter a moment before the counter moves.
    wait_until!(MINUTE, "acks and dead letters counted", {
        let m = scrape(&addr);
        value(&m, "host_acked_total", &group) == 19.0 && value(&m, "host_dead_lettered_total", &dead_v1) == 1.0
    });
    let m = scrape(&addr);
    let verdict = |m: &[Sample], version: &[(&str, &str)], v: &str| {
        value(m, "host_entries_total", &[version, &[("verdict", v)]].concat())
    };
    assert_eq!(verdict(&m, &v1_labels, "ack"), 19.0);
    assert_eq!(verdict(&m, &v1_labels, "reject"), 1.0);
    assert_eq!(verdict(&m, &v1_labels, "retry"), 1.0, "the pending payment");
    assert_eq!(verdict(&m, &v1_labels, "fault"), 0.0);
    let calls = verdict(&m, &v1_labels, "ack") + verdict(&m, &v1_labels, "reject") + verdict(&m, &v1_labels, "retry");
    assert_eq!(value(&m, "host_call_duration_seconds_count", &v1_labels), calls);
    // The group gauges say what XINFO GROUPS says.
    let info = group_info(&mut conn, &stream, "g").await.unwrap();
    assert_eq!((info.pending, info.lag), (1, Some(0)));
    assert_eq!(value(&m, "host_group_pending", &group), 1.0);
    assert_eq!(value(&m, "host_group_lag", &group), 0.0);
    assert_eq!(value(&m, "host_plugin_serving", &[("plugin", "orders"), ("version", &v1)]), 1.0);
    assert_eq!(value(&m, "host_plugin_loads_total", &[("plugin", "orders"), ("result", "ok")]), 1.0);

    // A garbage file is a failed load; a new build is a new version.
    std::fs::write(&wasm, b"not wasm").unwrap();
    host.wait_log(MINUTE, "the failed reload", |log| log.iter().any(|l| l.contains("reload of")));
    let v2_bytes = chaos_variant(b"metrics");
    let v2 = host::plugin_version(&v2_bytes);
    install(&wasm, &v2_bytes);
    host.wait_log(MINUTE, "the reload", |log| log.iter().any(|l| l.contains(&format!("replacing version {v1}"))));
    let ids = produce(&mut conn, &stream, &(0..5).map(order).collect::<Vec<_>>()).await;
    host.wait_log(MINUTE, "v2 handling", |log| ids.iter().all(|id| handled_ids(log).contains(id)));
    wait_drained(&mut conn, &stream, "g", 1).await;

    let v2_labels = [group[0], group[1], ("plugin", "orders"), ("version", v2.as_str())];
    wait_until!(MINUTE, "v2's acks counted", value(&scrape(&addr), "host_acked_total", &group) == 24.0);
    let m = scrape(&addr);
    assert_eq!(verdict(&m, &v2_labels, "ack"), 5.0);
    assert_eq!(verdict(&m, &v1_labels, "ack"), 19.0, "v1's counters stay as they were");
    assert_eq!(value(&m, "host_plugin_serving", &[("plugin", "orders"), ("version", &v2)]), 1.0);
    assert_eq!(value(&m, "host_plugin_serving", &[("plugin", "orders"), ("version", &v1)]), 0.0);
    assert_eq!(value(&m, "host_plugin_loads_total", &[("plugin", "orders"), ("result", "ok")]), 2.0);
    assert_eq!(value(&m, "host_plugin_loads_total", &[("plugin", "orders"), ("result", "failed")]), 1.0);
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");
}

/// A metrics address that cannot be bound is a clear error at start-up.
#[test]
fn a_taken_metrics_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let wasm = plugin("orders");
    let args = ["run", "--stream", "s", "--group", "g", "--plugin", wasm.to_str().unwrap(), "--metrics", &addr];
    let mut host = Host::new([&args[..], &["--redis", redis_url()]].concat()).logging().start();
    let status = host.child.wait().unwrap();
    let log = host.drain_log();
    assert!(!status.success());
    assert!(log.iter().any(|l| l.contains(&format!("cannot listen on {addr} for --metrics"))), "{log:#?}");
}
