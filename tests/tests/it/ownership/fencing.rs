//! A worker stalled past its lease (SIGSTOP) while its plugin calls are in
//! flight: another worker takes its streams over; woken up (SIGCONT), the
//! stalled one logs that it was disowned, and Redis refuses its late writes
//! — proved by counting: the entry it had in hand is acked by the new
//! owner, on a later delivery, and nothing it wrote late landed (a late
//! `seq` write would make the new owner's redelivery a step back: a dead
//! letter).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_is_disowned_and_redis_refuses_its_late_writes() {
    let redis = PrivateRedis::start();
    let mut conn = redis.connect().await;
    let (streams, per_stream) = (4, 40);
    let names: Vec<String> = (0..streams).map(|i| data_stream("stall", i)).collect();
    for stream in &names {
        fill(&mut conn, stream, per_stream, &[("wasi_sleep_ms", "150")], &[("lbs-end", "1")]).await;
    }
    // The first worker alone, so it owns every stream; calls in flight on all of them.
    let mut stalled = worker(&redis.url, "w1", &["--parallel", "4"]);
    for stream in &names {
        assign_raw(&mut conn, stream, "{}").await;
    }
    stalled.wait_log(Duration::from_secs(30), "w1 handling every stream", |log| {
        let seqs = seq_lines(log);
        names.iter().all(|s| seqs.iter().filter(|(stream, ..)| stream == s).count() >= 3)
    });
    let mut taker = worker(&redis.url, "w2", &["--parallel", "4"]);
    taker.wait_log(Duration::from_secs(20), "w2 up", |log| log.iter().any(|l| l.contains("owning streams")));
    // SAFETY: stopping and continuing the worker this test started.
    unsafe { libc::kill(stalled.child.id() as i32, libc::SIGSTOP) };
    let stopped = Instant::now();
    stalled.collect();
    let before_stop = seq_lines(&stalled.log);
    taker.wait_log(Duration::from_secs(20), "w2 taking every stream over", |log| {
        names
            .iter()
            .all(|s| log.iter().any(|l| l.contains("took over the stream") && field(l, "stream").as_deref() == Some(s)))
    });
    let takeover = stopped.elapsed();
    // Let the new owner get ahead before the stalled one wakes up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    unsafe { libc::kill(stalled.child.id() as i32, libc::SIGCONT) };
    stalled.wait_log(Duration::from_secs(20), "w1 disowned", |log| {
        names.iter().all(|s| log.iter().any(|l| l.contains("disowned") && l.contains(s.as_str())))
    });
    wait_assignments_done(&mut conn, streams as u64, Duration::from_secs(60)).await;

    stalled.collect();
    taker.collect();
    let refused: Vec<&String> = stalled.log.iter().filter(|l| l.contains("disowned: Redis refused")).collect();
    // The entries the stalled worker had in hand: its last `seq` line per
    // stream before the stop (handled by the plugin; their acks came late).
    let mut in_hand: BTreeMap<&str, u64> = BTreeMap::new();
    for (stream, n, _) in &before_stop {
        in_hand.insert(stream.as_str(), *n);
    }
    let after: Vec<(String, u64, u32)> = seq_lines(&taker.log);
    let mut redelivered = 0;
    for (stream, n) in &in_hand {
        // The new owner handled that entry again (or an earlier one: acks are
        // batched, so the stalled worker's last acked entry may be older).
        let first = after.iter().filter(|(s, ..)| s == stream).map(|(_, n, _)| *n).min();
        assert!(first.is_some_and(|f| f <= *n), "{stream}: the new owner starts at {first:?}, after {n} in hand");
        if after.iter().any(|(s, m, d)| s == stream && m == n && *d >= 2) {
            redelivered += 1;
        }
    }
    let dead = service_dead_letters(&mut conn).await;
    assert!(dead.is_empty(), "a late write landed (step back) or an entry was lost: {dead:?}");
    let seqs = last_seq(&mut conn, &names).await;
    assert!(seqs.iter().all(|s| *s == Some(per_stream as u64)), "every entry acked: {seqs:?}");
    assert!(leases_left(&mut conn).await.is_empty(), "leases left behind");
    assert!(!refused.is_empty(), "the stalled worker's late writes were not refused by Redis: {:#?}", stalled.log);
    println!(
        "SIGSTOP: every stream taken over {} ms after the stop; {} late writes refused by Redis; {} of {} in-hand \
         entries redelivered to the new owner",
        takeover.as_millis(),
        refused.len(),
        redelivered,
        in_hand.len()
    );
    assert!(redelivered >= 1, "no in-hand entry was redelivered to the new owner");
    // Each disowning is a failure event too.
    let rows: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("host:events").arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let disowned = rows.iter().filter(|(_, f)| f.iter().any(|(k, v)| k == "kind" && v == "disowned")).count();
    assert!(disowned >= streams, "{disowned} disowned events for {streams} streams");
    stalled.terminate();
    taker.terminate();
}
