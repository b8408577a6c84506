//! `host demo` on a Redis Cluster: with `--partitions 4` (the page shows
//! the partitions, every number summed over them, drills reaching every
//! partition of a consumer, the analytics totals matching per partition),
//! and unpartitioned (its stream then takes a hash tag of its own).

use super::*;
use serde_json::json;
use std::time::Instant;

/// Polls the demo until both groups have nothing pending or unread and
/// the analytics panel counted everything acked; returns that state.
fn settled(demo: &Demo) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let state = demo.state();
        let a = &state["analytics"];
        assert_ne!(a["verdict"], "differ", "totals differ from the recomputed ones: {a:#}");
        let quiet = ["notifications", "analytics"].iter().all(|g| {
            let group = group_of(&state, g);
            group["lag"] == 0 && group["pending"] == 0
        });
        if quiet && a["in_flight"] == 0 && a["verdict"] == "match" {
            return state;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "the demo never settled: {state:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_demo_runs_on_a_cluster_with_partitions_and_without() {
    let cluster = LocalCluster::start();
    let url = cluster.url();
    let demo = Demo::start("cluster-demo", &["--redis", &url, "--partitions", "4"]);
    demo.produce(40, "random");
    demo.produce(1, "malformed");
    let state = settled(&demo);
    let parts = state["partitions"].as_array().expect("a partitions panel");
    assert_eq!(parts.len(), 4);
    let slots: std::collections::BTreeSet<u64> = parts.iter().map(|p| p["slot"].as_u64().unwrap()).collect();
    assert_eq!(slots.len(), 4, "partitions in four slots: {parts:#?}");
    let lengths: u64 = parts.iter().map(|p| p["length"].as_u64().unwrap()).sum();
    assert_eq!((lengths, state["stream"]["length"].as_u64().unwrap()), (41, 41), "lengths summed");
    assert!(parts.iter().filter(|p| p["length"].as_u64() > Some(0)).count() >= 2, "orders spread: {parts:#?}");
    // The malformed order is dead-lettered by both groups, in its partition.
    assert_eq!(state["dead_letters"]["length"], 2, "{:#}", state["dead_letters"]);
    let dead: u64 = parts.iter().map(|p| p["dead_letters"].as_u64().unwrap()).sum();
    assert_eq!(dead, 2);
    let counted: i64 =
        state["analytics"]["types"].as_array().unwrap().iter().map(|t| t["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, 40, "every well-formed order counted once, over the partitions");

    // A partitioned group's consumers are fixed: adding one says so.
    let (status, body) = demo.call("POST", "/api/groups/analytics/consumers", Some(json!({"name": "worker-d"})));
    assert_eq!(status, 400, "{body}");
    // A crash drill reaches worker-c on every partition; a claim takes them back.
    demo.ok("POST", "/api/groups/analytics/consumers/worker-c/crash", Some(json!({"count": 3})));
    demo.until_crashed("analytics", "worker-c");
    std::thread::sleep(Duration::from_millis(Demo::CLAIM_IDLE_MS + 200));
    let claimed = demo.ok("POST", "/api/groups/analytics/consumers/worker-c/claim", None);
    assert!(claimed["claimed"].as_u64() >= Some(1), "{claimed}");
    settled(&demo);
    // Requeue all: each dead letter back onto its own partition.
    let requeued = demo.ok("POST", "/api/dead-letters/requeue", Some(json!({})));
    assert_eq!(requeued["requeued"], 2, "{requeued}");
    drop(demo);

    // Unpartitioned on the cluster: the stream takes a hash tag so its dead
    // letters and the plugins' keys share its slot.
    let demo = Demo::start("cluster-demo-plain", &["--redis", &url]);
    let state = demo.state();
    let stream = state["settings"]["stream"].as_str().unwrap().to_string();
    assert_eq!(stream, format!("{{{}}}", demo.stream));
    assert!(state["partitions"].is_null());
    demo.produce(10, "random");
    demo.produce(1, "malformed");
    let state = settled(&demo);
    assert_eq!(state["dead_letters"]["key"], format!("{stream}:dlq"));
    assert_eq!(state["dead_letters"]["length"], 2);
}
