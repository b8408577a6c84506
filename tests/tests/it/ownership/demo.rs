//! The demo's sessions panel: sessions (small streams fed over ~10 s) owned
//! by three workers of the demo; killing one moves its sessions to the
//! others, which finish them.

use super::*;

fn sessions(demo: &Demo) -> serde_json::Value {
    demo.state()["sessions"].clone()
}

fn owners(x: &serde_json::Value) -> Vec<(String, Option<String>)> {
    x["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stream"].as_str().unwrap().to_string(), s["owner"].as_str().map(str::to_string)))
        .collect()
}

#[test]
fn killing_a_sessions_worker_moves_its_sessions_to_the_others() {
    let demo = Demo::start("sessions-demo", &[]);
    let x = sessions(&demo);
    let alive: Vec<bool> = x["workers"].as_array().unwrap().iter().map(|w| w["alive"].as_bool().unwrap()).collect();
    assert_eq!(alive, [true, true, true], "{x}");
    let started = demo.ok("POST", "/api/sessions", Some(serde_json::json!({"count": 6})));
    assert_eq!(started["started"].as_array().unwrap().len(), 6);
    // Wait until every session has an owner; the victim is one that owns some.
    let mut victim = None;
    poll(Duration::from_secs(20), "every session owned", || {
        let o = owners(&sessions(&demo));
        victim = o.iter().find_map(|(_, owner)| owner.clone());
        o.len() == 6 && o.iter().all(|(_, owner)| owner.is_some())
    });
    let victim = victim.unwrap();
    let before: BTreeSet<String> =
        owners(&sessions(&demo)).into_iter().filter(|(_, o)| o.as_deref() == Some(&victim)).map(|(s, _)| s).collect();
    let killed = demo.ok("POST", &format!("/api/sessions/workers/{victim}/kill"), None);
    assert_eq!(killed["killed"], victim.as_str());
    let (code, body) = demo.call("POST", &format!("/api/sessions/workers/{victim}/kill"), None);
    assert_eq!(code, 400, "killing a killed worker: {body}");
    // Its sessions move (or finish) within the lease TTL (3 s) and a heartbeat.
    poll(Duration::from_secs(8), "the victim's sessions moved", || {
        let now = owners(&sessions(&demo));
        now.iter().filter(|(s, _)| before.contains(s)).all(|(_, o)| o.as_ref().is_some_and(|o| o != &victim))
    });
    let x = sessions(&demo);
    let moved: Vec<&serde_json::Value> =
        x["moves"].as_array().unwrap().iter().filter(|m| m["from"] == victim.as_str()).collect();
    let still: Vec<String> = owners(&x).into_iter().map(|(s, _)| s).filter(|s| before.contains(s)).collect();
    assert_eq!(moved.len(), still.len(), "every session of the victim still running was seen moving: {x}");
    poll(Duration::from_secs(40), "all sessions finished", || sessions(&demo)["finished"] == 6);
    let restarted = demo.ok("POST", &format!("/api/sessions/workers/{victim}/restart"), None);
    assert_eq!(restarted["restarted"], victim.as_str());
    let x = sessions(&demo);
    assert!(x["workers"].as_array().unwrap().iter().all(|w| w["alive"] == true), "{x}");
    let dead = demo.state()["dead_letters"]["length"].as_u64();
    assert_eq!(dead, Some(0), "the orders stream's dead letters");
}
