//! Entries lost or handled twice: a dead-letter key of the wrong type, slow
//! but healthy handlers racing the reapers, trimming under leases and at
//! handover, reaping under a backlog, two processes with one consumer name,
//! a requeue chasing its own tail, and an endless retry delay.

use crate::support::*;
use crate::wait_until;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// `host` CLI run to completion: (exit status, stdout, stderr).
fn host_cli(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = Host::new(args).env("RUST_LOG", "warn").output();
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Waits (at most `limit`) for a host process to exit by itself; returns its
/// status and everything it logged.
fn exit_within(host: &mut HostProcess, limit: Duration) -> (std::process::ExitStatus, String) {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = host.child.try_wait().unwrap() {
            return (status, host.drain_log().join("\n"));
        }
        host.collect();
        assert!(start.elapsed() < limit, "still running after {limit:?}; log: {:#?}", host.log);
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn key_type(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap()
}

/// A dead-letter key holding a string: the host refuses to start, saying
/// so; made a string while it runs, a rejected entry stays pending (no XACK
/// without its record) and is dead-lettered once the key is fixed.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_key_of_another_type_never_loses_the_entry() {
    let mut conn = redis().await;
    let stream = unique_stream("dlq-wrongtype");
    let dlq = format!("{stream}:dlq");
    let _: () = redis::cmd("SET").arg(&dlq).arg("x").query_async(&mut conn).await.unwrap();
    let (status, err) = exit_within(&mut Host::run(&stream, "chaos", &[]).start(), MINUTE);
    assert!(!status.success(), "must refuse to start: {err}");
    assert!(err.contains(&format!("the dead-letter key {dlq:?} holds a string, not a stream")), "{err}");

    let _: () = redis::cmd("DEL").arg(&dlq).query_async(&mut conn).await.unwrap();
    let host = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    wait_until!(MINUTE, "the group", group_info(&mut conn, &stream, "g").await.is_some());
    let _: () = redis::cmd("SET").arg(&dlq).arg("x").query_async(&mut conn).await.unwrap();
    let ids = produce(&mut conn, &stream, &[vec![("reject", b"1".to_vec())]]).await;
    // Delivered and rejected at least twice (the reaper redelivers it), and
    // still pending every time: no XACK went through without its record.
    wait_until!(MINUTE, "a second delivery", pending(&mut conn, &stream, "g").await.iter().any(|p| p.2 >= 2));
    assert_eq!(pending(&mut conn, &stream, "g").await.len(), 1, "the rejected entry stays pending");
    assert_eq!(key_type(&mut conn, &dlq).await, "string", "nothing was written over the key");

    let _: () = redis::cmd("DEL").arg(&dlq).query_async(&mut conn).await.unwrap();
    wait_until!(MINUTE, "the dead letter", xlen(&mut conn, &dlq).await == 1);
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.stop().await;
    let letters = dead_letters(&mut conn, &stream).await;
    assert_eq!(letters.iter().map(|d| d.meta("dlq:id").unwrap()).collect::<Vec<_>>(), ids);
}

/// `dlq requeue` onto an origin key that is not a stream: an error, and the
/// dead letter stays where it is.
#[tokio::test(flavor = "multi_thread")]
async fn requeue_onto_a_key_of_another_type_keeps_the_dead_letter() {
    let mut conn = redis().await;
    let stream = unique_stream("requeue-wrongtype");
    let dlq = format!("{stream}:dlq");
    let host = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    produce(&mut conn, &stream, &[vec![("reject", b"1".to_vec())]]).await;
    wait_until!(MINUTE, "the dead letter", xlen(&mut conn, &dlq).await == 1);
    host.stop().await;
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await.unwrap();
    let _: () = redis::cmd("SET").arg(&stream).arg("x").query_async(&mut conn).await.unwrap();

    let (status, out, err) = host_cli(&["dlq", "requeue", "--stream", &stream, "--all", "--redis", redis_url()]);
    assert_eq!(xlen(&mut conn, &dlq).await, 1, "the dead letter is kept: {out}{err}");
    assert!(!status.success(), "{out}{err}");
    assert!(err.contains("holds a string, not a stream"), "{err}");
    assert_eq!(key_type(&mut conn, &stream).await, "string");
}

/// Two consumers, a backlog, read-ahead, and one slow but healthy handler
/// (2.5 s, within its deadline, 2.5× --min-idle-ms): no entry is handled
/// twice, and each rejected one has exactly one dead-letter record.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_healthy_handler_causes_no_duplicates() {
    let mut conn = redis().await;
    let stream = unique_stream("slow-dup");
    let entries: Vec<_> = (0..400)
        .map(|i| match i {
            95 | 255 => vec![("sleep_ms", b"2500".to_vec())],
            i if i % 7 == 3 => vec![("reject", b"1".to_vec())],
            _ => vec![("n", i.to_string().into_bytes())],
        })
        .collect();
    let rejects = entries.iter().filter(|e| e[0].0 == "reject").count();
    let ids = produce(&mut conn, &stream, &entries).await;
    let timing = ["--count", "10", "--min-idle-ms", "1000", "--reap-interval-ms", "100", "--call-deadline-ms", "3000"];
    let mut host = Host::run(&stream, "chaos", &[&["--consumers", "2"][..], &timing].concat()).start();
    wait_drained(&mut conn, &stream, "g", 0).await;
    // Both slow entries are done before the drain (their XACK comes after).
    let (status, _) = host.terminate();
    assert!(status.success());

    let handled = handled_list(&host.log);
    let mut calls: HashMap<&String, usize> = HashMap::new();
    for id in &handled {
        *calls.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(calls.len(), ids.len() - rejects, "every entry but the rejects handled ok");
    let letters = dead_letters(&mut conn, &stream).await;
    let dead: HashSet<_> = letters.iter().map(|d| d.meta("dlq:id").unwrap().to_string()).collect();
    assert_eq!((letters.len(), dead.len()), (rejects, rejects), "one record per rejected entry");
}

/// Entries whose payload is trimmed while a lease keeps them (a held retry,
/// and a failing entry in hand) are not dropped silently: Redis deletes them
/// from the pending list at the next lease refresh, and each gets an audit
/// record, the one in hand with its payload.
#[tokio::test(flavor = "multi_thread")]
async fn trimmed_under_a_lease_is_audited() {
    let mut conn = redis().await;
    let stream = unique_stream("trim-lease");
    let host = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    let held = produce(&mut conn, &stream, &[vec![("fail", b"60000".to_vec())]]).await;
    wait_until!(MINUTE, "the held retry", pending(&mut conn, &stream, "g").await.len() == 1);
    let in_hand = produce(&mut conn, &stream, &[vec![("sleep_ms", b"1500".to_vec()), ("fail", b"".to_vec())]]).await;
    wait_until!(MINUTE, "the entry in hand", pending(&mut conn, &stream, "g").await.len() == 2);
    let _: u64 = redis::cmd("XTRIM").arg(&stream).arg("MAXLEN").arg(0).query_async(&mut conn).await.unwrap();

    wait_until!(MINUTE, "two audit records", xlen(&mut conn, &format!("{stream}:dlq")).await >= 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    host.stop().await;
    let letters = dead_letters(&mut conn, &stream).await;
    let by_id: HashMap<_, _> = letters.iter().map(|d| (d.meta("dlq:id").unwrap().to_string(), d)).collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(by_id[&held[0]].meta("dlq:reason"), Some("trimmed before processing"));
    assert!(by_id[&held[0]].fields.is_empty());
    let hand = by_id[&in_hand[0]];
    assert_eq!(hand.meta("dlq:reason"), Some("trimmed before processing"));
    assert_eq!(hand.fields.len(), 2, "the payload the host still had: {hand:?}");
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
}

/// An entry in hand that is trimmed and dropped from the pending list by
/// someone else's command (as when the reply of the host's own lease
/// refresh is lost): pending nowhere, its payload gone, a reject must still
/// leave a record, with the payload the host holds.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_in_hand_dropped_elsewhere_is_still_recorded() {
    let mut conn = redis().await;
    let stream = unique_stream("trim-elsewhere");
    let host = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    let ids = produce(&mut conn, &stream, &[vec![("sleep_ms", b"1500".to_vec()), ("reject", b"1".to_vec())]]).await;
    wait_until!(MINUTE, "the entry in hand", pending(&mut conn, &stream, "g").await.len() == 1);
    let _: u64 = redis::cmd("XTRIM").arg(&stream).arg("MAXLEN").arg(0).query_async(&mut conn).await.unwrap();
    let _: u64 = redis::cmd("XACK").arg(&stream).arg("g").arg(&ids[0]).query_async(&mut conn).await.unwrap();

    wait_until!(MINUTE, "its record", xlen(&mut conn, &format!("{stream}:dlq")).await == 1);
    host.stop().await;
    let letters = dead_letters(&mut conn, &stream).await;
    assert_eq!(letters[0].meta("dlq:id"), Some(ids[0].as_str()));
    assert_eq!(letters[0].fields.len(), 2, "with its payload: {letters:?}");
}

/// A consumer leaving with --handover whose pending entries were trimmed:
/// the handover's XCLAIM drops them, and each gets an audit record.
#[tokio::test(flavor = "multi_thread")]
async fn trimmed_at_handover_is_audited() {
    let mut conn = redis().await;
    let stream = unique_stream("trim-handover");
    let mut leaving = config("chaos", &stream, "g", &["leaving"]);
    leaving.settings.handover = true;
    leaving.settings.min_idle = Duration::from_secs(30); // no lease refresh before the handover
    let leaving = HostRun::start(leaving);
    let held: Vec<_> = (0..3).map(|_| vec![("fail", b"120000".to_vec())]).collect();
    let held = produce(&mut conn, &stream, &held).await;
    wait_until!(MINUTE, "the held retries", pending(&mut conn, &stream, "g").await.len() == 3);
    let mut peer = config("chaos", &stream, "g", &["peer"]);
    peer.settings.min_idle = Duration::from_secs(60); // its reaper must not find them first
    let peer = HostRun::start(peer);
    wait_until!(MINUTE, "the peer", consumer_names(&mut conn, &stream, "g").await.contains(&"peer".to_string()));
    let _: u64 = redis::cmd("XTRIM").arg(&stream).arg("MAXLEN").arg(0).query_async(&mut conn).await.unwrap();
    leaving.stop().await;
    peer.stop().await;

    let letters = dead_letters(&mut conn, &stream).await;
    let audited: HashSet<_> = letters.iter().map(|d| d.meta("dlq:id").unwrap().to_string()).collect();
    assert_eq!(audited, held.iter().cloned().collect(), "{letters:?}");
    assert!(letters.iter().all(|d| d.meta("dlq:reason") == Some("trimmed before processing")));
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
}

/// Under a backlog of quick entries (a read ahead in every step), the
/// reaper keeps its period: a failing entry is redelivered and dead-lettered
/// after its third delivery while most of the backlog is still unread.
#[tokio::test(flavor = "multi_thread")]
async fn reaping_keeps_its_period_under_a_backlog() {
    let mut conn = redis().await;
    let stream = unique_stream("backlog-reap");
    let mut entries = vec![vec![("fail", b"".to_vec())]];
    entries.extend((0..100_000).map(|_| vec![("n", b"1".to_vec())]));
    produce(&mut conn, &stream, &entries).await;
    let mut cfg = config("chaos", &stream, "g", &["c1"]);
    (cfg.settings.count, cfg.settings.max_deliveries) = (10, 3);
    (cfg.settings.min_idle, cfg.settings.reap_interval) = (Duration::from_millis(300), Duration::from_millis(100));
    let host = HostRun::start(cfg);
    wait_until!(MINUTE, "the failing entry's dead letter", xlen(&mut conn, &format!("{stream}:dlq")).await == 1);
    let info = group_info(&mut conn, &stream, "g").await.unwrap();
    assert!(info.lag.unwrap_or(0) > 10_000, "dead-lettered only once the backlog was (nearly) drained: {info:?}");
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.stop().await;
}

/// Two processes given one consumer name: the second waits out the lease,
/// then refuses with a clear error, never touching the first one's pending
/// entries. Default names differ between processes. After a kill -9, a
/// process restarted under the name takes it over once the lease expires.
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_never_share_a_consumer_name() {
    let mut conn = redis().await;
    let stream = unique_stream("twins");
    let held = produce(&mut conn, &stream, &[vec![("fail", b"600000".to_vec())]]).await;
    let mut first = Host::run(&stream, "chaos", &["--consumer", "twin"]).start();
    wait_until!(MINUTE, "the first delivery", pending(&mut conn, &stream, "g").await.len() == 1);

    let (status, log) = exit_within(&mut Host::run(&stream, "chaos", &["--consumer", "twin"]).start(), MINUTE);
    assert!(!status.success(), "{log}");
    assert!(log.contains("consumer name \"twin\"") && log.contains("is in use by a live holder"), "{log}");
    let rows = pending(&mut conn, &stream, "g").await;
    assert_eq!(rows, vec![(held[0].clone(), "twin".to_string(), 1)], "the twin never re-delivered it");

    let mut a = Host::run(&stream, "chaos", &[]).start();
    let mut b = Host::run(&stream, "chaos", &[]).start();
    wait_until!(MINUTE, "two more consumers", consumer_names(&mut conn, &stream, "g").await.len() == 3);
    assert!(a.terminate().0.success() && b.terminate().0.success());

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let mut restarted = Host::run(&stream, "chaos", &["--consumer", "twin", "--max-deliveries", "2"]).start();
    // The start-up drain (after the lease expired) redelivers it: a second
    // delivery, the last one allowed, dead-letters it.
    wait_until!(MINUTE, "the restarted twin's drain", xlen(&mut conn, &format!("{stream}:dlq")).await == 1);
    assert!(restarted.terminate().0.success());
}

/// `dlq requeue --all` while a consumer rejects everything requeued: it
/// stops at the last record there was when it started.
#[tokio::test(flavor = "multi_thread")]
async fn requeue_all_does_not_chase_its_own_tail() {
    let mut conn = redis().await;
    let stream = unique_stream("requeue-tail");
    let dlq = format!("{stream}:dlq");
    let host = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    let rejects: Vec<_> = (0..300).map(|_| vec![("reject", b"1".to_vec())]).collect();
    produce(&mut conn, &stream, &rejects).await;
    wait_until!(MINUTE, "300 dead letters", xlen(&mut conn, &dlq).await == 300);

    let (status, out, err) = host_cli(&["dlq", "requeue", "--stream", &stream, "--all", "--redis", redis_url()]);
    assert!(status.success(), "{err}");
    assert!(out.contains("requeued 300 entries"), "{out}");
    host.stop().await;
}

/// An entry of 5,000 fields (more than one Lua call can pass on) is still
/// dead-lettered whole, and requeued whole: a poison entry of that shape
/// must not loop for ever.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_of_many_fields_is_dead_lettered_and_requeued_whole() {
    let mut conn = redis().await;
    let stream = unique_stream("many-fields");
    let dlq = format!("{stream}:dlq");
    let mut wide: Vec<(&str, Vec<u8>)> = vec![("reject", b"1".to_vec())];
    let names: Vec<String> = (0..4999).map(|i| format!("f{i}")).collect();
    wide.extend(names.iter().map(|n| (n.as_str(), n.clone().into_bytes())));
    let host = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    let ids = produce(&mut conn, &stream, &[wide]).await;
    wait_until!(MINUTE, "the dead letter", xlen(&mut conn, &dlq).await == 1);
    host.stop().await;
    let letters = dead_letters(&mut conn, &stream).await;
    assert_eq!(letters[0].meta("dlq:id"), Some(ids[0].as_str()));
    assert_eq!(letters[0].fields.len(), 5000);

    let (status, out, err) = host_cli(&["dlq", "requeue", "--stream", &stream, "--all", "--redis", redis_url()]);
    assert!(status.success() && out.contains("requeued 1 entries"), "{out}{err}");
    assert_eq!(xlen(&mut conn, &dlq).await, 0);
    let (_, back) = newest(&mut conn, &stream).await;
    assert_eq!(back.len(), 10_000, "5,000 fields back on the stream");
}

/// A plugin asking for a retry delay of u64::MAX ms does not park its entry
/// for ever: the delay is cut to --max-retry-delay-ms, the entry comes back
/// and is dead-lettered after --max-deliveries.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_retry_delay_is_capped() {
    let mut conn = redis().await;
    let stream = unique_stream("endless-delay");
    let mut cfg = fast_config("chaos", &stream, "g", &["c1"]);
    (cfg.settings.max_deliveries, cfg.settings.max_retry_delay) = (2, Duration::from_millis(600));
    let host = HostRun::start(cfg);
    produce(&mut conn, &stream, &[vec![("fail", u64::MAX.to_string().into_bytes())]]).await;
    wait_until!(MINUTE, "the dead letter", xlen(&mut conn, &format!("{stream}:dlq")).await == 1);
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
    host.stop().await;
}
