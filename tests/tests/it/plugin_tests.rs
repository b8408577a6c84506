//! `host test`: plugins' unit tests offline. The five example orders
//! plugins pass their shared fixture file; a fixture whose expectations are
//! wrong fails with what differs (exit 1, text and `--json`); production
//! dead letters and replayed entries become fixture cases with `--record`.

use crate::support::*;
use std::time::Duration;

const FIXTURE: &str = "plugins/fixtures/orders.toml";

fn host_test(args: &[&str]) -> std::process::Output {
    Host::new(["test"]).args(args).dir(&root()).env("RUST_LOG", "warn").output()
}

#[test]
fn the_five_example_plugins_pass_their_fixtures() {
    for name in ["orders", "python-orders", "js-orders", "c-orders", "zig-orders"] {
        let wasm = plugin(name);
        let out = host_test(&[wasm.to_str().unwrap(), FIXTURE]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.ends_with("9 passed, 0 failed\n"), "{name}: {stdout}");
        assert!(
            stdout.contains("  ok    a payment pending on every delivery is dead-lettered at the fifth"),
            "{stdout}"
        );
    }
}

/// The two notifiers (Rust and Python) pass their fixture, whose webhook
/// answers (2xx, 5xx, 404, none) come from the fixture.
#[test]
fn the_notifiers_pass_their_fixture_with_answered_http() {
    for name in ["notifier", "python-notifier"] {
        let wasm = plugin(name);
        let out = host_test(&[wasm.to_str().unwrap(), "plugins/fixtures/notifier.toml"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.ends_with("7 passed, 0 failed\n"), "{name}: {stdout}");
    }
}

/// `host test` never reaches the network, even for an origin that is up:
/// a listener on loopback is named by the fixture's answer and by a case
/// that has none; both cases pass from the fixture, and the listener sees
/// no connection.
#[test]
fn fixture_http_never_reaches_the_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("host-test-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = dir.join("offline.toml");
    let order = r#"[["type", "order.paid"], ["order_id", "o-1"], ["customer", "a"], ["amount", "1"]]"#;
    std::fs::write(
        &fixture,
        format!(
            "stream = \"orders\"\n[config]\nwebhook = \"http://127.0.0.1:{port}/hook\"\n\
             [[case]]\nname = \"answered by the fixture\"\nfields = {order}\nexpect = \"ok\"\n\
             requests = [\"POST http://127.0.0.1:{port}/hook *\"]\n\
             [[case.http]]\nurl = \"http://127.0.0.1:{port}/*\"\nstatus = 200\n\
             [[case]]\nname = \"no answer: refused, not sent\"\nfields = {order}\nexpect = \"retry\"\n\
             requests = [\"POST http://127.0.0.1:{port}/hook * (no answer in the fixture: refused)\"]\n"
        ),
    )
    .unwrap();
    let wasm = plugin("notifier");
    let out = host_test(&[wasm.to_str().unwrap(), fixture.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.ends_with("2 passed, 0 failed\n"), "{stdout}");
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the listener was reached: {accepted:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_expectation_fails_and_shows_what_differs() {
    let wasm = plugin("orders");
    let out = host_test(&[wasm.to_str().unwrap(), "tests/fixtures/orders-wrong.toml"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error: some cases failed"), "{stderr}");
    for line in [
        "  ok    a paid order is acked",
        "  FAIL  a malformed amount is acked (wrong: it is rejected)",
        "delivery 1 verdict: - expected ok",
        "+ got      reject: malformed amount \"12.3.4\"",
        "delivery 1 then: - expected ack",
        "+ got      dead-letter (rejected)",
        "delivery 1 delay: - expected 5000 ms",
        "+ got      retry after 1000 ms: payment of o-3 still pending",
        "1 passed, 2 failed",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let out = host_test(&["--json", wasm.to_str().unwrap(), "tests/fixtures/orders-wrong.toml"]);
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3], serde_json::json!({"passed": 1, "failed": 2}));
    assert_eq!(lines[1]["problems"][0]["expected"], "ok");
    assert_eq!(lines[1]["deliveries"][0]["verdict"], "reject");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn fixtures_give_state_and_config_and_compare_effects() {
    let out = host_test(&[plugin("chaos").to_str().unwrap(), "tests/fixtures/chaos.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.ends_with("8 passed, 0 failed\n"), "{stdout}");
}

#[test]
fn a_bad_fixture_is_a_clear_error() {
    let dir = plugin_dir("bad-fixture");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[case]]\nname = \"x\"\nfields = [[\"a\", \"b\"]]\nexpect = \"fine\"\n").unwrap();
    let out = host_test(&[plugin("orders").to_str().unwrap(), bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("case 1: \"x\": expect \"fine\" is not one of [\"ok\", \"retry\", \"reject\", \"fault\"]"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_become_fixture_cases_and_are_redriven_through_a_version() {
    let mut conn = redis().await;
    let stream = unique_stream("record");
    let mut bad = order(1);
    bad[3].1 = b"12.3.4".to_vec();
    produce(&mut conn, &stream, &[order(0), bad]).await;
    let mut host = Host::run(&stream, "orders", &[]).start();
    poll(Duration::from_secs(30), "the malformed order dead-lettered", || dead_letters_blocking(&stream) == 1);
    host.terminate();
    let dir = plugin_dir("record");
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = plugin("orders");
    for (what, args) in [
        ("dlq", vec!["dlq", "list", "--stream", &stream, "--json", "--redis", redis_url()]),
        ("replay", vec!["replay", "--stream", &stream, "--json", "--redis", redis_url()]),
    ] {
        let listed = Host::new(&args).output();
        assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
        let (lines, fixture) = (dir.join(format!("{what}.jsonl")), dir.join(format!("{what}.toml")));
        std::fs::write(&lines, &listed.stdout).unwrap();
        let recorded = host_test(&["--record", fixture.to_str().unwrap(), "--from", lines.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&recorded.stdout);
        assert!(recorded.status.success(), "{said}\n{}", String::from_utf8_lossy(&recorded.stderr));
        let cases = if what == "dlq" { 1 } else { 2 };
        assert!(said.contains(&format!("recorded {cases} cases")), "{said}");
        // Each case expects ok: the dead letter's fails until the plugin is fixed.
        let out = host_test(&[wasm.to_str().unwrap(), fixture.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = if what == "dlq" { "0 passed, 1 failed" } else { "1 passed, 1 failed" };
        assert!(stdout.contains(summary) && stdout.contains("malformed amount \"12.3.4\""), "{what}: {stdout}");
        if what == "dlq" {
            // A fixed plugin (here: one that acks anything) tried on the dead letters first.
            let tried = Host::new(["replay", "--stream", &stream, "--dlq", "--redis", redis_url()])
                .args(["--through", wasm.to_str().unwrap(), "--against", plugin("noop").to_str().unwrap()])
                .env("RUST_LOG", "warn")
                .output();
            let said = String::from_utf8_lossy(&tried.stdout);
            assert!(said.contains("1 of 1 entries handled differently"), "{said}");
            assert_eq!(dead_letters_blocking(&stream), 1, "the dead letter is still there");
            let text = std::fs::read_to_string(&fixture).unwrap();
            assert!(text.contains("# was: rejected, delivered 1 times: malformed amount"), "{text}");
            assert!(stdout.contains("  FAIL  dead letter "), "{stdout}");
        }
    }
    // Redrive through the plugin: it still rejects it, so it stays,
    // its error saying so now; through one that accepts it, it goes.
    // Dead letters kept elsewhere (`host run --dead-letter KEY`) are replayed from there.
    type Records = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;
    let records: Records =
        redis::cmd("XRANGE").arg(format!("{stream}:dlq")).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let mut copy = redis::cmd("XADD");
    copy.arg(format!("{stream}:bad")).arg("*");
    for (name, value) in &records[0].1 {
        copy.arg(name).arg(value);
    }
    let _: String = copy.query_async(&mut conn).await.unwrap();
    let elsewhere = Host::new(["replay", "--stream", &stream, "--dlq", "--dead-letter", &format!("{stream}:bad")])
        .args(["--redis", redis_url(), "--through", wasm.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output();
    let said = String::from_utf8_lossy(&elsewhere.stdout);
    let why = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(said.contains(&format!("on 1 entries of {stream}: 0 ok, 0 retry, 1 reject")), "{said}\n{why}");
    let requeue = |through: &std::path::Path| {
        Host::new(["dlq", "requeue", "--stream", &stream, "--all", "--redis", redis_url()])
            .args(["--rate", "20/s", "--through", through.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .output()
    };
    let out = requeue(&wasm);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("requeued 0 entries") && said.contains("kept 1 the plugin still does not accept"), "{said}");
    let listed = Host::new(["dlq", "list", "--stream", &stream, "--json", "--redis", redis_url()]).output();
    let record: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let now = record["meta"]["rejudged"].as_str().unwrap();
    assert!(now.starts_with("orders@") && now.contains("reject: malformed amount"), "{record}");
    assert_eq!(record["meta"]["error"], "malformed amount \"12.3.4\"", "the original error is kept: {record}");
    assert_eq!(record["fields"].as_array().unwrap().len(), 4, "the payload is kept: {record}");
    let out = requeue(&plugin("noop"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("requeued 1 entries") && said.contains("kept 0"), "{said}");
    assert_eq!(dead_letters_blocking(&stream), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_two_versions_reports_where_they_disagree_and_writes_nothing() {
    let mut conn = redis().await;
    let stream = unique_stream("through");
    let mut bad = order(1);
    bad[3].1 = b"12.3.4".to_vec();
    let mut pending = order(2);
    pending.push(("payment", b"pending".to_vec()));
    produce(&mut conn, &stream, &[order(0), bad, pending, order(3)]).await;
    let (orders, noop) = (plugin("orders"), plugin("noop"));
    let replay = |extra: &[&str]| {
        Host::new(["replay", "--stream", &stream, "--redis", redis_url(), "--through", orders.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
    };
    let out = replay(&["--against", noop.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("on 4 entries of") && stdout.contains(": 2 ok, 1 retry, 1 reject, 0 fault"), "{stdout}");
    assert!(stdout.contains(": 4 ok, 0 retry, 0 reject, 0 fault"), "{stdout}");
    assert!(stdout.contains("reject: malformed amount \"12.3.4\" | noop@"), "{stdout}");
    assert!(stdout.contains("2 of 4 entries handled differently"), "{stdout}");
    let out = replay(&["--json", "--against", orders.to_str().unwrap()]);
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&last).unwrap(), serde_json::json!({"disagree": 0, "of": 4}));
    // Nothing written: no group, no dead letters, no effects.
    assert!(groups(&mut conn, &stream).await.is_empty());
    assert_eq!(xlen(&mut conn, &format!("{stream}:dlq")).await, 0);
}

#[test]
fn a_bad_rate_is_refused() {
    let out = Host::new(["dlq", "requeue", "--stream", "s", "--all", "--rate", "fast"]).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("is not a rate: use N/s"), "{stderr}");
}

/// The length of `stream`'s dead-letter stream.
fn dead_letters_blocking(stream: &str) -> u64 {
    let mut conn = redis::Client::open(redis_url()).unwrap().get_connection().unwrap();
    redis::cmd("XLEN").arg(format!("{stream}:dlq")).query(&mut conn).unwrap()
}
