//! SIGTERM mid-stream: the binary exits 0 promptly and acks only what it handled.

use crate::support::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The host, started as a child process on a stream of slow entries, gets
/// SIGTERM while busy: it exits 0 within 2 s, every acked entry was handled
/// by the plugin, every handled entry was acked, and the rest stay pending.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_stream_exits_zero_and_acks_only_handled_entries() {
    let mut conn = redis().await;
    let stream = unique_stream("sigterm");
    let entries: Vec<_> = (0..400)
        .map(|_| vec![("sleep_ms", b"10".to_vec())])
        .collect();
    let ids = produce(&mut conn, &stream, &entries).await;

    let mut child = Command::new(host_bin())
        .args([
            "run",
            "--stream",
            &stream,
            "--group",
            "g",
            "--consumer",
            "c1",
            "--count",
            "50",
        ])
        .arg("--plugin")
        .arg(plugin("chaos"))
        .args(["--redis", redis_url()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn host");
    let pid = child.id() as i32;

    // The chaos plugin logs "handled <id>" for each entry it finishes.
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut handled = HashSet::new();
    let started = Instant::now();
    while handled.len() < 30 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "host did not start handling: {lines:#?}"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(id) = line.split("handled ").nth(1) {
                handled.insert(id.split_whitespace().next().unwrap().to_string());
            }
            lines.push(line);
        }
    }

    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            panic!("host did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let exit_time = signalled.elapsed();
    reader.join().unwrap();
    for line in rx.try_iter() {
        if let Some(id) = line.split("handled ").nth(1) {
            handled.insert(id.split_whitespace().next().unwrap().to_string());
        }
        lines.push(line);
    }

    assert!(status.success(), "exit status {status:?}; log: {lines:#?}");
    assert!(
        exit_time < Duration::from_secs(2),
        "took {exit_time:?} to exit"
    );

    // Delivered = every id up to the group's last-delivered-id; acked = delivered - pending.
    let info = group_info(&mut conn, &stream, "g")
        .await
        .expect("group exists");
    let last: Vec<u64> = info
        .last_delivered_id
        .split('-')
        .map(|p| p.parse().unwrap())
        .collect();
    let delivered: HashSet<String> = ids
        .iter()
        .filter(|id| {
            let v: Vec<u64> = id.split('-').map(|p| p.parse().unwrap()).collect();
            v <= last
        })
        .cloned()
        .collect();
    let still_pending: HashSet<String> = pending(&mut conn, &stream, "g")
        .await
        .into_iter()
        .map(|p| p.0)
        .collect();
    let acked: HashSet<String> = delivered.difference(&still_pending).cloned().collect();

    assert!(
        acked.len() < ids.len(),
        "stopped mid-stream, not after everything"
    );
    assert_eq!(
        acked, handled,
        "acked entries must be exactly the handled ones"
    );
}
