//! Redis trouble never ends a consumer and never loses an entry.

use crate::support::*;

/// Dropped connections (CLIENT KILL) and a vanished group (stream key
/// deleted) are survived: the consumer reconnects or re-creates its group and
/// every entry produced before and after is acked.
#[tokio::test(flavor = "multi_thread")]
async fn consumer_survives_dropped_connections_and_a_deleted_stream() {
    let server = PrivateRedis::start();
    let mut conn = server.connect().await;
    let stream = unique_stream("outage");
    let mut cfg = config("orders", &stream, "g", &["c1"]);
    cfg.redis_url = server.url.clone();
    let run = HostRun::start(cfg);

    let batch: Vec<_> = (0..50).map(order).collect();
    produce(&mut conn, &stream, &batch).await;
    wait_drained(&mut conn, &stream, "g", 0).await;

    // Every connection but ours is cut; the consumer must reconnect.
    let killed: u64 =
        redis::cmd("CLIENT").arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"]).query_async(&mut conn).await.unwrap();
    assert!(killed >= 1, "the host's connection should have been killed");
    produce(&mut conn, &stream, &batch).await;
    wait_drained(&mut conn, &stream, "g", 0).await;

    // The stream (and with it the group) disappears; new entries arrive.
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await.unwrap();
    produce(&mut conn, &stream, &batch[..20]).await;
    let info = wait_drained(&mut conn, &stream, "g", 0).await;
    assert_eq!(info.entries_read, Some(20));

    let report = run.stop().await;
    assert_eq!(report.total().acked, 120, "{report:?}");
}
