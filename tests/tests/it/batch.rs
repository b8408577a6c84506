//! Plugins of world `batch-consumer`: one `handle-batch` call per read, each
//! verdict landing on its own entry, and a faulted batch re-run one entry per
//! call so only the entry at fault is faulted. Counts prove nothing is lost.

use crate::support::*;
use std::time::Duration;

/// 40 entries in one batch: the retry and the trap stay pending (delivered
/// once), the reject is dead-lettered, the entry that makes the plugin return
/// a short list is faulted on its own, and the other 36 are acked, each
/// handled at least once (the ones of the faulted batch twice).
#[tokio::test(flavor = "multi_thread")]
async fn batch_verdicts_land_on_their_entries_and_a_fault_is_isolated() {
    let mut conn = redis().await;
    let stream = unique_stream("batch");
    let mut entries: Vec<Vec<(&str, Vec<u8>)>> = (0..40).map(|i| vec![("n", i.to_string().into_bytes())]).collect();
    let (fail, reject, trap, short) = (3, 7, 12, 30);
    entries[fail] = vec![("fail", b"".to_vec())];
    entries[reject] = vec![("reject", b"".to_vec())];
    entries[trap] = vec![("trap", b"".to_vec())];
    entries[short] = vec![("short", b"".to_vec())];
    let ids = produce(&mut conn, &stream, &entries).await;

    let mut host = Host::run(&stream, "chaos-batch", &["--consumer", "c1"]).start();
    wait_drained(&mut conn, &stream, "g", 3).await;
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}: {:#?}", host.log);

    let left = pending(&mut conn, &stream, "g").await;
    let expected: Vec<(String, String, u64)> =
        [fail, trap, short].iter().map(|&i| (ids[i].clone(), "c1".to_string(), 1)).collect();
    assert_eq!(left, expected, "exactly the retry, the trap and the short list stay pending, delivered once");
    let dead = dead_letters(&mut conn, &stream).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].meta("dlq:id"), Some(ids[reject].as_str()), "{:?}", dead[0]);
    assert!(dead[0].meta("dlq:error").unwrap().contains("chaos-batch: reject requested"), "{:?}", dead[0]);

    // The first call took all 40 entries; after the trap, one entry per call.
    assert!(host.log.iter().any(|l| l.contains("batch of 40 for c1")), "{:#?}", host.log);
    assert!(host.log.iter().any(|l| l.contains("a batch of 40 faulted")), "{:#?}", host.log);
    let handled = handled_list(&host.log);
    let faulty = [fail, reject, trap, short].map(|i| ids[i].clone());
    for (i, id) in ids.iter().enumerate() {
        let times = handled.iter().filter(|h| *h == id).count();
        if faulty.contains(id) {
            assert_eq!(times, 0, "entry {i} ({id}) must not be handled Ok");
        } else {
            assert!((1..=2).contains(&times), "entry {i} ({id}) handled {times} times");
        }
    }
}

/// Batches stay within COUNT, and a batch plugin drains a longer stream in
/// order with every entry acked exactly once when nothing faults.
#[tokio::test(flavor = "multi_thread")]
async fn batch_plugin_drains_in_batches_of_count() {
    let mut conn = redis().await;
    let stream = unique_stream("batch-count");
    let entries: Vec<Vec<(&str, Vec<u8>)>> = (0..250).map(order).collect();
    let ids = produce(&mut conn, &stream, &entries).await;
    let mut host = Host::run(&stream, "chaos-batch", &["--consumer", "c1", "--count", "100"]).start();
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.wait_log(Duration::from_secs(10), "every entry handled", |log| handled_list(log).len() >= ids.len());
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(handled_list(&host.log), ids, "each entry handled once, in stream order");
    let sizes: Vec<usize> =
        host.log.iter().filter_map(|l| l.split("batch of ").nth(1)?.split_whitespace().next()?.parse().ok()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 250, "{sizes:?}");
    assert!(sizes.iter().all(|&n| (1..=100).contains(&n)), "{sizes:?}");
}
