//! Plugin failures leave entries pending, and the host keeps going.

use crate::support::*;
use std::time::Duration;

/// retry / trap / endless-loop entries stay pending with delivery count 1, a
/// reject goes to the dead-letter stream; every other entry, including those
/// after each fault, is acked.
#[tokio::test(flavor = "multi_thread")]
async fn faulty_entries_stay_pending_and_the_host_keeps_going() {
    let mut conn = redis().await;
    let stream = unique_stream("chaos");
    let ok = || vec![("n", b"1".to_vec())];
    let entries = vec![
        ok(),
        vec![("fail", b"".to_vec())],
        ok(),
        vec![("reject", b"".to_vec())],
        ok(),
        vec![("trap", b"".to_vec())],
        ok(),
        vec![("spin", b"".to_vec())],
        ok(),
        vec![("sleep_ms", b"20".to_vec())],
        vec![("alloc_mb", b"16".to_vec())],
        vec![("fail", b"250".to_vec())],
        ok(),
    ];
    let ids = produce(&mut conn, &stream, &entries).await;
    let faulty: Vec<String> = [1, 5, 7, 11].iter().map(|&i| ids[i].clone()).collect();

    let mut cfg = config("chaos", &stream, "g", &["c1"]);
    cfg.settings.call_deadline = Duration::from_millis(300);
    let run = HostRun::start(cfg);
    wait_drained(&mut conn, &stream, "g", faulty.len() as u64).await;
    let report = run.stop().await;

    let left = pending(&mut conn, &stream, "g").await;
    let expected: Vec<(String, String, u64)> = faulty.iter().map(|id| (id.clone(), "c1".to_string(), 1)).collect();
    assert_eq!(left, expected, "exactly the faulty entries stay pending, delivered once");
    let total = report.total();
    assert_eq!(total.acked, 8, "{total:?}");
    assert_eq!((total.retried, total.rejected, total.faulted), (2, 1, 2), "{total:?}");
}

/// Sandbox limits: a memory bomb over the cap, a stack overflow and an
/// oversized error text each fault only their entry (left pending, delivered
/// once), the instance is recycled and the next entries are handled.
#[tokio::test(flavor = "multi_thread")]
async fn limit_breakers_fault_only_their_entry() {
    let mut conn = redis().await;
    let stream = unique_stream("limits");
    let ok = || vec![("n", b"1".to_vec())];
    let entries = vec![
        vec![("alloc_mb", b"8".to_vec())],
        vec![("alloc_mb", b"64".to_vec())],
        ok(),
        vec![("recurse", b"10000000".to_vec())],
        ok(),
        vec![("big_error_kb", b"200".to_vec())],
        ok(),
    ];
    let ids = produce(&mut conn, &stream, &entries).await;
    let mut cfg = config("chaos", &stream, "g", &["c1"]);
    cfg.settings.limits.max_memory_bytes = 32 << 20;
    let run = HostRun::start(cfg);
    wait_drained(&mut conn, &stream, "g", 3).await;
    let report = run.stop().await;

    let left: Vec<(String, String, u64)> = pending(&mut conn, &stream, "g").await;
    let expected: Vec<(String, String, u64)> =
        [1, 3, 5].iter().map(|&i| (ids[i].clone(), "c1".to_string(), 1)).collect();
    assert_eq!(left, expected);
    let total = report.total();
    assert_eq!((total.acked, total.faulted, total.dead_lettered), (4, 3, 0), "{total:?}");
}

/// Runs one probe entry per (field, value) through chaos with `grants` and
/// returns each probe's outcome (the reject reason in its dead letter), in order.
async fn probe(name: &str, grants: host::Grants, probes: &[(&str, String)]) -> Vec<String> {
    let mut conn = redis().await;
    let stream = unique_stream(name);
    let entries: Vec<_> = probes.iter().map(|(field, value)| vec![(*field, value.clone().into_bytes())]).collect();
    produce(&mut conn, &stream, &entries).await;
    let mut cfg = config("chaos", &stream, "g", &["c1"]);
    cfg.settings.limits.grants = std::sync::Arc::new(grants);
    let run = HostRun::start(cfg);
    wait_drained(&mut conn, &stream, "g", 0).await;
    run.stop().await;
    dead_letters(&mut conn, &stream).await.iter().map(|d| d.meta("dlq:error").unwrap().to_string()).collect()
}

/// By default a plugin reads no host file, lists no directory, sees no
/// environment variable, opens no socket and gets no config value; a grant
/// opens exactly what it names (the network is never granted).
#[tokio::test(flavor = "multi_thread")]
async fn plugins_reach_only_what_is_granted() {
    let dir = std::env::temp_dir().join(format!("host-grant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rates.txt"), "EUR=1").unwrap();
    let redis_addr = redis_url().trim_start_matches("redis://").to_string();
    let probes = [
        ("read_file", dir.join("rates.txt").to_string_lossy().into_owned()),
        ("read_file", "/etc/hostname".to_string()),
        ("list_dir", "/".to_string()),
        ("list_dir", dir.to_string_lossy().into_owned()),
        ("env", "HOME".to_string()),
        ("env", "GREETING".to_string()),
        ("connect", redis_addr),
        ("config", "currency".to_string()),
    ];

    let denied = probe("nogrant", host::Grants::default(), &probes).await;
    assert_eq!(denied.len(), probes.len());
    for (outcome, probe) in denied.iter().zip(&probes) {
        assert!(outcome.starts_with("denied:"), "{probe:?} gave {outcome}");
    }

    let grants = host::Grants {
        dirs: vec![dir.clone()],
        env: vec![("GREETING".into(), "hi".into())],
        config: [("currency".to_string(), "EUR".to_string())].into(),
        ..Default::default()
    };
    let granted = probe("grant", grants, &probes).await;
    let outcomes: Vec<&str> = granted.iter().map(|o| o.split(':').next().unwrap()).collect();
    assert_eq!(outcomes, ["ok", "denied", "denied", "ok", "denied", "ok", "denied", "ok"], "{granted:#?}");
    assert_eq!(granted[0], "ok: EUR=1");
    assert_eq!(granted[3], "ok: rates.txt");
    assert_eq!(granted[5], "ok: hi");
    assert_eq!(granted[7], "ok: EUR");
    assert!(granted[6].contains("access-denied"), "{}", granted[6]);
}

/// `--max-fuel` meters a plugin: an endless loop runs out of fuel long before
/// its (here very long) deadline; only that entry stays pending, the log says
/// why, and the entries around it are handled within their budget.
#[tokio::test(flavor = "multi_thread")]
async fn fuel_limit_cuts_an_endless_loop() {
    let mut conn = redis().await;
    let stream = unique_stream("fuel");
    let ok = || vec![("n", b"1".to_vec())];
    let ids = produce(&mut conn, &stream, &[ok(), vec![("spin", Vec::new())], ok(), ok()]).await;
    let mut host = Host::run(&stream, "chaos", &["--max-fuel", "20000000", "--call-deadline-ms", "600000"]).start();
    host.wait_log(Duration::from_secs(60), "the fuel fault", |log| {
        log.iter().any(|l| l.contains("used up its fuel (20000000 units per call)"))
    });
    wait_drained(&mut conn, &stream, "g", 1).await;
    let left: Vec<(String, u64)> =
        pending(&mut conn, &stream, "g").await.into_iter().map(|(id, _, n)| (id, n)).collect();
    assert_eq!(left, vec![(ids[1].clone(), 1)], "only the endless loop stays pending, delivered once");
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");
    let handled = handled_ids(&host.log);
    assert!([0, 2, 3].iter().all(|&i| handled.contains(&ids[i])), "{handled:?}");
}
