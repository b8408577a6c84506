//! At-least-once done right: reaper, true delivery counts, dead letters,
//! trimmed entries, retry delays, leases, handover — proven with faults.

use crate::support::*;
use crate::wait_until;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// kill -9 of a host mid-stream, then a second host in the same group: every
/// entry is handled at least once, all are acked, the PEL ends empty.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_mid_stream_then_a_second_host_finishes_everything() {
    let mut conn = redis().await;
    let stream = unique_stream("kill9");
    let entries: Vec<_> = (0..10_000)
        .map(|i| if i % 4 == 0 { vec![("sleep_ms", b"1".to_vec())] } else { vec![("n", b"1".to_vec())] })
        .collect();
    let ids = produce(&mut conn, &stream, &entries).await;
    let timing = ["--count", "100", "--min-idle-ms", "500", "--reap-interval-ms", "100"];
    let as_consumer = |name: &'static str| [&["--consumer", name][..], &timing[..]].concat();

    let mut first = Host::run(&stream, "chaos", &as_consumer("a")).start();
    first.wait_log(MINUTE, "2,000 handled entries", |log| handled_list(log).len() >= 2000);
    first.child.kill().expect("kill -9");
    first.child.wait().unwrap();
    let info = group_info(&mut conn, &stream, "g").await.expect("group exists");
    assert!(info.pending > 0 || info.lag != Some(0), "the kill must land mid-stream: {info:?}");
    let started = Instant::now();
    let mut second = Host::run(&stream, "chaos", &as_consumer("b")).start();
    wait_drained(&mut conn, &stream, "g", 0).await;
    let recovered_in = started.elapsed();
    let (status, _) = second.terminate();
    assert!(status.success(), "{status:?}: {:#?}", &second.log[second.log.len().saturating_sub(20)..]);
    let first_log = first.drain_log();

    let handled: Vec<String> = handled_list(&first_log).into_iter().chain(handled_list(&second.log)).collect();
    let distinct: HashSet<&String> = handled.iter().collect();
    let all: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct, all, "every entry handled at least once");
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
    assert_eq!(xlen(&mut conn, &format!("{stream}:dlq")).await, 0, "nothing dead-lettered");
    eprintln!(
        "kill -9 run: produced {}, handled {} ({} duplicates), dead-lettered 0, lost {}; second host drained in {recovered_in:?}",
        ids.len(),
        handled.len(),
        handled.len() - distinct.len(),
        all.len() - distinct.len()
    );
}

/// A consumer that dies for good: a live peer reclaims its entries within
/// --min-idle-ms plus one reap interval (plus scheduling slack).
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_consumers_entries_are_reclaimed_by_a_peer() {
    let mut conn = redis().await;
    let stream = unique_stream("dead");
    let entries: Vec<_> = (0..300).map(|_| vec![("sleep_ms", b"20".to_vec())]).collect();
    produce(&mut conn, &stream, &entries).await;
    let (min_idle, reap) = (Duration::from_millis(1000), Duration::from_millis(200));
    let timing = ["--min-idle-ms", "1000", "--reap-interval-ms", "200"];
    let mut dying = Host::run(&stream, "chaos", &[&["--consumer", "a", "--count", "20"][..], &timing].concat()).start();
    let mut peer = Host::run(&stream, "chaos", &[&["--consumer", "b", "--count", "2"][..], &timing].concat()).start();
    dying.wait_log(MINUTE, "the doomed consumer at work", |log| handled_list(log).len() >= 5);
    dying.child.kill().expect("kill -9");
    let killed = Instant::now();
    dying.child.wait().unwrap();
    assert!(pending(&mut conn, &stream, "g").await.iter().any(|p| p.1 == "a"), "the dead consumer held entries");

    wait_until!(MINUTE, "the dead consumer's PEL to empty", {
        !pending(&mut conn, &stream, "g").await.iter().any(|p| p.1 == "a")
    });
    let recovery = killed.elapsed();
    wait_drained(&mut conn, &stream, "g", 0).await;
    let (status, _) = peer.terminate();
    assert!(status.success());
    eprintln!("recovery after a consumer death: {recovery:?} (min-idle {min_idle:?} + reap interval {reap:?})");
    assert!(recovery <= min_idle + reap + Duration::from_secs(1), "recovery took {recovery:?}");
}

/// A poison pill (`fail`) is dead-lettered after exactly --max-deliveries
/// deliveries, with its metadata, and acked on the origin stream.
#[tokio::test(flavor = "multi_thread")]
async fn poison_pill_is_dead_lettered_after_max_deliveries() {
    let mut conn = redis().await;
    let stream = unique_stream("poison");
    let ids = produce(
        &mut conn,
        &stream,
        &[vec![("fail", b"".to_vec()), ("order_id", b"o-1".to_vec())], vec![("n", b"1".to_vec())]],
    )
    .await;
    let mut cfg = fast_config("chaos", &stream, "g", &["c1"]);
    cfg.settings.max_deliveries = 3;
    let run = HostRun::start(cfg);
    wait_until!(MINUTE, "the dead letter", dead_letters(&mut conn, &stream).await.len() == 1);
    wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;

    let dead = &dead_letters(&mut conn, &stream).await[0];
    let version = host::plugin_version(&std::fs::read(plugin("chaos")).unwrap());
    for (key, value) in [
        ("dlq:reason", "max deliveries exceeded"),
        ("dlq:stream", stream.as_str()),
        ("dlq:id", ids[0].as_str()),
        ("dlq:group", "g"),
        ("dlq:consumer", "c1"),
        ("dlq:deliveries", "3"),
        ("dlq:plugin", "chaos"),
        ("dlq:version", version.as_str()),
    ] {
        assert_eq!(dead.meta(key), Some(value), "{key}");
    }
    assert!(dead.meta("dlq:error").unwrap().contains("fail requested"));
    assert!(dead.meta("dlq:time-ms").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(dead.fields, vec![(b"fail".to_vec(), vec![]), (b"order_id".to_vec(), b"o-1".to_vec())]);
    let total = report.total();
    assert_eq!((total.handled, total.retried, total.acked, total.dead_lettered), (4, 3, 1, 1), "{total:?}");
}

/// `reject` is dead-lettered on its first delivery.
#[tokio::test(flavor = "multi_thread")]
async fn reject_is_dead_lettered_on_first_delivery() {
    let mut conn = redis().await;
    let stream = unique_stream("reject");
    produce(&mut conn, &stream, &[vec![("reject", b"".to_vec())]]).await;
    let run = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    wait_until!(MINUTE, "the dead letter", dead_letters(&mut conn, &stream).await.len() == 1);
    wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;
    let dead = &dead_letters(&mut conn, &stream).await[0];
    assert_eq!((dead.meta("dlq:reason"), dead.meta("dlq:deliveries")), (Some("rejected"), Some("1")));
    assert_eq!(report.total().handled, 1);
}

/// Pending entries whose payload was trimmed (XTRIM) become audit records in
/// the dead-letter stream — found by the reaper (XAUTOCLAIM's deleted ids)
/// and by a restarted consumer's start-up drain (nil entries) — and the PEL
/// ends empty.
#[tokio::test(flavor = "multi_thread")]
async fn trimmed_pending_entries_become_audit_records() {
    let mut conn = redis().await;
    let stream = unique_stream("trimmed");

    // Start-up path: c1 read three entries, then died; they were trimmed.
    let ids = produce(
        &mut conn,
        &stream,
        &[vec![("n", b"1".to_vec())], vec![("n", b"2".to_vec())], vec![("n", b"3".to_vec())]],
    )
    .await;
    let _: () = redis::cmd("XGROUP").arg(&["CREATE", &stream, "g", "0"]).query_async(&mut conn).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "c1", "STREAMS", &stream, ">"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: u64 = redis::cmd("XTRIM").arg(&[&stream, "MAXLEN", "0"]).query_async(&mut conn).await.unwrap();
    let mut cfg = fast_config("chaos", &stream, "g", &["c1"]);
    cfg.settings.min_idle = Duration::from_secs(60); // only the start-up drain can find them
    let run = HostRun::start(cfg);
    wait_until!(MINUTE, "three audit records", dead_letters(&mut conn, &stream).await.len() == 3);
    wait_drained(&mut conn, &stream, "g", 0).await;
    run.stop().await;
    let audited: Vec<String> =
        dead_letters(&mut conn, &stream).await.iter().map(|d| d.meta("dlq:id").unwrap().to_string()).collect();
    assert_eq!(audited, ids);

    // Reaper path: entries left pending by retries are trimmed; XAUTOCLAIM reports them.
    let more = produce(&mut conn, &stream, &[vec![("fail", b"".to_vec())], vec![("fail", b"".to_vec())]]).await;
    let run = HostRun::start(fast_config("chaos", &stream, "g", &["c2"]));
    wait_drained(&mut conn, &stream, "g", 2).await;
    let _: u64 = redis::cmd("XTRIM").arg(&[&stream, "MAXLEN", "0"]).query_async(&mut conn).await.unwrap();
    wait_until!(MINUTE, "five audit records", dead_letters(&mut conn, &stream).await.len() == 5);
    wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;
    let dead = dead_letters(&mut conn, &stream).await;
    for (record, id) in dead[3..].iter().zip(&more) {
        assert_eq!(record.meta("dlq:id"), Some(id.as_str()));
        assert_eq!(record.meta("dlq:reason"), Some("trimmed before processing"));
        // Empty when the reaper found it trimmed; with the payload when it
        // was in hand (redelivered) as the trim came: both are complete.
        let in_hand = vec![(b"fail".to_vec(), Vec::new())];
        assert!(record.fields.is_empty() || record.fields == in_hand, "{record:?}");
    }
    assert_eq!(report.total().trimmed, 2);
}

/// A retry with a delay hint longer than --min-idle-ms is not redelivered
/// before the delay has passed.
#[tokio::test(flavor = "multi_thread")]
async fn retry_delay_is_respected() {
    let mut conn = redis().await;
    let stream = unique_stream("delay");
    produce(&mut conn, &stream, &[vec![("fail", b"1500".to_vec())]]).await;
    let mut cfg = fast_config("chaos", &stream, "g", &["c1"]);
    cfg.settings.max_deliveries = 10;
    let run = HostRun::start(cfg);

    let deliveries = |rows: Vec<(String, String, u64)>| rows.first().map(|r| r.2).unwrap_or(0);
    wait_until!(MINUTE, "the first delivery", deliveries(pending(&mut conn, &stream, "g").await) == 1);
    let first = Instant::now();
    wait_until!(MINUTE, "the second delivery", deliveries(pending(&mut conn, &stream, "g").await) >= 2);
    let gap = first.elapsed();
    run.stop().await;
    // Polling every 20 ms can see the first delivery late, never early.
    assert!(gap >= Duration::from_millis(1450), "redelivered after {gap:?}, before the 1500 ms delay");
}

/// A handler running 3× --min-idle-ms (deadline above that) keeps its lease:
/// the peer consumer never steals and re-handles the entry.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_handler_is_not_stolen_by_a_peer() {
    let mut conn = redis().await;
    let stream = unique_stream("lease");
    produce(&mut conn, &stream, &[vec![("sleep_ms", b"900".to_vec())]]).await;
    let run = HostRun::start(fast_config("chaos", &stream, "g", &["a", "b"]));
    wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;
    let total = report.total();
    assert_eq!((total.handled, total.acked, total.claimed), (1, 1, 0), "{report:?}");
}

/// Graceful removal with handover: the leaving consumer's PEL is handed to the
/// live peer, the consumer is deleted, and the peer handles its entries.
#[tokio::test(flavor = "multi_thread")]
async fn handover_on_graceful_removal() {
    let mut conn = redis().await;
    let stream = unique_stream("handover");
    let entries: Vec<_> = (0..100).map(|_| vec![("sleep_ms", b"10".to_vec())]).collect();
    produce(&mut conn, &stream, &entries).await;

    let mut leaving = fast_config("chaos", &stream, "g", &["a"]);
    leaving.settings.count = 50;
    leaving.settings.handover = true;
    let leaving = HostRun::start(leaving);
    wait_until!(MINUTE, "a to hold entries", pending(&mut conn, &stream, "g").await.iter().any(|p| p.1 == "a"));
    let mut staying = fast_config("chaos", &stream, "g", &["b"]);
    staying.settings.count = 5;
    let staying = HostRun::start(staying);
    wait_until!(MINUTE, "b to join", consumer_names(&mut conn, &stream, "g").await.contains(&"b".to_string()));

    let gone = leaving.stop().await;
    assert!(!consumer_names(&mut conn, &stream, "g").await.contains(&"a".to_string()), "a was deleted");
    assert!(!pending(&mut conn, &stream, "g").await.iter().any(|p| p.1 == "a"), "a's PEL is empty");
    wait_drained(&mut conn, &stream, "g", 0).await;
    let stayed = staying.stop().await;

    let (a, b) = (gone.total(), stayed.total());
    assert!(a.acked < 100, "a left before finishing: {a:?}");
    assert_eq!(a.acked + b.acked, 100, "every entry acked exactly once: a {a:?}, b {b:?}");
    assert!(b.claimed > 0, "b took over a's entries: {b:?}");
}

/// Dead letters round trip: `host dlq list` shows them, `host dlq requeue`
/// moves them back (off the dead-letter stream, onto the origin) atomically,
/// and the host handles the requeued entry again; nothing is duplicated.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_requeue_round_trip() {
    let mut conn = redis().await;
    let stream = unique_stream("requeue");
    let dlq = format!("{stream}:dlq");
    produce(&mut conn, &stream, &[vec![("reject", b"".to_vec()), ("data", vec![0xff, 0x01])]]).await;
    let run = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    wait_until!(MINUTE, "the dead letter", xlen(&mut conn, &dlq).await == 1);
    run.stop().await;

    let cli = |args: &[&str]| {
        let out = Host::new(args).args(["--redis", redis_url()]).output();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let listing = cli(&["dlq", "list", "--stream", &stream]);
    assert!(listing.contains("reason: rejected") && listing.contains("data = 0xff01"), "{listing}");
    let dead_id = dead_letters(&mut conn, &stream).await[0].dead_id.clone();

    let out = cli(&["dlq", "requeue", "--stream", &stream, "--id", &dead_id]);
    assert!(out.contains("requeued 1 entries"), "{out}");
    assert_eq!(xlen(&mut conn, &dlq).await, 0, "off the dead-letter stream");
    assert_eq!(xlen(&mut conn, &stream).await, 2, "once more on the origin stream");

    let run = HostRun::start(fast_config("chaos", &stream, "g", &["c1"]));
    wait_until!(MINUTE, "the entry to be handled again", xlen(&mut conn, &dlq).await == 1);
    wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;
    assert_eq!(report.total().handled, 1, "only the requeued entry is handled: {report:?}");
    let again = &dead_letters(&mut conn, &stream).await[0];
    let (requeued_id, _) = newest(&mut conn, &stream).await;
    assert_eq!(again.meta("dlq:id"), Some(requeued_id.as_str()), "the requeued copy was handled");
    assert_eq!(again.fields, vec![(b"reject".to_vec(), vec![]), (b"data".to_vec(), vec![0xff, 0x01])]);
    let out = cli(&["dlq", "requeue", "--stream", &stream, "--all"]);
    assert!(out.ends_with(&format!("requeued 1 entries from {dlq}\n")), "{out}");
}

/// `host pending` shows the per-consumer summary and each entry's deliveries.
#[tokio::test(flavor = "multi_thread")]
async fn pending_command_lists_entries() {
    let mut conn = redis().await;
    let stream = unique_stream("pendingcmd");
    let ids = produce(&mut conn, &stream, &[vec![("fail", b"".to_vec())], vec![("n", b"1".to_vec())]]).await;
    let run = HostRun::start(config("chaos", &stream, "g", &["c1"]));
    wait_drained(&mut conn, &stream, "g", 1).await;
    run.stop().await;
    let out = Host::new(["pending", "--stream", &stream, "--group", "g", "--redis", redis_url()]).output();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 pending"), "{text}");
    let row = text.lines().find(|l| l.starts_with(&ids[0])).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(row.split_whitespace().nth(1), Some("c1"));
    assert_eq!(row.split_whitespace().last(), Some("1"));
}

/// With no faults, every entry is handled exactly once across two consumers.
#[tokio::test(flavor = "multi_thread")]
async fn clean_run_handles_every_entry_exactly_once() {
    let mut conn = redis().await;
    let stream = unique_stream("clean");
    let entries: Vec<_> = (0..3000).map(|i| vec![("n", i.to_string().into_bytes())]).collect();
    let ids = produce(&mut conn, &stream, &entries).await;
    let mut host = Host::run(&stream, "chaos", &["--consumers", "2", "--count", "50"]).start();
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.wait_log(MINUTE, "all handled lines", |log| handled_list(log).len() >= ids.len());
    let (status, _) = host.terminate();
    assert!(status.success());
    let mut handled = handled_list(&host.log);
    handled.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(handled, expected, "each entry handled exactly once");
}
