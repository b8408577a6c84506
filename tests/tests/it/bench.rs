//! `host bench` as a command: every mode drains all its entries through the
//! real machinery (the bench itself fails unless each entry was handled and
//! acked exactly once; the reference loop acks every entry it reads), reports
//! one well-formed JSON line, and deletes its stream. Its numbers are not checked here: timing lives in the benchmark.

use crate::support::*;
use redis::Commands;
use std::process::Stdio;

#[test]
fn bench_modes_drain_every_entry_and_clean_up() {
    let noop = plugin("noop");
    let noop = noop.to_str().unwrap();
    let modes: [&[&str]; 5] = [
        &["--handler", "loop"],
        &["--handler", "native"],
        &["--plugin", noop, "--guide-shape"],
        &["--plugin", noop, "--consumers", "2", "--rate", "5000"],
        &["--plugin", noop, "--consumers", "2", "--alongside"],
    ];
    let mut r = blocking::connect();
    for mode in modes {
        let child = Host::new(["bench"])
            .args(mode)
            .args(["--entries", "3000", "--redis", redis_url()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "bench {mode:?}: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout).unwrap();
        let report: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(report["entries"], 3000, "{report}");
        let (handler, consumers, count, ack) = match mode[0..2] {
            ["--handler", handler] => (handler, 1, 500, "batch"),
            _ if mode.contains(&"--guide-shape") => ("noop", 1, 10, "each"),
            _ => ("noop", 2, 500, "batch"),
        };
        assert_eq!(
            (
                report["handler"].as_str(),
                report["consumers"].as_u64(),
                report["count"].as_u64(),
                report["ack"].as_str()
            ),
            (Some(handler), Some(consumers), Some(count), Some(ack)),
            "{report}"
        );
        // Paced: the rate; produced alongside unpaced: "max"; a backlog: null.
        let rate = match mode {
            [.., "--rate", rate] => serde_json::json!(rate.parse::<u64>().unwrap()),
            [.., "--alongside"] => serde_json::json!("max"),
            _ => serde_json::Value::Null,
        };
        assert_eq!(report["rate"], rate, "{report}");
        let latency = &report["latency_ms"];
        let (p50, p99, p999) =
            (latency["p50"].as_f64().unwrap(), latency["p99"].as_f64().unwrap(), latency["p999"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{report}");
        assert!(
            report["entries_per_s"].as_f64().unwrap() > 0.0 && report["peak_rss_mb"].as_f64().unwrap() > 0.0,
            "{report}"
        );
        // Stolen CPU time: a number on Linux (where this runs), never negative.
        assert!(report["steal_seconds"].as_f64().is_some_and(|s| s >= 0.0), "{report}");
        let left: Vec<String> = r.keys(format!("bench:{pid}:*")).unwrap();
        assert!(left.is_empty(), "the bench stream is deleted: {left:?}");
    }
}
