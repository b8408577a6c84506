//! The demo's analytics panel: the `analytics` plugin's totals (effects
//! committed with its acks) match the totals recomputed from the stream at
//! every instant — through crash, claim and remove drills — and a paid
//! order is emitted once.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn the_demo_totals_match_through_crash_claim_and_remove() {
    let demo = Demo::start("analytics-panel", &[]);
    let mut seen = Vec::new();
    let mut check = |demo: &Demo| {
        let state = demo.state();
        let a = state["analytics"].clone();
        assert_ne!(a["verdict"], "differ", "totals differ from the recomputed ones: {a:#}");
        assert!(a.get("error").is_none(), "{a:#}");
        seen.push(a);
    };
    demo.produce(20, "random");
    check(&demo);
    // worker-c drops its next 5 deliveries: they sit pending, uncounted.
    demo.ok("POST", "/api/groups/analytics/consumers/worker-c/crash", Some(json!({"count": 5})));
    demo.until_crashed("analytics", "worker-c");
    check(&demo);
    // A new consumer claims them once idle (and counts them, once).
    demo.ok("POST", "/api/groups/analytics/consumers", Some(json!({"name": "worker-d"})));
    std::thread::sleep(Duration::from_millis(Demo::CLAIM_IDLE_MS + 200));
    demo.ok("POST", "/api/groups/analytics/consumers/worker-d/claim", None);
    check(&demo);
    // worker-c leaves: its pending entries are handed over.
    demo.ok("DELETE", "/api/groups/analytics/consumers/worker-c", None);
    demo.produce(30, "random");
    demo.produce(2, "payment-pending");
    demo.produce(1, "malformed");
    let start = Instant::now();
    loop {
        check(&demo);
        let state = demo.state();
        let group = group_of(&state, "analytics");
        let a = &state["analytics"];
        if group["lag"] == 0 && group["pending"] == 0 && a["in_flight"] == 0 {
            assert_eq!(a["verdict"], "match", "{a:#}");
            assert_eq!(a["paid"]["duplicates"], 0);
            assert_eq!(a["paid"]["emitted"], a["paid"]["expected"]);
            assert!(a["dead_lettered"].as_u64().unwrap() >= 3, "{a:#}");
            let counted: i64 = a["types"].as_array().unwrap().iter().map(|t| t["count"].as_i64().unwrap()).sum();
            assert!(counted > 50, "{a:#}");
            break;
        }
        // Redeliveries of the payment-pending orders take their delivery limit.
        demo.ok("POST", "/api/groups/analytics/consumers/worker-d/claim", None);
        assert!(start.elapsed() < Duration::from_secs(90), "the analytics group never settled: {state:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(seen.iter().any(|a| a["in_flight"].as_u64() > Some(0)), "never saw an entry in flight");
}
