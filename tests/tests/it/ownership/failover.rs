//! A worker killed with SIGKILL mid-run: its streams are taken over by the
//! others within lease TTL + one heartbeat + 1 s and finished in order,
//! nothing lost — with keyspace notifications on (the host turns them on),
//! and with them impossible (CONFIG renamed away: the scan alone).

use super::*;

/// Takeover times seen by the tests of this file, for the closing note.
fn report(label: &str, times: &mut [Duration]) {
    times.sort();
    let ms = |d: &Duration| d.as_millis();
    println!(
        "{label}: {} takeovers, min {} ms, median {} ms, max {} ms",
        times.len(),
        ms(&times[0]),
        ms(&times[times.len() / 2]),
        ms(times.last().unwrap())
    );
}

/// The ownership metrics of the survivors, summed, once every stream is done.
#[derive(Debug)]
struct Counted {
    claims: f64,
    expirations: f64,
    finished: f64,
    owned: f64,
    renewals: f64,
}

/// Runs 3 workers over `streams` slow streams on `redis`, kills one once it
/// owns streams mid-way, and checks the takeover; returns each takeover's
/// time and the survivors' metrics.
async fn kill_one_mid_run(redis: &PrivateRedis, test: &str, streams: usize) -> (Vec<Duration>, Counted) {
    let mut conn = redis.connect().await;
    let per_stream = 30;
    let names: Vec<String> = (0..streams).map(|i| data_stream(test, i)).collect();
    for stream in &names {
        fill(&mut conn, stream, per_stream, &[("wasi_sleep_ms", "20")], &[("lbs-end", "1")]).await;
    }
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let addrs = [port(), port(), port()];
    let mut workers: Vec<HostProcess> =
        (1..=3).map(|w| worker(&redis.url, &format!("w{w}"), &["--metrics", &addrs[w - 1]])).collect();
    for stream in &names {
        assign_raw(&mut conn, stream, "{}").await;
    }
    // Let the workers get going; the victim is the one owning the most streams.
    let start = Instant::now();
    while workers
        .iter_mut()
        .map(|w| {
            w.collect();
            seq_lines(&w.log).len()
        })
        .sum::<usize>()
        < 60
    {
        assert!(start.elapsed() < Duration::from_secs(30), "the workers are not handling entries");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v = (0..3).max_by_key(|&i| owned_in(&workers[i].log).len()).unwrap();
    let victim = workers.remove(v);
    let victim_id = format!("w{}", v + 1);
    let survivor_addrs: Vec<String> = (0..3).filter(|&i| i != v).map(|i| addrs[i].clone()).collect();
    let mut workers = std::iter::once(victim).chain(workers).collect::<Vec<_>>();
    // SAFETY: killing the worker this test started.
    unsafe { libc::kill(workers[0].child.id() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    let _ = workers[0].child.wait();
    // Its streams: the assignments still pending for it.
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(ASSIGNMENTS)
        .arg(SERVICE)
        .arg("-")
        .arg("+")
        .arg(1000)
        .arg(&victim_id)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut orphans = BTreeSet::new();
    for (id, ..) in rows {
        let entries: Vec<(String, Vec<(String, String)>)> =
            redis::cmd("XRANGE").arg(ASSIGNMENTS).arg(&id).arg(&id).query_async(&mut conn).await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&entries[0].1[0].1).unwrap();
        orphans.insert(json["DataStreamName"].as_str().unwrap().to_string());
    }
    assert!(!orphans.is_empty(), "the victim owned no stream when killed");
    let mut taken: BTreeMap<String, Duration> = BTreeMap::new();
    let limit = Duration::from_millis(LEASE_TTL_MS + HEARTBEAT_MS + 1000);
    while taken.len() < orphans.len() && killed.elapsed() < limit * 5 {
        for w in &mut workers[1..] {
            let seen = w.log.len();
            w.collect();
            for line in w.log[seen..].iter().filter(|l| l.contains("took over the stream")) {
                if let Some(stream) = field(line, "stream") {
                    taken.entry(stream).or_insert_with(|| killed.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let missing: Vec<_> = orphans.iter().filter(|s| !taken.contains_key(*s)).collect();
    assert!(missing.is_empty(), "streams of the killed worker never taken over: {missing:?}");
    let mut times: Vec<Duration> = orphans.iter().map(|s| taken[s]).collect();
    let slowest = *times.iter().max().unwrap();
    assert!(slowest <= limit, "a takeover took {slowest:?}, more than TTL + heartbeat + 1 s ({limit:?})");

    wait_assignments_done(&mut conn, streams as u64, Duration::from_secs(120)).await;
    let dead = service_dead_letters(&mut conn).await;
    assert!(dead.is_empty(), "order broken or entries lost: {} dead letters, first {:?}", dead.len(), dead.first());
    let seqs = last_seq(&mut conn, &names).await;
    assert!(seqs.iter().all(|s| *s == Some(per_stream as u64)), "every entry of every stream acked: {seqs:?}");
    assert!(leases_left(&mut conn).await.is_empty(), "leases left behind");
    let labels = [("assignments", ASSIGNMENTS), ("service", SERVICE)];
    // A worker sees its last streams end a moment after Redis does.
    poll(Duration::from_secs(5), "no stream owned", || {
        survivor_addrs
            .iter()
            .all(|a| crate::metrics::value(&crate::metrics::scrape(a), "host_owned_streams", &labels) == 0.0)
    });
    let mut counted = Counted { claims: 0.0, expirations: 0.0, finished: 0.0, owned: 0.0, renewals: 0.0 };
    for addr in &survivor_addrs {
        let samples = crate::metrics::scrape(addr);
        let v =
            |name: &str, extra: &[(&str, &str)]| crate::metrics::value(&samples, name, &[&labels[..], extra].concat());
        counted.claims += v("host_ownership_claims_total", &[]);
        counted.expirations += v("host_lease_expirations_total", &[]);
        counted.finished += v("host_streams_finished_total", &[("reason", "end_marker")]);
        counted.owned += v("host_owned_streams", &[]);
        counted.renewals += v("host_lease_renewal_duration_seconds_count", &[]);
    }
    assert_eq!(counted.claims, orphans.len() as f64, "every takeover counted: {counted:?}");
    assert_eq!(counted.owned, 0.0, "nothing owned once done: {counted:?}");
    assert!(counted.renewals > 0.0, "lease renewals timed: {counted:?}");
    for w in &mut workers[1..] {
        w.terminate();
    }
    times.sort();
    (times, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_streams_are_taken_over_within_the_lease_and_finished() {
    let redis = PrivateRedis::start();
    let (mut times, counted) = kill_one_mid_run(&redis, "kill", 45).await;
    report("kill -9, keyspace notifications on", &mut times);
    assert!(counted.expirations >= times.len() as f64, "each expired lease seen as an event: {counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keyspace_notifications_the_scan_still_takes_over() {
    // CONFIG renamed away: the host cannot turn notifications on.
    let redis = PrivateRedis::start_with(&["--rename-command", "CONFIG", ""]);
    let probe = worker(&redis.url, "probe", &[]);
    let mut probe = probe;
    probe.wait_log(Duration::from_secs(20), "the warning about notifications", |log| {
        log.iter().any(|l| l.contains("keyspace notifications are off and cannot be turned on"))
    });
    probe.terminate();
    let (mut times, counted) = kill_one_mid_run(&redis, "scan", 30).await;
    report("kill -9, notifications off (scan only)", &mut times);
    assert_eq!(counted.expirations, 0.0, "no events: the scan did it: {counted:?}");
}
