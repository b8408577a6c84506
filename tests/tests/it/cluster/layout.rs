//! Key layouts that would put a dead letter (or an effect) in another slot
//! than its stream are refused at start, naming the keys and the fix; the
//! default ones are moved into the stream's slot.

use super::*;

#[test]
fn a_dead_letter_stream_in_another_slot_is_refused_at_start() {
    let cluster = LocalCluster::start();
    let url = cluster.url();
    let chaos = plugin("chaos");
    let run = |extra: &[&str]| {
        Host::new(["run", "--plugin", chaos.to_str().unwrap(), "--group", "g", "--redis", &url])
            .args(extra)
            .logging()
            .output()
    };
    let refused = run(&["--stream", "orders", "--dead-letter", "failed"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("dead-letter stream \"failed\" must share the hash slot of stream \"orders\"")
            && err.contains(&format!("slot {}", host::slot("failed")))
            && err.contains("\"{orders}:failed\""),
        "the error names the keys, their slots and a fix: {err}"
    );
    let granted = run(&["--stream", "orders:{7}", "--grant-key", "totals"]);
    let err = String::from_utf8_lossy(&granted.stderr);
    assert!(!granted.status.success() && err.contains("granted key \"totals\" must share the hash slot"), "{err}");
    let tagged_base = run(&["--stream", "{orders}", "--partitions", "4"]);
    let err = String::from_utf8_lossy(&tagged_base.stderr);
    assert!(!tagged_base.status.success() && err.contains("invalid --partitions"), "{err}");
    // Stream ownership mode needs one server: refused, saying so.
    let owned = Host::new(["run", "--plugin", chaos.to_str().unwrap(), "--assignments", "sessions-input"])
        .args(["--redis", &url])
        .logging()
        .output();
    let err = String::from_utf8_lossy(&owned.stderr);
    assert!(!owned.status.success() && err.contains("does not run on a Redis Cluster"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_dead_letter_stream_shares_the_slot_and_effects_outside_it_are_refused() {
    let cluster = LocalCluster::start();
    let mut conn = cluster.connect().await;
    let url = cluster.url();
    // An untagged stream: its default dead letters go to {orders}:dlq.
    let _: String =
        redis::cmd("XADD").arg("orders").arg("*").arg("reject").arg("1").query_async(&mut conn).await.unwrap();
    // A tagged one whose plugin writes inside and outside its slot.
    let _: String = redis::cmd("XADD")
        .arg("shop:{7}")
        .arg("*")
        .arg("incr")
        .arg("shop:{7}:count")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String =
        redis::cmd("XADD").arg("shop:{7}").arg("*").arg("incr").arg("elsewhere").query_async(&mut conn).await.unwrap();
    let chaos = plugin("chaos");
    let mut first =
        Host::new(["run", "--plugin", chaos.to_str().unwrap(), "--group", "g", "--redis", &url, "--stream", "orders"])
            .logging()
            .start();
    let mut second = Host::new(["run", "--plugin", chaos.to_str().unwrap(), "--group", "g", "--redis", &url])
        .args(["--stream", "shop:{7}", "--grant-key", "*", "--max-deliveries", "1"])
        .logging()
        .start();
    // The commit of an entry's effects lands after its batch is settled,
    // so possibly after the other entry's dead letter: wait for all three.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dead: usize = redis::cmd("XLEN").arg("{orders}:dlq").query_async(&mut conn).await.unwrap();
        let shop: usize = redis::cmd("XLEN").arg("shop:{7}:dlq").query_async(&mut conn).await.unwrap();
        let count: Option<i64> = redis::cmd("GET").arg("shop:{7}:count").query_async(&mut conn).await.unwrap();
        if (dead, shop, count) == (1, 1, Some(1)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dead letters {dead} and {shop}, the in-slot effect's count {count:?}, within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records: Vec<(String, std::collections::BTreeMap<String, String>)> =
        redis::cmd("XRANGE").arg("shop:{7}:dlq").arg("-").arg("+").query_async(&mut conn).await.unwrap();
    assert!(records[0].1["dlq:error"].contains("on a Redis Cluster an effect must write in the slot"), "{records:?}");
    first.terminate();
    second.terminate();
    // A version tried on the dead letters finds them where `host run` wrote them.
    let tried = Host::new(["replay", "--stream", "orders", "--dlq", "--redis", &url])
        .args(["--through", chaos.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output();
    let said = String::from_utf8_lossy(&tried.stdout);
    assert!(tried.status.success(), "{said}\n{}", String::from_utf8_lossy(&tried.stderr));
    assert!(said.contains("on 1 entries of orders: 0 ok, 0 retry, 1 reject, 0 fault"), "{said}");
}

/// A server that refuses `INFO` (an ACL without `@dangerous`) is taken for
/// one server, as before clusters were asked about: nothing breaks.
#[test]
fn a_server_refusing_info_is_taken_for_one_server() {
    let redis = PrivateRedis::start();
    let mut admin = redis::Client::open(redis.url.as_str()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("limited")
        .arg("on")
        .arg(">secret")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-@dangerous")
        .query(&mut admin)
        .unwrap();
    let _: String = redis::cmd("XADD").arg("s").arg("*").arg("f").arg("v").query(&mut admin).unwrap();
    let url = redis.url.replace("redis://", "redis://limited:secret@");
    let info = Host::new(["info", "--stream", "s", "--redis", &url]).logging().output();
    assert!(info.status.success(), "{info:?}");
    assert!(String::from_utf8_lossy(&info.stdout).contains("stream s: 1 entries"), "{info:?}");
}

/// `redis+cluster://A,B,…` lists nodes to start from: a one-shot command
/// works while the first one named is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_url_may_list_nodes_and_a_dead_first_one_is_skipped() {
    let mut cluster = LocalCluster::start();
    let mut conn = cluster.connect().await;
    let _: String = redis::cmd("XADD").arg("orders").arg("*").arg("f").arg("v").query_async(&mut conn).await.unwrap();
    // A replica: the cluster stays whole without it.
    let replica = cluster
        .nodes
        .iter()
        .find(|n| {
            let info: String = redis::cmd("INFO").arg("replication").query(&mut n.conn()).unwrap();
            info.contains("role:slave")
        })
        .unwrap()
        .port;
    cluster.kill(replica);
    let live = cluster.nodes.iter().find(|n| n.alive()).unwrap().addr();
    let url = format!("redis+cluster://127.0.0.1:{replica},{live}");
    let info = Host::new(["info", "--stream", "orders", "--redis", &url]).logging().output();
    assert!(String::from_utf8_lossy(&info.stdout).contains("stream orders: 1 entries"), "{info:?}");
    let alone = Host::new(["info", "--stream", "orders", "--redis", &format!("redis+cluster://127.0.0.1:{replica}")])
        .logging()
        .output();
    assert!(!alone.status.success(), "the dead node alone does not answer: {alone:?}");
    let bad = Host::new(["info", "--stream", "orders", "--redis", &format!("redis+cluster://{live},nonsense")])
        .logging()
        .output();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid node \"nonsense\""), "{bad:?}");
}
