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

/// Connections cut while a backlog drains with read-ahead (full batches, the
/// acks of each batch sent in the same write as a later read): no entry is
/// lost. Acks a cut read carried are sent again; entries it had read are
/// claimed back once idle; in the end every entry is acked, none pending.
#[tokio::test(flavor = "multi_thread")]
async fn connections_cut_while_a_backlog_drains_lose_no_entry() {
    let server = PrivateRedis::start();
    let mut conn = server.connect().await;
    let stream = unique_stream("outage-backlog");
    let entries = 20_000;
    let batch: Vec<_> = (0..entries).map(order).collect();
    produce(&mut conn, &stream, &batch).await;
    let mut cfg = config("noop", &stream, "g", &["c1"]);
    cfg.redis_url = server.url.clone();
    cfg.settings.count = 100;
    cfg.settings.min_idle = std::time::Duration::from_millis(300);
    cfg.settings.reap_interval = std::time::Duration::from_millis(50);
    let run = HostRun::start(cfg);

    // Cut every connection but ours a few times while the backlog lasts,
    // once the host consumes (a cut during its start-up fails the start,
    // which is reported, and is not what this test is about).
    let limit = std::time::Duration::from_secs(60);
    let started = std::time::Instant::now();
    while group_info(&mut conn, &stream, "g").await.is_none() {
        assert!(started.elapsed() < limit, "the host never created its group");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut cuts = 0;
    while cuts < 5 {
        assert!(started.elapsed() < limit, "the backlog neither drained nor let a connection be cut in {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let info = group_info(&mut conn, &stream, "g").await;
        if info.as_ref().is_some_and(|i| i.lag == Some(0)) {
            break;
        }
        let killed: u64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query_async(&mut conn)
            .await
            .unwrap();
        cuts += u32::from(killed > 0);
    }
    assert!(cuts >= 1, "the backlog drained before any connection could be cut");
    wait_drained(&mut conn, &stream, "g", 0).await;

    let report = run.stop().await;
    let total = report.total();
    // An entry whose read was cut is handled again after its claim, and an
    // ack whose reply was lost is sent (and counted) again: at least once each.
    assert!(total.handled >= entries as u64 && total.acked >= entries as u64, "{report:?}");
    // Handled again only after a claim (the reaper taking back what a cut read had delivered).
    assert!(total.handled - entries as u64 <= total.claimed, "{report:?}");
}
