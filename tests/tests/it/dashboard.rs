//! `host demo`: every dashboard control through its HTTP API, checked against
//! what Redis itself says (XINFO, XPENDING, XLEN, XRANGE); `/metrics` in the
//! demo; the demo's own redis-server; and the page in a real headless
//! Chromium (crash, wait, claim, pending back to 0, screenshot).

use crate::metrics::{scrape, value};
use crate::support::*;
use redis::Commands;
use serde_json::{Value, json};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
/// Flags of a demo whose reaper runs (the others leave claims to the test).
const REAPING: [&str; 2] = ["--reap-interval-ms", "300"];
/// The claim threshold the tests run the demo with (ms).
const CLAIM_IDLE_MS: u64 = Demo::CLAIM_IDLE_MS;

/// Both groups of the demo have read every entry and hold none pending.
fn drained(r: &mut redis::Connection, stream: &str) -> bool {
    let groups = blocking::groups(r, stream);
    groups.len() == 2 && groups.iter().all(|g| g.pending == 0 && g.lag == Some(0))
}

/// Produce, per-group state and per-consumer state agree with XLEN, XINFO
/// GROUPS and XINFO CONSUMERS; bad requests are clear 4xx errors.
#[test]
fn produce_and_group_state_match_redis() {
    // A reaper: a notification retried under load comes back by itself.
    let demo = Demo::start("dash-state", &REAPING);
    let mut r = blocking::connect();
    let reply = demo.produce(20, "order.placed");
    assert_eq!(reply["produced"], 20);
    poll(MINUTE, "both groups to drain", || drained(&mut r, &demo.stream));
    poll(MINUTE, "the counters to show 20 per group", || {
        let s = demo.state();
        let processed = |g: &str| -> u64 {
            group_of(&s, g)["consumers"].as_array().unwrap().iter().map(|c| c["processed"].as_u64().unwrap()).sum()
        };
        processed("notifications") == 20 && processed("analytics") == 20
    });

    let state = demo.state();
    let xlen: u64 = r.xlen(&demo.stream).unwrap();
    assert_eq!(xlen, 20);
    assert_eq!(state["stream"]["length"], xlen);
    assert_eq!(state["tail"].as_array().unwrap().len(), 12, "the live tail shows the newest 12");
    for GroupInfo { name, pending, last_delivered_id: last_delivered, lag, .. } in
        blocking::groups(&mut r, &demo.stream)
    {
        let group = group_of(&state, &name);
        assert_eq!(group["pending"], pending);
        assert_eq!(group["last_delivered_id"], last_delivered);
        assert_eq!(group["lag"], json!(lag));
        for (consumer, pending) in blocking::consumers(&mut r, &demo.stream, &name) {
            let shown = group["consumers"].as_array().unwrap().iter().find(|c| c["name"] == consumer).unwrap();
            assert_eq!(shown["pending"], pending, "{name}/{consumer}");
            assert_eq!(shown["local"], true);
        }
    }

    for (method, path, body, status) in [
        ("POST", "/api/produce", json!({"count": 0}), 400),
        ("POST", "/api/produce", json!({"count": 1, "kind": "order.lost"}), 400),
        ("POST", "/api/groups/nope/consumers/worker-a/crash", json!({"count": 1}), 404),
        ("POST", "/api/groups/notifications/consumers/worker-z/crash", json!({"count": 1}), 404),
        ("POST", "/api/groups/notifications/consumers", json!({"name": "bad name!"}), 400),
        ("POST", "/api/groups/notifications/consumers", json!({"name": "worker-a"}), 400),
        ("POST", "/api/trim", json!({}), 400),
        ("POST", "/api/dead-letters/requeue", json!({"ids": ["1-0"]}), 404),
    ] {
        let (got, reply) = demo.call(method, path, Some(body));
        assert_eq!(got, status, "{method} {path}: {reply}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()), "{reply}");
    }
    let (status, reply) = demo.call("GET", "/api/replay?from=nonsense", None);
    assert_eq!(status, 400, "{reply}");
}

/// Crash drill, pending panel, claim, add and remove (with handover): every
/// entry ends acked, none lost, as XPENDING and XINFO say.
#[test]
fn crash_claim_add_and_remove_lose_nothing() {
    let demo = Demo::start("dash-crash", &[]);
    let mut r = blocking::connect();

    let crash = demo.ok("POST", "/api/groups/notifications/consumers/worker-a/crash", Some(json!({"count": 3})));
    assert_eq!(crash["crash_due"], 3);
    demo.until_crashed("notifications", "worker-a");
    poll(MINUTE, "3 entries pending at worker-a", || {
        blocking::pending(&mut r, &demo.stream, "notifications").len() == 3
    });
    let pending = blocking::pending(&mut r, &demo.stream, "notifications");
    assert!(pending.iter().all(|(_, consumer, deliveries)| consumer == "worker-a" && *deliveries == 1), "{pending:?}");
    let panel = demo.ok("GET", "/api/groups/notifications/pending", None);
    let shown: Vec<(String, String, u64)> = panel["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().into(),
                p["consumer"].as_str().unwrap().into(),
                p["deliveries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown, pending, "the pending panel is XPENDING");

    std::thread::sleep(Duration::from_millis(CLAIM_IDLE_MS + 200));
    let claim = demo.ok("POST", "/api/groups/notifications/consumers/worker-b/claim", None);
    assert_eq!(claim["claimed"], 3, "{claim}");
    poll(MINUTE, "the claimed entries to be acked", || {
        blocking::pending(&mut r, &demo.stream, "notifications").is_empty()
    });

    // A consumer added at runtime reads its share.
    demo.ok("POST", "/api/groups/notifications/consumers", Some(json!({"name": "worker-d"})));
    poll(MINUTE, "worker-d in XINFO CONSUMERS", || {
        blocking::consumers(&mut r, &demo.stream, "notifications").iter().any(|(n, _)| n == "worker-d")
    });
    assert_eq!(demo.consumer("notifications", "worker-d")["local"], true);

    // Removing a consumer hands its pending entries to a peer and deletes it.
    demo.ok("POST", "/api/groups/notifications/consumers/worker-b/crash", Some(json!({"count": 2})));
    demo.until_crashed("notifications", "worker-b");
    poll(MINUTE, "2 entries pending at worker-b", || {
        blocking::pending(&mut r, &demo.stream, "notifications").iter().filter(|p| p.1 == "worker-b").count() == 2
    });
    let held: Vec<String> = blocking::pending(&mut r, &demo.stream, "notifications").into_iter().map(|p| p.0).collect();
    demo.ok("DELETE", "/api/groups/notifications/consumers/worker-b", None);
    poll(MINUTE, "worker-b to leave the group", || {
        !blocking::consumers(&mut r, &demo.stream, "notifications").iter().any(|(n, _)| n == "worker-b")
    });
    let moved = blocking::pending(&mut r, &demo.stream, "notifications");
    assert_eq!(moved.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), held, "handed over, not dropped");
    let peer = moved[0].1.clone();
    assert!(peer == "worker-a" || peer == "worker-d", "{moved:?}");
    let claim = demo.ok("POST", &format!("/api/groups/notifications/consumers/{peer}/claim"), None);
    assert_eq!(claim["claimed"], 2, "handed-over entries are claimable at once: {claim}");
    poll(MINUTE, "both groups to drain", || drained(&mut r, &demo.stream));
    let (status, _) = demo.call("DELETE", "/api/groups/notifications/consumers/worker-b", None);
    assert_eq!(status, 404, "a removed consumer is gone");

    // Nothing lost: both groups read every entry and hold none pending (XINFO
    // GROUPS), and each acked every entry once (the metrics keep the counts
    // of removed consumers too).
    let xlen: u64 = r.xlen(&demo.stream).unwrap();
    let dlq: u64 = r.xlen(format!("{}:dlq", demo.stream)).unwrap();
    assert_eq!(dlq, 0);
    let samples = scrape(demo.addr());
    for group in ["notifications", "analytics"] {
        let acked = value(&samples, "host_acked_total", &[("stream", demo.stream.as_str()), ("group", group)]);
        assert_eq!(acked, xlen as f64, "{group}: every entry acked once");
    }
}

/// Replay is XRANGE; trim by MAXLEN ~ and MINID ~ reports what XLEN says;
/// dead letters list and requeue; reset starts everything over.
#[test]
fn replay_trim_dead_letters_and_reset() {
    // A reaper: a notification retried under load comes back by itself.
    let demo = Demo::start("dash-replay", &REAPING);
    let mut r = blocking::connect();
    demo.produce(250, "random");
    // Settled before the trims: an entry trimmed while in hand would be
    // reaped as a dead letter ("trimmed") and add to the count below.
    poll(MINUTE, "both groups to drain", || drained(&mut r, &demo.stream));
    let all: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(&demo.stream).arg("-").arg("+").query(&mut r).unwrap();
    assert_eq!(all.len(), 250);
    let replay = demo.ok("GET", &format!("/api/replay?from={}&to={}&count=7", all[10].0, all[200].0), None);
    let ids: Vec<&str> = replay["entries"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = all[10..17].iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, want);
    let first = &replay["entries"][0]["fields"];
    assert_eq!(first[0][0], all[10].1[0].0);
    assert_eq!(first[0][1], all[10].1[0].1);

    let before: u64 = r.xlen(&demo.stream).unwrap();
    let trim = demo.ok("POST", "/api/trim", Some(json!({"maxlen": 50})));
    let after: u64 = r.xlen(&demo.stream).unwrap();
    assert_eq!(trim["length"], after);
    assert_eq!(trim["trimmed"].as_u64().unwrap(), before - after);
    assert!(after < before && after >= 50, "MAXLEN ~ 50 trims whole nodes: {before} → {after}");
    let oldest: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(&demo.stream).arg("-").arg("+").arg("COUNT").arg(1).query(&mut r).unwrap();
    let trim = demo.ok("POST", "/api/trim", Some(json!({"minid": all[249].0})));
    let last: u64 = r.xlen(&demo.stream).unwrap();
    assert_eq!(trim["length"], last);
    assert_eq!(trim["trimmed"].as_u64().unwrap(), after - last);
    assert!(!oldest.is_empty());

    // Dead letters: a malformed order is rejected by both groups' plugins.
    demo.produce(1, "malformed");
    let dlq_key = format!("{}:dlq", demo.stream);
    poll(MINUTE, "2 dead letters", || r.xlen::<_, u64>(&dlq_key).unwrap() == 2);
    let listed = demo.ok("GET", "/api/dead-letters", None);
    assert_eq!(listed["length"], 2);
    let entries = listed["entries"].as_array().unwrap();
    let mut groups: Vec<&str> = entries.iter().map(|e| e["meta"]["group"].as_str().unwrap()).collect();
    groups.sort();
    assert_eq!(groups, ["analytics", "notifications"]);
    assert!(entries.iter().all(|e| e["meta"]["reason"] == "rejected"), "{listed}");
    let requeue = demo.ok("POST", "/api/dead-letters/requeue", Some(json!({"ids": [entries[0]["id"]]})));
    assert_eq!(requeue["requeued"], 1, "{requeue}");
    // Back on the stream, the still-malformed order is rejected again by both groups: 2 - 1 + 2.
    poll(MINUTE, "3 dead letters", || r.xlen::<_, u64>(&dlq_key).unwrap() == 3);
    poll(MINUTE, "both groups to drain", || drained(&mut r, &demo.stream));

    // The plugins panel names the files' versions and counts their calls
    // (a consumer publishes its counters after the step that settled them).
    let counted = |p: &Value| p.as_array().unwrap().iter().all(|p| p["calls"] == 252);
    poll(MINUTE, "the plugins panel to count every call", || counted(&demo.ok("GET", "/api/plugins", None)));
    let plugins = demo.ok("GET", "/api/plugins", None);
    for (group, file) in [("notifications", "notifier"), ("analytics", "python-analytics")] {
        let p = plugins.as_array().unwrap().iter().find(|p| p["group"] == group).unwrap();
        assert_eq!(p["version"], host::plugin_version(&std::fs::read(plugin(file)).unwrap()), "{p}");
        assert_eq!(p["calls"], 252, "{p}");
        assert_eq!(p["errors"], 2, "{p}");
        assert!(p["last_error"]["error"].as_str().unwrap().contains("malformed amount"), "{p}");
    }

    demo.ok("POST", "/api/reset", None);
    assert_eq!(r.xlen::<_, u64>(&demo.stream).unwrap(), 0);
    assert!(!r.exists::<_, bool>(&dlq_key).unwrap(), "reset deletes the dead letters");
    let groups = blocking::groups(&mut r, &demo.stream);
    assert_eq!(groups.len(), 2, "reset re-creates both groups");
    assert!(groups.iter().all(|g| g.pending == 0));
    demo.produce(5, "order.shipped");
    poll(MINUTE, "both groups to drain after the reset", || drained(&mut r, &demo.stream));
    poll(MINUTE, "counters from zero", || {
        let s = demo.state();
        group_of(&s, "analytics")["consumers"][0]["processed"] == 5
    });
}

/// A new build dropped over a group's plugin file shows up in the plugins
/// panel (new version, reload ok, entries handled by it); a broken one shows
/// as a failed reload while the running version keeps serving.
#[test]
fn plugins_panel_shows_reloads() {
    let dir = plugin_dir("dash-reload");
    let file = dir.join("orders.wasm");
    std::fs::copy(plugin("orders"), &file).unwrap();
    let demo = Demo::start("dash-reload", &["--notifications-plugin", file.to_str().unwrap()]);
    let mut r = blocking::connect();
    let panel = |demo: &Demo| -> Value {
        let plugins = demo.ok("GET", "/api/plugins", None);
        plugins.as_array().unwrap().iter().find(|p| p["group"] == "notifications").unwrap().clone()
    };
    let v1 = panel(&demo)["version"].as_str().unwrap().to_string();
    assert!(panel(&demo)["reload"].is_null());

    let v2_bytes = variant("orders", b"v2");
    let v2 = host::plugin_version(&v2_bytes);
    install(&file, &v2_bytes);
    poll(MINUTE, "the new version in the panel", || panel(&demo)["version"] == v2.as_str());
    let p = panel(&demo);
    assert_eq!(p["reload"]["ok"], true, "{p}");
    assert!(p["reload"]["message"].as_str().unwrap().contains(&v1), "{p}");
    demo.produce(5, "order.placed");
    poll(MINUTE, "both groups to drain", || drained(&mut r, &demo.stream));
    let samples = scrape(demo.addr());
    let by_v2 =
        value(&samples, "host_entries_total", &[("group", "notifications"), ("version", &v2), ("verdict", "ack")]);
    assert_eq!(by_v2, 5.0, "entries after the reload go to the new version");

    install(&file, b"not a component");
    poll(MINUTE, "the failed reload in the panel", || panel(&demo)["reload"]["ok"] == false);
    let p = panel(&demo);
    assert_eq!(p["version"], v2.as_str(), "the running version keeps serving: {p}");
    assert!(!p["reload"]["message"].as_str().unwrap().is_empty(), "{p}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/metrics` in the demo parses as OpenMetrics and counts what was handled.
#[test]
fn demo_metrics_match_the_run() {
    // A reaper: a notification retried under load comes back by itself.
    let demo = Demo::start("dash-metrics", &REAPING);
    let mut r = blocking::connect();
    demo.produce(10, "order.paid");
    demo.produce(1, "malformed");
    poll(MINUTE, "both groups to drain", || drained(&mut r, &demo.stream));
    let stream = demo.stream.as_str();
    poll(MINUTE, "the metrics to count 11 per group", || {
        let samples = scrape(demo.addr());
        ["notifications", "analytics"].iter().all(|g| {
            value(&samples, "host_acked_total", &[("stream", stream), ("group", g)]) == 10.0
                && value(
                    &samples,
                    "host_dead_lettered_total",
                    &[("stream", stream), ("group", g), ("reason", "rejected")],
                ) == 1.0
        })
    });
    let samples = scrape(demo.addr());
    let ack = value(&samples, "host_entries_total", &[("stream", stream), ("group", "analytics"), ("verdict", "ack")]);
    assert_eq!(ack, 10.0);
    let lag = value(&samples, "host_group_lag", &[("stream", stream), ("group", "notifications")]);
    assert_eq!(lag, 0.0);
}

/// A taken dashboard port is a clear error, before anything is reset.
#[test]
fn a_taken_port_fails_before_the_reset() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let stream = unique_stream("dash-port");
    let mut r = blocking::connect();
    let _: String = r.xadd(&stream, "*", &[("keep", "me")]).unwrap();
    let out = Host::new(["demo", "--stream-key", &stream, "--port", &port, "--redis", redis_url(), "--seed", "0"])
        .env("NO_COLOR", "1")
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port} for the dashboard (--port)")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(r.xlen::<_, u64>(&stream).unwrap(), 1, "the stream was not reset");
}

/// With no Redis given and none answering at the probed address, the demo
/// starts a redis-server child, uses it, and stops it on exit.
#[test]
fn demo_starts_and_stops_its_own_redis() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let probe = format!("redis://127.0.0.1:{closed}");
    let mut demo = Demo::start("dash-own", &["--probe-redis", &probe]);
    let line = demo.process.log.iter().find(|l| l.contains("started redis-server at")).expect("says so").clone();
    let url = line.split("started redis-server at ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    let pid: i32 = line.split("pid=").nth(1).unwrap().trim().parse().unwrap();
    assert_ne!(url, redis_url());
    let mut own = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    demo.produce(3, "order.placed");
    poll(MINUTE, "the demo's own Redis to hold the entries", || own.xlen::<_, u64>(&demo.stream).unwrap() == 3);

    let (status, _) = demo.process.terminate();
    assert!(status.success(), "{status}: {:#?}", demo.process.log);
    assert!(
        demo.process.log.iter().any(|l| l.contains("stopped the redis-server started for this run")),
        "{:#?}",
        demo.process.log
    );
    // SAFETY: probing (signal 0) a pid the demo started; it must be gone.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    if alive {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(!alive, "redis-server {pid} still running after the demo exited");
    assert!(redis::Client::open(url.as_str()).unwrap().get_connection().is_err());
}

/// The page in headless Chromium: produce 20, both groups process them,
/// crash worker-a's next 3, wait past the idle threshold, claim to worker-b,
/// pending back to 0; then a new build replaces the notifications plugin,
/// named by a relative path as the demo's default is, and the plugins panel
/// shows its version. The screenshot is kept as a test artifact.
#[test]
fn browser_produce_crash_claim() {
    let dir = plugin_dir("dash-browser");
    let dist = dir.join("plugins/dist");
    std::fs::create_dir_all(&dist).unwrap();
    for name in ["notifier", "python-analytics"] {
        std::fs::copy(plugin(name), dist.join(format!("{name}.wasm"))).unwrap();
    }
    let new_build = dir.join("notifier-v2.wasm");
    std::fs::write(&new_build, variant("notifier", b"browser-v2")).unwrap();
    let new_version = host::plugin_version(&std::fs::read(&new_build).unwrap());
    let relative = [
        "--notifications-plugin",
        "plugins/dist/notifier.wasm",
        "--analytics-plugin",
        "plugins/dist/python-analytics.wasm",
    ];
    let demo = Demo::start_in(Some(&dir), "dash-browser", &relative);
    let artifacts = artifacts_dir();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let base = format!("{}/", demo.base);
    let (claim_idle, plugin_file) = (CLAIM_IDLE_MS.to_string(), dist.join("notifier.wasm"));
    let stdout = browser(
        "dashboard.cjs",
        &[
            base.as_ref(),
            screenshot.as_ref(),
            claim_idle.as_ref(),
            plugin_file.as_ref(),
            new_build.as_ref(),
            new_version.as_ref(),
        ],
    );
    assert!(stdout.contains("worker-b claimed 3 entries and pending is back to 0"), "{stdout}");
    assert!(stdout.contains("the analytics totals still match"), "{stdout}");
    assert!(stdout.contains("with the sink down the notifier retried"), "{stdout}");
    assert!(stdout.contains("sink up again: every order notified"), "{stdout}");
    assert!(stdout.contains(&format!("the plugins panel shows version {new_version}")), "{stdout}");
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    let mut r = blocking::connect();
    assert!(drained(&mut r, &demo.stream), "Redis agrees: nothing pending, nothing unread");
    eprintln!("dashboard screenshot: {}", screenshot.display());
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `tests/browser/SCRIPT` with `args` in node (playwright-core and
/// Chromium must be there); fails with its output unless it succeeds;
/// returns what it printed.
fn browser(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let output = std::process::Command::new("node")
        .arg(root().join("tests/browser").join(script))
        .args(args)
        .env("PLAYWRIGHT_MODULES", playwright())
        .output()
        .expect("cannot run node: install Debian's nodejs (`scripts/install-deps.sh node`)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test {script} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Where playwright-core is (`make test` installs it); Chromium must be there too.
fn playwright() -> String {
    let modules = std::env::var("PLAYWRIGHT_MODULES").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap();
        format!("{home}/.cache/redis-wasm-host/tools/playwright-core-1.65.1/node_modules")
    });
    assert!(
        std::path::Path::new(&modules).join("playwright-core").exists(),
        "playwright-core not found in {modules}: run `make test` (it installs it) or set PLAYWRIGHT_MODULES"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHROMIUM").is_some(),
        "Chromium not found: `scripts/install-deps.sh browser` installs Debian's chromium"
    );
    modules
}

/// The page of a partitioned demo (one server: partitions need no cluster)
/// shows its partitions and their numbers add up.
#[test]
fn browser_shows_partitions() {
    let demo = Demo::start("dash-partitions", &["--partitions", "3"]);
    let base = format!("{}/", demo.base);
    let stdout = browser("partitions.cjs", &[base.as_ref(), "3".as_ref()]);
    assert!(stdout.contains("both groups drained every partition and the analytics totals match"), "{stdout}");
}

/// The sessions panel in a real browser: sessions started from the page,
/// a worker killed from it, its sessions seen moving, all finished.
#[test]
fn browser_sessions_move() {
    let demo = Demo::start("dash-sessions", &[]);
    let screenshot = artifacts_dir().join("sessions.png");
    let base = format!("{}/", demo.base);
    let stdout = browser("sessions.cjs", &[base.as_ref(), screenshot.as_ref()]);
    assert!(
        stdout.contains("sessions moved to the other workers") && stdout.contains("every session finished"),
        "{stdout}"
    );
}

/// Where tests leave artifacts: `$CARGO_TARGET_DIR/test-artifacts` (or target/).
fn artifacts_dir() -> std::path::PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root().join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The notifications panel: with the sink down the notifier's requests are
/// answered 503 and retried; once it is up every order is notified, none
/// dead-lettered; with the slow sink the demo's 2 s timeout gives up first,
/// the retry reaches the sink again and the sink suppresses the duplicate.
/// The webhook takes no POST without the run's token.
#[test]
fn notifications_panel_shows_retries_and_suppressed_duplicates() {
    // Retries come back through the reaper: this demo runs one.
    let demo = Demo::start("dash-sink", &["--reap-interval-ms", "200"]);
    let mut r = blocking::connect();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let tokenless = agent.post(format!("{}/api/sink", demo.base)).send_json(json!({"id": "1-0"})).unwrap();
    assert_eq!(tokenless.status().as_u16(), 403, "the webhook is guarded like every POST");
    // It takes the sink's own token (the notifier's), not the dashboard's: the
    // two open different doors.
    let admin = agent.post(format!("{}/api/sink", demo.base)).header("X-Host-Token", &demo.token);
    assert_eq!(admin.send_json(json!({"id": "1-0"})).unwrap().status().as_u16(), 403);
    demo.ok("POST", "/api/sink/switches", Some(json!({"down": true})));
    demo.produce(5, "order.placed");
    let panel = || demo.ok("GET", "/api/sink", None);
    poll(MINUTE, "retries while the sink is down", || panel()["retries_while_down"].as_u64() >= Some(5));
    assert_eq!(panel()["received"], 0);
    demo.ok("POST", "/api/sink/switches", Some(json!({"down": false})));
    poll(MINUTE, "all 5 notified", || panel()["received"] == 5 && drained(&mut r, &demo.stream));
    assert_eq!(panel()["notifier"]["sent"], 5);
    assert_eq!(r.xlen::<_, u64>(format!("{}:dlq", demo.stream)).unwrap(), 0, "nothing dead-lettered");

    demo.ok("POST", "/api/sink/switches", Some(json!({"slow": true})));
    demo.produce(1, "order.placed");
    poll(MINUTE, "a duplicate suppressed by the slow sink", || panel()["duplicates"].as_u64() >= Some(1));
    demo.ok("POST", "/api/sink/switches", Some(json!({"slow": false})));
    poll(MINUTE, "the sixth notified", || panel()["received"] == 6 && drained(&mut r, &demo.stream));
    let last = panel()["last"].as_array().unwrap().clone();
    assert!(last.iter().any(|n| n["duplicate"] == true && n["delivery"].as_u64() >= Some(2)), "{last:?}");
}
