//! Plugin failures leave entries pending, and the host keeps going.

use crate::support::*;
use std::time::Duration;

/// retry / trap / endless-loop entries stay pending with delivery count 1, a
/// reject goes to the dead-letter stream; every other entry, including those
/// after each fault, is acked.
#[tokio::test(flavor = "multi_thread")]
async fn faulty_entries_stay_pending_and_the_host_keeps_going() {
    let mut conn = redis().await;
    let stream = unique_stream("chaos");
    let ok = || vec![("n", b"1".to_vec())];
    let entries = vec![
        ok(),
        vec![("fail", b"".to_vec())],
        ok(),
        vec![("reject", b"".to_vec())],
        ok(),
        vec![("trap", b"".to_vec())],
        ok(),
        vec![("spin", b"".to_vec())],
        ok(),
        vec![("sleep_ms", b"20".to_vec())],
        vec![("alloc_mb", b"16".to_vec())],
        vec![("fail", b"250".to_vec())],
        ok(),
    ];
    let ids = produce(&mut conn, &stream, &entries).await;
    let faulty: Vec<String> = [1, 5, 7, 11].iter().map(|&i| ids[i].clone()).collect();

    let mut cfg = config("chaos", &stream, "g", &["c1"]);
    cfg.call_deadline = Duration::from_millis(300);
    let run = HostRun::start(cfg);
    wait_drained(&mut conn, &stream, "g", faulty.len() as u64).await;
    let report = run.stop().await;

    let left = pending(&mut conn, &stream, "g").await;
    let expected: Vec<(String, String, u64)> = faulty.iter().map(|id| (id.clone(), "c1".to_string(), 1)).collect();
    assert_eq!(left, expected, "exactly the faulty entries stay pending, delivered once");
    let total = report.total();
    assert_eq!(total.acked, 8, "{total:?}");
    assert_eq!((total.retried, total.rejected, total.faulted), (2, 1, 2), "{total:?}");
}

/// Sandbox limits: a memory bomb over the cap, a stack overflow and an
/// oversized error text each fault only their entry (left pending, delivered
/// once), the instance is recycled and the next entries are handled.
#[tokio::test(flavor = "multi_thread")]
async fn limit_breakers_fault_only_their_entry() {
    let mut conn = redis().await;
    let stream = unique_stream("limits");
    let ok = || vec![("n", b"1".to_vec())];
    let entries = vec![
        vec![("alloc_mb", b"8".to_vec())],
        vec![("alloc_mb", b"64".to_vec())],
        ok(),
        vec![("recurse", b"10000000".to_vec())],
        ok(),
        vec![("big_error_kb", b"200".to_vec())],
        ok(),
    ];
    let ids = produce(&mut conn, &stream, &entries).await;
    let mut cfg = config("chaos", &stream, "g", &["c1"]);
    cfg.limits.max_memory_bytes = 32 << 20;
    let run = HostRun::start(cfg);
    wait_drained(&mut conn, &stream, "g", 3).await;
    let report = run.stop().await;

    let left: Vec<(String, String, u64)> = pending(&mut conn, &stream, "g").await;
    let expected: Vec<(String, String, u64)> =
        [1, 3, 5].iter().map(|&i| (ids[i].clone(), "c1".to_string(), 1)).collect();
    assert_eq!(left, expected);
    let total = report.total();
    assert_eq!((total.acked, total.faulted, total.dead_lettered), (4, 3, 0), "{total:?}");
}
