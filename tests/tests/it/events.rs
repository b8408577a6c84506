//! Failure events: dead letters (with their reason), faults and failed
//! reloads are appended to `host:events` with their metadata, and `host
//! events` prints them (`--follow`: as they come). On a private
//! redis-server: the events stream is one per Redis.

use crate::support::*;
use std::time::Duration;

async fn events(conn: &mut redis::aio::MultiplexedConnection) -> Vec<std::collections::HashMap<String, String>> {
    let rows: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("host:events").arg("-").arg("+").query_async(conn).await.unwrap();
    rows.into_iter().map(|(_, fields)| fields.into_iter().collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_faults_and_failed_reloads_become_events() {
    let redis = PrivateRedis::start();
    let mut conn = redis.connect().await;
    let stream = "orders";
    let ids = produce(&mut conn, stream, &[vec![("reject", b"1".to_vec())], vec![("trap", b"1".to_vec())]]).await;
    let dir = plugin_dir("events");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("chaos.wasm");
    std::fs::copy(plugin("chaos"), &file).unwrap();
    let mut host = Host::new(["run", "--stream", stream, "--group", "g", "--plugin", file.to_str().unwrap()])
        .args(["--redis", &redis.url, "--max-deliveries", "2", "--min-idle-ms", "100", "--reap-interval-ms", "50"])
        .logging()
        .start();
    poll(Duration::from_secs(30), "both entries dead-lettered", || {
        let mut c = redis::Client::open(redis.url.as_str()).unwrap().get_connection().unwrap();
        redis::cmd("XLEN").arg("orders:dlq").query::<u64>(&mut c).unwrap() == 2
    });
    std::fs::write(&file, b"not a wasm component").unwrap();
    host.wait_log(Duration::from_secs(30), "the failed reload", |log| log.iter().any(|l| l.contains("reload of")));
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = events(&mut conn).await;
        if seen.iter().any(|e| e["kind"] == "reload-failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let of = |kind: &str| seen.iter().filter(|e| e["kind"] == kind).collect::<Vec<_>>();
    let dead = of("dead-letter");
    assert_eq!(dead.len(), 2, "{seen:#?}");
    let rejected = dead.iter().find(|e| e["entry"] == ids[0]).expect("the rejected entry's event");
    assert_eq!(
        (rejected["reason"].as_str(), rejected["stream"].as_str(), rejected["group"].as_str()),
        ("rejected", stream, "g")
    );
    assert!(rejected["error"].contains("chaos: reject requested"), "{rejected:?}");
    let trapped = dead.iter().find(|e| e["entry"] == ids[1]).expect("the trapped entry's event");
    assert_eq!(trapped["reason"], "max deliveries exceeded");
    let faults = of("fault");
    assert_eq!(faults.len(), 2, "one per delivery of the trapping entry: {seen:#?}");
    assert!(faults.iter().all(|e| e["entry"] == ids[1] && e["error"].contains("trap")), "{faults:?}");
    let reload = &of("reload-failed")[0];
    assert!(reload["file"].ends_with("chaos.wasm") && !reload["error"].is_empty(), "{reload:?}");
    assert!(seen.iter().all(|e| e["time-ms"].parse::<u64>().is_ok()));

    // `host events` prints them, oldest first; --follow then each new one.
    let out = Host::new(["events", "--redis", &redis.url, "--count", "3"]).output();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 3, "{printed}");
    assert!(printed.lines().last().unwrap().contains(r#"kind="reload-failed""#), "{printed}");
    let follow = Host::new(["events", "--redis", &redis.url, "--count", "0", "--follow", "--json"])
        .logging()
        .stdout(std::process::Stdio::piped())
        .spawn();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let () =
        redis::cmd("XADD").arg("host:events").arg("*").arg("kind").arg("probe").query_async(&mut conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(follow.id() as i32, libc::SIGTERM) };
    let out = follow.wait_with_output().unwrap();
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(followed.contains(r#"["kind","probe"]"#), "{followed}");
    host.terminate();
}
