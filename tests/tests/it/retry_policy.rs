//! The retry policy: `--backoff` spaces retries by delivery count when the
//! plugin's retry gives no delay (the list's last step repeats), the
//! plugin's own delay wins, and a step longer than `--min-idle-ms` holds
//! the entry that long (the reapers leave it alone meanwhile).

use crate::support::*;
use std::time::Duration;

/// Seconds of the day of a log line's timestamp (`…THH:MM:SS.ffffffZ`).
fn at(line: &str) -> f64 {
    let time = line.split('T').nth(1).and_then(|t| t.split('Z').next()).expect("a timestamp");
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// When the entry was left pending after delivery `n`.
fn left_after(log: &[String], id: &str, n: u32) -> f64 {
    let line = log
        .iter()
        .find(|l| l.contains("left pending") && l.contains(id) && l.contains(&format!("deliveries={n}")))
        .unwrap_or_else(|| panic!("no retry of {id} on delivery {n}: {log:#?}"));
    at(line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_spaces_retries_by_delivery_and_the_plugins_delay_wins() {
    let mut conn = redis().await;
    let stream = unique_stream("backoff");
    let ids = produce(
        &mut conn,
        &stream,
        &[vec![("fail_first", b"4".to_vec())], vec![("fail", b"50".to_vec()), ("fail_first", b"3".to_vec())]],
    )
    .await;
    let mut host = Host::run(&stream, "chaos", &["--min-idle-ms", "200", "--reap-interval-ms", "50"])
        .args(["--backoff", "100ms,1200ms,300ms"])
        .start();
    wait_drained(&mut conn, &stream, "g", 1).await;
    // The second entry keeps retrying with its own 50 ms delay (fail=50 on every delivery).
    host.wait_log(Duration::from_secs(30), "the first entry handled", |log| {
        log.iter().any(|l| l.contains(&format!("handled {}", ids[0])))
    });
    let log = host.log.clone();
    let (d1, d2, d3) = (left_after(&log, &ids[0], 1), left_after(&log, &ids[0], 2), left_after(&log, &ids[0], 3));
    // Step 1 (100 ms) is shorter than --min-idle-ms: back after it (~200 ms).
    assert!(d2 - d1 < 1.0, "delivery 2 came {:.3} s after delivery 1", d2 - d1);
    // Step 2 (1200 ms) is held: not back before it.
    assert!(d3 - d2 >= 1.15, "delivery 3 came only {:.3} s after delivery 2", d3 - d2);
    // The plugin's own 50 ms delay wins over the list's 1200 ms.
    let (e1, e2) = (left_after(&log, &ids[1], 1), left_after(&log, &ids[1], 2));
    assert!(e2 - e1 < 1.0, "the plugin's delay did not win: {:.3} s", e2 - e1);
    host.terminate();
}

#[test]
fn a_bad_backoff_is_refused_naming_the_flag() {
    let out = Host::run("s", "chaos", &["--backoff", "1s,5 days"]).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--backoff") && stderr.contains("unknown unit"), "{stderr}");
    let out = Host::run("s", "chaos", &["--backoff", "2d"]).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("unknown unit \"d\""), "{stderr}");
}
