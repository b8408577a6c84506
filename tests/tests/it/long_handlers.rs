//! Long handlers: a call that keeps calling `progress.extend` runs past its
//! deadline (up to `--max-call-ms`) and its entry is not reclaimed by a peer
//! meanwhile; one that stops saying so is still stopped at its deadline, and
//! one that says so for ever is stopped at the longest time.

use crate::support::*;
use std::collections::HashMap;

/// Two processes of one group (each reaping the other's idle entries every
/// 100 ms after 1 s), call deadline 500 ms, at most 5 s per call, one
/// delivery allowed (a fault or a reclaim dead-letters at once):
/// - two entries working 3 s (6× the deadline, 3× --min-idle-ms) while
///   calling `progress.extend` are handled once each, with no dead letter;
/// - an entry sleeping 3 s without a word is stopped at 500 ms;
/// - an entry calling `extend` for ever is stopped at 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_keeps_a_long_call_alive_and_a_stuck_one_is_still_stopped() {
    let mut conn = redis().await;
    let stream = unique_stream("long");
    let ids = produce(
        &mut conn,
        &stream,
        &[
            vec![("work_ms", b"3000".to_vec())],
            vec![("wasi_sleep_ms", b"3000".to_vec())],
            vec![("work_ms", b"3000".to_vec())],
            vec![("progress_forever", b"".to_vec())],
        ],
    )
    .await;
    let timing = ["--call-deadline-ms", "500", "--max-call-ms", "5000", "--min-idle-ms", "1000"];
    let flags = [&timing[..], &["--reap-interval-ms", "100", "--count", "1", "--max-deliveries", "1"]].concat();
    let mut peers = [Host::run(&stream, "chaos", &flags).start(), Host::run(&stream, "chaos", &flags).start()];
    wait_drained(&mut conn, &stream, "g", 0).await;
    let mut log = Vec::new();
    for peer in &mut peers {
        let (status, _) = peer.terminate();
        assert!(status.success());
        log.extend(peer.log.clone());
    }

    let mut handled: HashMap<String, usize> = HashMap::new();
    for id in handled_list(&log) {
        *handled.entry(id).or_default() += 1;
    }
    assert_eq!(handled.get(&ids[0]), Some(&1), "the first long entry, once: {handled:?}");
    assert_eq!(handled.get(&ids[2]), Some(&1), "the second long entry, once: {handled:?}");
    assert_eq!(handled.len(), 2, "only the long entries end ok: {handled:?}");
    // `extend` gives the call the deadline again from the moment it is called.
    let left: Vec<u64> =
        log.iter().filter_map(|l| l.split("progress: ").nth(1)?.split(" ms left").next()?.parse().ok()).collect();
    assert!(left.len() >= 3 && left.iter().all(|&ms| (400..=500).contains(&ms)), "{left:?}");

    let letters = dead_letters(&mut conn, &stream).await;
    let by_id: HashMap<_, _> = letters.iter().map(|d| (d.meta("dlq:id").unwrap().to_string(), d)).collect();
    assert_eq!(letters.len(), 2, "only the stuck and the endless entries: {letters:?}");
    let stuck = by_id[&ids[1]].meta("dlq:error").unwrap();
    assert!(stuck.contains("exceeded its deadline of 500 ms in a blocking host call"), "{stuck}");
    assert!(!stuck.contains("progress"), "{stuck}");
    let endless = by_id[&ids[3]].meta("dlq:error").unwrap();
    assert!(endless.contains("exceeded its longest allowed time of 5000 ms (max_call_ms)"), "{endless}");
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
}

#[test]
fn a_longest_call_below_the_deadline_is_refused() {
    let out = Host::run("s", "chaos", &["--call-deadline-ms", "5000", "--max-call-ms", "1000"]).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("invalid --max-call-ms: 1000 is below call_deadline_ms (5000)"), "{stderr}");
}
