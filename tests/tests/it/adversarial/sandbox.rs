//! Sandbox escapes through host calls: a plugin blocking in WASI past its
//! call deadline (and the signals that must still stop the host meanwhile),
//! and a plugin flooding or forging the host log.

use crate::support::*;
use std::path::PathBuf;
use std::time::Duration;

/// The chaos plugin with its `wasi:io/poll` import renamed to version
/// `version` (as long as the `0.2.12` it was built against), as if built
/// against that WASI release.
fn chaos_importing_poll(version: &str) -> PathBuf {
    let (from, to) = (b"wasi:io/poll@0.2.12".as_slice(), format!("wasi:io/poll@{version}").into_bytes());
    assert_eq!(from.len(), to.len(), "a same-length version keeps the binary valid");
    let mut bytes = std::fs::read(plugin("chaos")).unwrap();
    let mut renamed = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + i..at + i + to.len()].copy_from_slice(&to);
        renamed += 1;
        at += i + to.len();
    }
    assert!(renamed > 0, "chaos imports wasi:io/poll@0.2.12");
    let path = std::env::temp_dir().join(format!("host-chaos-poll-{version}-{}.wasm", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `host run` of the plugin at `path` on `stream` (group `g`, consumer `c1`).
fn run_plugin(path: &std::path::Path, stream: &str, extra: &[&str]) -> HostProcess {
    let path = path.to_str().expect("UTF-8 path");
    let mut args =
        vec!["run", "--stream", stream, "--group", "g", "--consumer", "c1", "--plugin", path, "--redis", redis_url()];
    args.extend_from_slice(extra);
    Host::new(&args).logging().start()
}

/// The host on a stream of its own (named after `name`) with
/// `--call-deadline-ms deadline_ms`, in a chaos call sleeping a minute in
/// WASI; also the stream and the sleeping entry's id.
async fn sleeping_in_wasi(
    conn: &mut redis::aio::MultiplexedConnection,
    name: &str,
    deadline_ms: &str,
) -> (HostProcess, String, String) {
    let stream = unique_stream(name);
    let ids = produce(conn, &stream, &[vec![("wasi_sleep_ms", b"60000".to_vec())]]).await;
    let mut host = run_plugin(&plugin("chaos"), &stream, &["--call-deadline-ms", deadline_ms]);
    host.wait_log(Duration::from_secs(30), "the sleep", |log| log.iter().any(|l| l.contains("sleeping 60000 ms")));
    (host, stream, ids[0].clone())
}

/// A plugin sleeping a minute in WASI under a 500 ms deadline is faulted in
/// seconds, not after its sleep: the entry stays pending (delivered once),
/// the log names the blocking host call, the entries around it are acked.
/// The same holds for a guest built against an older or a newer 0.2.x
/// `wasi:io/poll` (resolved by semver to the host's bounded version).
#[tokio::test(flavor = "multi_thread")]
async fn wasi_sleep_past_the_deadline_is_cut_and_left_pending() {
    let mut conn = redis().await;
    for path in [plugin("chaos"), chaos_importing_poll("0.2.10"), chaos_importing_poll("0.2.99")] {
        let stream = unique_stream("wasi-sleep");
        let ok = || vec![("n", b"1".to_vec())];
        let ids = produce(&mut conn, &stream, &[ok(), vec![("wasi_sleep_ms", b"60000".to_vec())], ok()]).await;

        let mut host = run_plugin(&path, &stream, &["--call-deadline-ms", "500"]);
        let drained = tokio::time::timeout(Duration::from_secs(20), wait_drained(&mut conn, &stream, "g", 1)).await;
        host.collect();
        assert!(
            drained.is_ok(),
            "{}: the sleeping entry was not cut within 20 s; log: {:#?}",
            path.display(),
            host.log
        );
        host.wait_log(Duration::from_secs(10), "the fault", |log| {
            log.iter().any(|l| l.contains("in a blocking host call") && l.contains("deadline of 500 ms"))
        });
        let left = pending(&mut conn, &stream, "g").await;
        assert_eq!(left, vec![(ids[1].clone(), "c1".to_string(), 1)], "{}", path.display());
        let (status, _) = host.terminate();
        assert!(status.success(), "{status}");
        let handled = handled_ids(&host.log);
        assert!(handled.contains(&ids[0]) && handled.contains(&ids[2]), "{handled:?}");
    }
}

/// SIGTERM while a plugin sleeps in WASI: the host finishes the call in
/// hand within its deadline (2 s, not the 60 s sleep), exits 0, and the
/// entry stays pending, delivered once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_blocking_call_exits_within_the_deadline() {
    let mut conn = redis().await;
    let (mut host, stream, id) = sleeping_in_wasi(&mut conn, "wasi-sleep-term", "2000").await;

    let (status, _) = host.terminate();
    assert!(status.success(), "{status}; log: {:#?}", host.log);
    assert_eq!(pending(&mut conn, &stream, "g").await, vec![(id, "c1".to_string(), 1)]);
}

/// A second SIGTERM during the graceful stop (here waiting on a call with a
/// 2-minute deadline) exits at once with status 143, saying that the entry
/// in hand stays pending, and it does: delivered once, not acked.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_forces_the_exit() {
    let mut conn = redis().await;
    let (mut host, stream, id) = sleeping_in_wasi(&mut conn, "second-sigterm", "120000").await;
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(host.child.id() as i32, libc::SIGTERM) };
    host.wait_log(Duration::from_secs(10), "the graceful stop", |log| {
        log.iter().any(|l| l.contains("SIGTERM received"))
    });

    let (status, _) = host.terminate();
    assert_eq!(status.code(), Some(143), "log: {:#?}", host.log);
    assert!(host.log.iter().any(|l| l.contains("second SIGTERM") && l.contains("stay pending")), "{:#?}", host.log);
    assert_eq!(pending(&mut conn, &stream, "g").await, vec![(id, "c1".to_string(), 1)]);
}

/// One 1 MiB log message reaches the host log cut to its first 4 KiB, with a
/// note of how many bytes were dropped; the whole log of the run stays small.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_log_message_is_cut_with_a_note() {
    let mut conn = redis().await;
    let stream = unique_stream("log-huge");
    let huge = "x".repeat(1 << 20);
    produce(&mut conn, &stream, &[vec![("log_line", huge.into_bytes())]]).await;
    let mut host = run_plugin(&plugin("chaos"), &stream, &[]);
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.wait_log(Duration::from_secs(30), "the message", |log| log.iter().any(|l| l.contains("xxxxxxxx")));
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");

    let lines: Vec<&String> = host.log.iter().filter(|l| l.contains("xxxxxxxx")).collect();
    assert_eq!(lines.len(), 1, "one record for one message");
    assert!(lines[0].len() < 4096 + 512, "a line of {} bytes", lines[0].len());
    assert!(lines[0].contains(&format!("[{} more bytes dropped]", (1 << 20) - 4096)), "{}", &lines[0][4000..]);
    let total: usize = host.log.iter().map(|l| l.len() + 1).sum();
    assert!(total < 64 * 1024, "{total} bytes of log");
}

/// A call logging 100 000 lines gets 100 of them into the host log and one
/// warning counting the rest (the flood's 99 900 and the entry's own
/// `handled` line); the next call has its whole budget again. A 1 MiB line
/// on stdout and stderr is held to the same per-call budget (64 KiB).
#[tokio::test(flavor = "multi_thread")]
async fn a_log_flood_is_capped_per_call() {
    let mut conn = redis().await;
    let stream = unique_stream("log-flood");
    let entries = [
        vec![("log_flood", b"100000".to_vec())],
        vec![("n", b"1".to_vec())],
        vec![("print", "y".repeat(1 << 20).into_bytes())],
    ];
    let ids = produce(&mut conn, &stream, &entries).await;
    let mut host = run_plugin(&plugin("chaos"), &stream, &[]);
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.wait_log(Duration::from_secs(30), "two capped calls", |log| {
        log.iter().filter(|l| l.contains("plugin log capped")).count() >= 2
    });
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");

    let flood = host.log.iter().filter(|l| l.contains("flood line ")).count();
    assert_eq!(flood, 100, "log records of the flooding call");
    let capped: Vec<&String> = host.log.iter().filter(|l| l.contains("plugin log capped")).collect();
    assert_eq!(capped.len(), 2, "{capped:#?}");
    assert!(capped[0].contains("99901 records"), "{}", capped[0]);
    assert!(handled_ids(&host.log).contains(&ids[1]), "the next call logs again");
    let printed: usize = host.log.iter().filter(|l| l.contains("yyyyyyyy")).map(|l| l.len()).sum();
    assert!(printed > 0 && printed < 64 * 1024 + 16 * 512, "{printed} bytes of stdout/stderr in the log");
}

/// Text a plugin logs, prints, or returns as a retry or reject reason cannot
/// begin a host log line of its own nor reach the terminal raw: its newline,
/// carriage returns and ANSI escape come out escaped, and no line of the log
/// begins with the forged timestamp.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_text_cannot_forge_a_host_log_line() {
    const FORGED: &str =
        "calm\r\n1999-01-01T00:00:00.000000Z  INFO host::consumer: consumer stopped consumer=FORGED\x1b[2K\rend";
    let mut conn = redis().await;
    let stream = unique_stream("log-forge");
    let routes = ["log_line", "print", "retry_text", "reject_text"];
    let entries: Vec<_> = routes.iter().map(|r| vec![(*r, FORGED.as_bytes().to_vec())]).collect();
    produce(&mut conn, &stream, &entries).await;
    let mut host = run_plugin(&plugin("chaos"), &stream, &[]);
    wait_drained(&mut conn, &stream, "g", 1).await;
    host.wait_log(Duration::from_secs(30), "every route", |log| {
        log.iter().any(|l| l.contains("left pending")) && log.iter().any(|l| l.contains("dead-lettered"))
    });
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");

    let reached = host.log.iter().filter(|l| l.contains("consumer=FORGED")).count();
    assert!(reached >= routes.len(), "every route reached the log: {:#?}", host.log);
    for line in &host.log {
        assert!(!line.starts_with("1999-"), "a forged line: {line:?}");
        assert!(!line.contains(['\x1b', '\r']), "a raw control character: {line:?}");
    }
    assert!(host.log.iter().any(|l| l.contains("\\n1999-01-01") && l.contains("\\u{1b}[2K")), "{:#?}", host.log);
}
