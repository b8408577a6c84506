//! Entries flow from Redis through a plugin and are acked.

use crate::support::*;
use std::time::Instant;

/// 1,000 valid orders through the orders plugin: all acked, nothing pending, lag 0.
#[tokio::test(flavor = "multi_thread")]
async fn thousand_orders_are_all_handled_and_acked() {
    let mut conn = redis().await;
    let stream = unique_stream("thousand");
    let entries: Vec<_> = (0..1000).map(order).collect();
    let run = HostRun::start(config("orders", &stream, "g", &["c1"]));
    // Once the (empty) stream is drained the plugin is compiled and the consumer reading.
    wait_drained(&mut conn, &stream, "g", 0).await;

    let start = Instant::now();
    produce(&mut conn, &stream, &entries).await;
    let info = wait_drained(&mut conn, &stream, "g", 0).await;
    let elapsed = start.elapsed();
    let report = run.stop().await;

    // A figure for the record, not an assertion: timing belongs in benchmarks.
    eprintln!("1,000 entries produced and handled in {elapsed:?}: {:.0} entries/s", 1000.0 / elapsed.as_secs_f64());
    assert_eq!(info.entries_read, Some(1000));
    assert_eq!(report.total().acked, 1000, "{report:?}");
    assert_eq!(report.total().handled, 1000);
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
}

/// Two consumers of one group split the entries; together they ack each exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn two_consumers_split_the_work() {
    let mut conn = redis().await;
    let stream = unique_stream("split");
    // Slow entries (2 ms each), small batches: both consumers get a share.
    let entries: Vec<_> = (0..200).map(|_| vec![("sleep_ms", b"2".to_vec())]).collect();
    produce(&mut conn, &stream, &entries).await;

    let mut cfg = config("chaos", &stream, "g", &["a", "b"]);
    cfg.settings.count = 5;
    let run = HostRun::start(cfg);
    wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;

    let acked: Vec<u64> = report.consumers.iter().map(|(_, s)| s.acked).collect();
    assert_eq!(acked.iter().sum::<u64>(), 200, "{report:?}");
    assert!(acked.iter().all(|&n| n > 0), "each consumer should get work: {report:?}");
}

/// Two groups on one stream each see (and ack) every entry.
#[tokio::test(flavor = "multi_thread")]
async fn two_groups_each_see_every_entry() {
    let mut conn = redis().await;
    let stream = unique_stream("groups");
    let entries: Vec<_> = (0..300).map(order).collect();
    produce(&mut conn, &stream, &entries).await;

    let first = HostRun::start(config("orders", &stream, "notifications", &["n1"]));
    let second = HostRun::start(config("chaos", &stream, "analytics", &["a1"]));
    for group in ["notifications", "analytics"] {
        let info = wait_drained(&mut conn, &stream, group, 0).await;
        assert_eq!(info.entries_read, Some(300), "{group}");
    }
    assert_eq!(first.stop().await.total().acked, 300);
    assert_eq!(second.stop().await.total().acked, 300);
}

/// A non-UTF-8 value reaches the plugin byte for byte (the plugin compares a
/// hex dump); a mismatching expectation proves the check can fail (rejected).
#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_value_arrives_byte_exact() {
    let mut conn = redis().await;
    let stream = unique_stream("binary");
    let data: Vec<u8> = vec![0xff, 0xfe, 0x00, 0x80, b'\n', 0xc3, 0x28, 0x00, 0x7f];
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let ids = produce(
        &mut conn,
        &stream,
        &[
            vec![("data", data.clone()), ("expect_hex", hex.into_bytes())],
            vec![("data", data), ("expect_hex", b"ff".to_vec())],
        ],
    )
    .await;

    let run = HostRun::start(config("chaos", &stream, "g", &["c1"]));
    wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;

    assert_eq!((report.total().acked, report.total().rejected), (1, 1));
    let dead = dead_letters(&mut conn, &stream).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].meta("dlq:id"), Some(ids[1].as_str()), "only the mismatching entry is rejected");
}

/// A Redis that wants a user and password, with the stream in database 3:
/// every connection of the host (the consumers' readers too) logs in and
/// selects the database the URL names. All 300 entries acked there, nothing
/// pending, and nothing written to database 0.
#[tokio::test(flavor = "multi_thread")]
async fn consumes_with_a_user_a_password_and_a_database_number() {
    let server = PrivateRedis::start();
    let mut admin = server.connect().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "reader", "on", ">s3cret", "~*", "&*", "+@all"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG").arg(&["SET", "requirepass", "adm1n"]).query_async(&mut admin).await.unwrap();
    let url = format!("{}/3", server.url.replace("redis://", "redis://reader:s3cret@"));
    let mut conn = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stream = unique_stream("auth-db");
    produce(&mut conn, &stream, &(0..300).map(order).collect::<Vec<_>>()).await;

    let mut cfg = config("orders", &stream, "g", &["c1", "c2"]);
    cfg.redis_url = url.clone();
    cfg.settings.count = 50;
    let run = HostRun::start(cfg);
    let info = wait_drained(&mut conn, &stream, "g", 0).await;
    let report = run.stop().await;

    assert_eq!(info.entries_read, Some(300));
    assert_eq!(report.total().acked, 300, "{report:?}");
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
    let db0 = server.url.replace("redis://", "redis://reader:s3cret@");
    let mut db0 = redis::Client::open(db0.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    assert_eq!(xlen(&mut db0, &stream).await, 0, "nothing may land in database 0");
}
