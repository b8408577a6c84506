//! Three workers, 200 data streams of 50 numbered entries each, assigned
//! through the load-balancer stream: every entry handled in order per
//! stream, every assignment acked once its stream is done, no lease left.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_handle_200_streams_in_order_and_leave_no_lease() {
    let redis = PrivateRedis::start();
    let mut conn = redis.connect().await;
    let (streams, per_stream) = (200, 50);
    let names: Vec<String> = (0..streams).map(|i| data_stream("scale", i)).collect();
    for (i, stream) in names.iter().enumerate() {
        // Half end with an end marker, half with the plugin saying it is done;
        // every 10th holds a retry at entry 20 (the entries after it wait).
        let extra: &[(&str, &str)] = if i < 3 { &[("log_info", "1")] } else { &[] };
        let last: &[(&str, &str)] = if i % 2 == 0 { &[] } else { &[("finish", "1")] };
        fill(&mut conn, stream, per_stream, extra, last).await;
        if i % 10 == 0 {
            let () = redis::cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("seq")
                .arg(per_stream + 1)
                .arg("fail_first")
                .arg(2)
                .query_async(&mut conn)
                .await
                .unwrap();
            fill_after(&mut conn, stream, per_stream + 2, per_stream + 5).await;
        }
        if i % 2 == 0 {
            let _: String =
                redis::cmd("XADD").arg(stream).arg("*").arg("lbs-end").arg("1").query_async(&mut conn).await.unwrap();
        }
    }
    let mut workers: Vec<HostProcess> = (1..=3).map(|w| worker(&redis.url, &format!("w{w}"), &[])).collect();
    // Assignments as the seed library's producers write them; a few through `host assign`.
    for (i, stream) in names.iter().enumerate() {
        if i < 3 {
            let out = Host::new(["assign", "--assignments", ASSIGNMENTS, "--stream", stream, "--redis", &redis.url])
                .args(["--info", r#"{"tenant":"t1"}"#])
                .output();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        } else {
            assign_raw(&mut conn, stream, &format!(r#"{{"n":{i}}}"#)).await;
        }
    }
    wait_assignments_done(&mut conn, streams as u64, Duration::from_secs(120)).await;

    let dead = service_dead_letters(&mut conn).await;
    assert!(dead.is_empty(), "order broken or entries lost: {} dead letters, first {:?}", dead.len(), dead.first());
    let seqs = last_seq(&mut conn, &names).await;
    for (i, (stream, seq)) in names.iter().zip(&seqs).enumerate() {
        let want = if i % 10 == 0 { per_stream + 5 } else { per_stream };
        assert_eq!(*seq, Some(want as u64), "{stream}: last sequence number acked");
        let g = group_info(&mut conn, stream, SERVICE).await.expect("the service's group on the data stream");
        // The plugin's finish leaves the entries after it (none here) unread.
        assert_eq!((g.pending, g.lag), (0, Some(0)), "{stream}: everything read and acked");
    }
    assert!(leases_left(&mut conn).await.is_empty(), "leases left behind");
    let mut owned = BTreeMap::new();
    for w in &mut workers {
        w.collect();
        for stream in owned_in(&w.log) {
            *owned.entry(stream).or_insert(0) += 1;
        }
    }
    assert_eq!(owned.len(), streams, "every stream owned");
    assert!(owned.values().all(|n| *n == 1), "no stream changed hands without a failure: {owned:?}");
    let per_worker: Vec<usize> = workers.iter().map(|w| owned_in(&w.log).len()).collect();
    assert!(per_worker.iter().all(|n| *n > 0), "every worker took streams: {per_worker:?}");
    let retried: usize =
        workers.iter().map(|w| w.log.iter().filter(|l| l.contains("held back for a retry")).count()).sum();
    assert_eq!(retried, streams / 10, "one retry held back per 10th stream");
    // The assignment's Info reaches the plugin with each entry.
    let info = format!(r#"info of {}: {{"tenant":"t1"}}"#, names[0]);
    assert!(workers.iter().flat_map(|w| &w.log).any(|l| l.contains(&info)), "no {info:?} in the logs");
    for w in &mut workers {
        let (status, _) = w.terminate();
        assert!(status.success(), "worker exits cleanly: {:#?}", w.log);
    }
    println!("per worker: {per_worker:?}");
}

/// Appends `seq=from..=to`.
async fn fill_after(conn: &mut redis::aio::MultiplexedConnection, stream: &str, from: usize, to: usize) {
    for i in from..=to {
        let _: String = redis::cmd("XADD").arg(stream).arg("*").arg("seq").arg(i).query_async(conn).await.unwrap();
    }
}
