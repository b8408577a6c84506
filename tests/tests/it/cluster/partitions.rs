//! A partitioned stream on a cluster, two hosts, faults mixed in: nothing
//! lost, the poison entries dead-lettered in their partition, the first
//! deliveries of each partition in stream order, and the inspection
//! commands summing the partitions.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

const PARTITIONS: u32 = 6;
const ENTRIES: usize = 20_000;

/// The faults of entry i: a retry, a trap, a reject (dead-lettered at once).
fn faults(i: usize) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    if i.is_multiple_of(97) {
        fields.push(("fail_first".to_string(), "2".to_string()));
    }
    if i.is_multiple_of(331) {
        fields.push(("trap_first".to_string(), "2".to_string()));
    }
    if i.is_multiple_of(211) {
        fields.push(("reject".to_string(), String::new()));
    }
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_stream_with_faults_is_consumed_by_two_hosts_on_a_cluster() {
    let cluster = LocalCluster::start();
    let mut conn = cluster.connect().await;
    let base = "orders";
    let produced = produce(&mut conn, base, PARTITIONS, ENTRIES, faults).await;
    assert_eq!(produced.total(), ENTRIES);
    assert!(produced.ids.iter().all(|ids| !ids.is_empty()), "every partition gets entries");

    let url = cluster.url();
    let addrs: Vec<String> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()).collect();
    let mut hosts = [
        chaos_host(&url, base, PARTITIONS, &["--metrics", &addrs[0]]),
        chaos_host(&url, base, PARTITIONS, &["--metrics", &addrs[1]]),
    ];
    wait_drained_all(&mut conn, base, PARTITIONS, "g", Duration::from_secs(180)).await;
    // /metrics on a cluster: each partition's group gauges, and the acks of both hosts.
    let mut acked = 0.0;
    for addr in &addrs {
        let samples = crate::metrics::scrape(addr);
        for p in 0..PARTITIONS {
            let stream = host::partition_name(base, p);
            let labels = [("stream", stream.as_str()), ("group", "g")];
            let gauges: Vec<_> =
                samples.iter().filter(|(n, l, _)| n == "host_group_lag" && l.get("stream") == Some(&stream)).collect();
            assert_eq!(gauges.len(), 1, "one lag gauge for {stream}");
            assert_eq!(crate::metrics::value(&samples, "host_group_lag", &labels), 0.0);
            assert_eq!(crate::metrics::value(&samples, "host_group_pending", &labels), 0.0);
            acked += samples
                .iter()
                .filter(|(n, l, _)| n == "host_acked_total" && l.get("stream") == Some(&stream))
                .map(|s| s.2)
                .sum::<f64>();
        }
    }
    let logs: Vec<Vec<String>> = hosts
        .iter_mut()
        .map(|host| {
            let (status, _) = host.terminate();
            assert!(status.success(), "host exits cleanly: {:#?}", &host.log[host.log.len().saturating_sub(30)..]);
            host.log.clone()
        })
        .collect();

    // Dead letters: exactly the rejected entries, each in its own partition's dead-letter stream.
    let rejected: BTreeSet<&String> =
        produced.fields.iter().filter(|(_, f)| f.iter().any(|(n, _)| n == "reject")).map(|(id, _)| id).collect();
    let mut dead = BTreeSet::new();
    for p in 0..PARTITIONS {
        let dlq = host::partition_name("orders:dlq", p);
        assert_eq!(host::slot(&dlq), host::slot(&host::partition_name(base, p)), "{dlq} shares its partition's slot");
        let records: Vec<(String, BTreeMap<String, String>)> =
            redis::cmd("XRANGE").arg(&dlq).arg("-").arg("+").query_async(&mut conn).await.unwrap();
        for (_, record) in records {
            let id = record["dlq:id"].clone();
            assert_eq!(produced.partition_of_id(&id), Some(p as usize), "dead letter {id} is in its partition's dlq");
            assert!(dead.insert(id), "one dead letter per entry");
        }
    }
    assert_eq!(dead.iter().collect::<BTreeSet<_>>(), rejected, "dead letters are the rejected entries");

    // First deliveries: each entry once in all, in stream order per partition within each host.
    let mut seen = BTreeSet::new();
    for log in &logs {
        let mut last: BTreeMap<usize, usize> = BTreeMap::new();
        for (p, k) in first_deliveries(log) {
            if let Some(before) = last.insert(p, k) {
                assert!(k > before, "partition {p}: first delivery of #{k} after #{before} on one host");
            }
            assert!(seen.insert((p, k)), "partition {p} entry #{k} first-delivered twice");
        }
    }
    assert_eq!(seen.len(), ENTRIES, "every entry was first-delivered once");
    // Every entry not rejected was handled Ok (at least once).
    let handled: BTreeSet<String> = logs.iter().flat_map(|log| handled_ids(log)).collect();
    let expected_ok = ENTRIES - rejected.len();
    assert_eq!(handled.len(), expected_ok, "every entry but the rejected ones was handled Ok");
    assert!(acked >= expected_ok as f64, "the hosts' metrics count {acked} acks of {expected_ok} entries handled Ok");

    // The inspection commands sum the partitions.
    let info = Host::new(["info", "--stream", base, "--partitions", "6", "--redis", &url]).logging().output();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains(&format!("{ENTRIES} entries in all")), "{text}");
    assert!(text.contains("group g: 0 pending, lag 0 in all"), "{text}");
    let dlq = Host::new(["dlq", "list", "--stream", base, "--partitions", "6", "--redis", &url]).logging().output();
    let text = String::from_utf8_lossy(&dlq.stdout);
    assert!(text.contains(&format!("{} in all", rejected.len())), "{text}");
    let pending = Host::new(["pending", "--stream", base, "--group", "g", "--partitions", "6", "--redis", &url])
        .logging()
        .output();
    assert!(String::from_utf8_lossy(&pending.stdout).contains("0 pending in all"));

    // `host dlq requeue --partitions --id` finds the partition holding the id.
    let first_dead: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(host::partition_name(
            "orders:dlq",
            produced.partition_of_id(rejected.iter().next().unwrap()).unwrap() as u32,
        ))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let requeue =
        Host::new(["dlq", "requeue", "--stream", base, "--partitions", "6", "--redis", &url, "--id", &first_dead[0].0])
            .logging()
            .output();
    assert!(String::from_utf8_lossy(&requeue.stdout).contains("requeued 1 entries"), "{requeue:?}");
    let unknown = Host::new(["dlq", "requeue", "--stream", base, "--partitions", "6", "--redis", &url, "--id", "1-1"])
        .logging()
        .output();
    assert!(
        !unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("no entry 1-1"),
        "{unknown:?}"
    );

    // `host produce --partition-key` routes as the consumers' partitions expect.
    let out =
        Host::new(["produce", "--stream", base, "--partitions", "6", "--partition-key", "customer", "--redis", &url])
            .arg("customer=c42")
            .logging()
            .output();
    let expected = host::partition_name(base, host::partition_of(b"c42", PARTITIONS));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{expected} ")), "{out:?}");
    let missing =
        Host::new(["produce", "--stream", base, "--partitions", "6", "--partition-key", "customer", "--redis", &url])
            .arg("other=1")
            .logging()
            .output();
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no field \"customer\""));
}
