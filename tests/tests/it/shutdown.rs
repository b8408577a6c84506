//! The `host` binary as a process: SIGTERM mid-stream, and plugin output in the log.

use crate::support::*;
use std::collections::HashSet;
use std::time::Duration;

/// The host, started as a child process on a stream of slow entries, gets
/// SIGTERM while busy: it exits 0 within 2 s, every acked entry was handled
/// by the plugin, every handled entry was acked, and the rest stay pending.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_stream_exits_zero_and_acks_only_handled_entries() {
    let mut conn = redis().await;
    let stream = unique_stream("sigterm");
    let entries: Vec<_> = (0..400).map(|_| vec![("sleep_ms", b"10".to_vec())]).collect();
    let ids = produce(&mut conn, &stream, &entries).await;

    let mut host = Host::run(&stream, "chaos", &["--consumer", "c1", "--count", "50"]).start();
    host.wait_log(Duration::from_secs(60), "30 handled entries", |log| handled_ids(log).len() >= 30);
    let (status, took) = host.terminate();
    let handled = handled_ids(&host.log);

    assert!(status.success(), "exit status {status:?}; log: {:#?}", host.log);
    assert!(took < Duration::from_secs(2), "took {took:?} to exit");

    // Delivered = every id up to the group's last-delivered-id; acked = delivered - pending.
    let info = group_info(&mut conn, &stream, "g").await.expect("group exists");
    let seq = |id: &str| -> (u64, u64) {
        let (ms, n) = id.split_once('-').unwrap();
        (ms.parse().unwrap(), n.parse().unwrap())
    };
    let last = seq(&info.last_delivered_id);
    let delivered: HashSet<String> = ids.iter().filter(|id| seq(id) <= last).cloned().collect();
    let still_pending: HashSet<String> = pending(&mut conn, &stream, "g").await.into_iter().map(|p| p.0).collect();
    let acked: HashSet<String> = delivered.difference(&still_pending).cloned().collect();

    assert!(acked.len() < ids.len(), "stopped mid-stream, not after everything");
    assert_eq!(acked, handled, "acked entries must be exactly the handled ones");
}

/// What a plugin writes to stdout/stderr and through the `log` import reaches
/// the host log, tagged with the plugin's name and version.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_output_reaches_the_host_log_tagged() {
    let mut conn = redis().await;
    let stream = unique_stream("output");
    let ids = produce(&mut conn, &stream, &[vec![("print", b"hello from the guest".to_vec())]]).await;

    let mut host = Host::run(&stream, "chaos", &[]).start();
    let has = |needle: String| move |log: &[String]| log.iter().any(|l| l.contains(&needle));
    host.wait_log(Duration::from_secs(30), "stdout line", has("stdout: hello from the guest".into()));
    host.wait_log(Duration::from_secs(30), "stderr line", has("stderr: hello from the guest".into()));
    host.wait_log(Duration::from_secs(30), "log import line", has(format!("handled {}", ids[0])));
    let (status, _) = host.terminate();
    assert!(status.success());

    let version = host::plugin_version(&std::fs::read(plugin("chaos")).unwrap());
    for line in host.log.iter().filter(|l| l.contains("hello from the guest") || l.contains("handled ")) {
        assert!(line.contains("plugin=chaos") && line.contains(&version), "untagged line: {line}");
    }
}
