//! How single streams end and what the tools show: a deleted data stream
//! finishes its assignment; a malformed assignment is dead-lettered; a
//! plugin cannot forge a lease through its effects; the cap leaves
//! assignments to other workers; the worker id comes from `POD_NAME`;
//! `host owners` lists owner, lease and progress.

use super::*;
use crate::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_finishes_and_a_bad_assignment_is_dead_lettered() {
    let redis = PrivateRedis::start();
    let mut conn = redis.connect().await;
    let stream = data_stream("deleted", 0);
    fill(&mut conn, &stream, 3, &[], &[]).await;
    let mut w = worker(&redis.url, "w1", &[]);
    assign_raw(&mut conn, &stream, r#"{"user":"ann"}"#).await;
    let _: String = redis::cmd("XADD")
        .arg(ASSIGNMENTS)
        .arg("*")
        .arg("lbs-input")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    w.wait_log(Duration::from_secs(20), "3 entries handled", |log| seq_lines(log).len() == 3);
    // The stream is idle, owned; `host owners` shows it.
    let out = Host::new(["owners", "--assignments", ASSIGNMENTS, "--redis", &redis.url]).output();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1 assignments in progress") && text.contains(&stream) && text.contains("w1"), "{text}");
    let out = Host::new(["owners", "--assignments", ASSIGNMENTS, "--redis", &redis.url, "--json"]).output();
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON row");
    assert_eq!((row["owner"].as_str(), row["pending"].as_u64(), row["lag"].as_u64()), (Some("w1"), Some(0), Some(0)));
    assert!(row["lease_ms_left"].as_u64().is_some_and(|ms| ms <= LEASE_TTL_MS), "{row}");
    let () = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await.unwrap();
    wait_assignments_done(&mut conn, 2, Duration::from_secs(20)).await;
    w.wait_log(Duration::from_secs(5), "finished as deleted", |log| {
        log.iter().any(|l| l.contains("stream finished") && l.contains("deleted"))
    });
    assert!(leases_left(&mut conn).await.is_empty());
    let dead = service_dead_letters(&mut conn).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].meta("dlq:error").unwrap_or_default().contains("not JSON"), "{:?}", dead[0].meta);
    // It is a failure event too, like any dead letter.
    wait_until!(Duration::from_secs(10), "a dead-letter event", dead_letter_event(&mut conn).await.is_some());
    let event = dead_letter_event(&mut conn).await.expect("seen above");
    assert_eq!((event["stream"].as_str(), event["reason"].as_str()), (ASSIGNMENTS, "rejected"), "{event:?}");
    assert!(event["error"].contains("not JSON") && event["dead-letter"].ends_with(":dlq"), "{event:?}");
    w.terminate();
}

/// The first `dead-letter` event of `host:events`, if any.
async fn dead_letter_event(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Option<std::collections::HashMap<String, String>> {
    let events: Vec<(String, std::collections::HashMap<String, String>)> =
        redis::cmd("XRANGE").arg("host:events").arg("-").arg("+").query_async(conn).await.unwrap();
    events.into_iter().map(|(_, e)| e).find(|e| e["kind"] == "dead-letter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_write_its_streams_lease_through_effects() {
    let redis = PrivateRedis::start();
    let mut conn = redis.connect().await;
    let stream = data_stream("forge", 0);
    // Its own lease, and another stream's.
    for lease in [format!("{{{stream}}}:owner"), "{another:session}:owner".to_string()] {
        let _: String =
            redis::cmd("XADD").arg(&stream).arg("*").arg("set").arg(&lease).query_async(&mut conn).await.unwrap();
    }
    fill(&mut conn, &stream, 1, &[], &[("lbs-end", "1")]).await;
    // Granted every key: the fence itself must refuse.
    let mut w = worker(&redis.url, "w1", &["--grant-key", "*", "--max-deliveries", "2"]);
    assign_raw(&mut conn, &stream, "{}").await;
    wait_assignments_done(&mut conn, 1, Duration::from_secs(20)).await;
    let dead = service_dead_letters(&mut conn).await;
    assert_eq!(dead.len(), 2, "the forging entries are dead-lettered: {dead:?}");
    for d in &dead {
        assert!(d.meta("dlq:error").unwrap_or_default().contains("a lease key (…:owner)"), "{:?}", d.meta);
    }
    let forged: Option<String> = redis::cmd("GET").arg("{another:session}:owner").query_async(&mut conn).await.unwrap();
    assert_eq!(forged, None, "no lease forged");
    assert_eq!(last_seq(&mut conn, std::slice::from_ref(&stream)).await, [Some(1)], "the entry after it went on");
    assert!(leases_left(&mut conn).await.is_empty());
    w.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_leaves_streams_to_others_and_pod_name_names_the_worker() {
    let redis = PrivateRedis::start();
    let mut conn = redis.connect().await;
    let streams = 8;
    let names: Vec<String> = (0..streams).map(|i| data_stream("cap", i)).collect();
    for stream in &names {
        fill(&mut conn, stream, 10, &[("wasi_sleep_ms", "50")], &[("lbs-end", "1")]).await;
    }
    let chaos = plugin("chaos");
    let mut capped = Host::new(["run", "--assignments", ASSIGNMENTS, "--plugin", chaos.to_str().unwrap()])
        .args(["--redis", &redis.url, "--max-owned", "2", "--heartbeat-ms", "300", "--lease-ttl-ms", "1000"])
        .args(["--grant-key", "*:seq"])
        .logging()
        .env("POD_NAME", "pod-7")
        .start();
    capped.wait_log(Duration::from_secs(20), "pod-7 up", |log| log.iter().any(|l| l.contains("worker=pod-7")));
    for stream in &names {
        assign_raw(&mut conn, stream, "{}").await;
    }
    let mut other = worker(&redis.url, "w2", &[]);
    let mut most = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let out = Host::new(["owners", "--assignments", ASSIGNMENTS, "--redis", &redis.url, "--json"]).output();
        let rows: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        most = most.max(rows.iter().filter(|r| r["owner"] == "pod-7").count());
        if rows.is_empty() && xlen(&mut conn, ASSIGNMENTS).await == streams as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_assignments_done(&mut conn, streams as u64, Duration::from_secs(10)).await;
    assert!((1..=2).contains(&most), "pod-7 owned {most} streams at once, its cap is 2");
    other.collect();
    assert!(!owned_in(&other.log).is_empty(), "the other worker took what the capped one left");
    let seqs = last_seq(&mut conn, &names).await;
    assert!(seqs.iter().all(|s| *s == Some(10)), "{seqs:?}");
    capped.terminate();
    other.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_an_old_lease_early_assignments_host_keys_and_worn_out_entries() {
    let redis = PrivateRedis::start();
    let mut conn = redis.connect().await;
    // An entry delivered more often than allowed already (its handler kept
    // crashing its workers): dead-lettered without calling the plugin, which
    // would trap.
    let worn = data_stream("edges", 1);
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&worn)
        .arg(SERVICE)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let id: String = redis::cmd("XADD").arg(&worn).arg("*").arg("trap").arg("1").query_async(&mut conn).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(SERVICE)
        .arg("gone")
        .arg("STREAMS")
        .arg(&worn)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..3 {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&worn)
            .arg(SERVICE)
            .arg("gone")
            .arg(0)
            .arg(&id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    fill(&mut conn, &worn, 2, &[], &[("lbs-end", "1")]).await;
    // An assignment read by a worker that died before it even adopted the
    // stream, which does not exist yet: taken over, made and waited on (not
    // taken for a deleted stream).
    let ghost = data_stream("edges", 3);
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(ASSIGNMENTS)
        .arg(SERVICE)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    assign_raw(&mut conn, &ghost, "{}").await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(SERVICE)
        .arg("ghost")
        .arg("STREAMS")
        .arg(ASSIGNMENTS)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut w = worker(&redis.url, "w1", &["--max-deliveries", "3"]);
    w.wait_log(Duration::from_secs(30), "w1 up", |log| log.iter().any(|l| l.contains("owning streams")));
    // A lease left by an earlier run of this very worker id: not this run's,
    // so it waits for it to expire and then takes the stream over.
    let old = data_stream("edges", 0);
    let () = redis::cmd("SET")
        .arg(format!("{{{old}}}:owner"))
        .arg("w1@0000000000000000")
        .arg("PX")
        .arg(1500)
        .query_async(&mut conn)
        .await
        .unwrap();
    fill(&mut conn, &old, 3, &[], &[("lbs-end", "1")]).await;
    assign_raw(&mut conn, &old, "{}").await;
    assign_raw(&mut conn, &worn, "{}").await;
    // Assigned before its first entry: waited for, not finished at once.
    let early = data_stream("edges", 2);
    assign_raw(&mut conn, &early, "{}").await;
    // Naming the host's own keys, or a key that is not a stream: refused.
    assign_raw(&mut conn, ASSIGNMENTS, "{}").await;
    let () = redis::cmd("SET").arg("edges:string").arg("x").query_async(&mut conn).await.unwrap();
    assign_raw(&mut conn, "edges:string", "{}").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fill(&mut conn, &early, 4, &[], &[("lbs-end", "1")]).await;
    fill(&mut conn, &ghost, 5, &[], &[("lbs-end", "1")]).await;
    wait_assignments_done(&mut conn, 6, Duration::from_secs(20)).await;
    // A second assignment of a stream that ended: finished at once.
    assign_raw(&mut conn, &old, "{}").await;
    wait_assignments_done(&mut conn, 7, Duration::from_secs(20)).await;
    w.collect();
    let line = |what: &str| w.log.iter().any(|l| l.contains(what) && l.contains(old.as_str()));
    assert!(line("stream owned by another worker") && line("took over the stream"), "{:#?}", w.log);
    let seqs = last_seq(&mut conn, &[old.clone(), worn.clone(), early.clone(), ghost.clone()]).await;
    assert_eq!(seqs, [Some(3), Some(2), Some(4), Some(5)]);
    let dead = service_dead_letters(&mut conn).await;
    let reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| (d.meta("dlq:reason").unwrap_or_default(), d.meta("dlq:error").unwrap_or_default()))
        .collect();
    assert_eq!(dead.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|(_, e)| e.contains("holds a string, not a stream")), "{reasons:?}");
    assert!(
        reasons.iter().any(|(r, e)| *r == "max deliveries exceeded" && e.contains("last error unknown")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|(_, e)| e.contains("names the assignment stream itself")), "{reasons:?}");
    assert!(!w.log.iter().any(|l| l.contains("trap")), "the worn-out entry reached the plugin");
    assert!(leases_left(&mut conn).await.is_empty());
    w.terminate();
}
