//! Faults of the cluster itself while two hosts consume: a master killed
//! (its replica promoted; the hosts follow), and a partition's slot
//! resharded to another master. Afterwards every entry still in the stream
//! is acked or pending-free, none lost; what repeats is counted.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const PARTITIONS: u32 = 6;

/// Entries that take a little while each (a WASI sleep, no CPU), so
/// consuming is still under way when the cluster is disturbed.
fn slow(_: usize) -> Vec<(String, String)> {
    vec![("wasi_sleep_ms".to_string(), "4".to_string())]
}

/// Collects the hosts' logs until a `handled` line names one of `ids`;
/// returns when it came.
fn wait_handled(hosts: &mut [HostProcess], ids: &BTreeSet<String>, limit: Duration) -> Instant {
    let start = Instant::now();
    loop {
        for host in hosts.iter_mut() {
            let seen = host.log.len();
            host.collect();
            if handled_ids(&host.log[seen..]).iter().any(|id| ids.contains(id)) {
                return Instant::now();
            }
        }
        assert!(start.elapsed() < limit, "no entry of the disturbed partitions handled within {} s", limit.as_secs());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn acked_so_far(hosts: &mut [HostProcess]) -> usize {
    hosts
        .iter_mut()
        .map(|h| {
            h.collect();
            handled_ids(&h.log).len()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_run_fails_over_and_every_entry_present_is_acked() {
    let mut cluster = LocalCluster::start();
    let mut conn = cluster.connect().await;
    let base = "orders";
    let entries = 12_000;
    let produced = produce(&mut conn, base, PARTITIONS, entries, slow).await;
    assert_eq!(produced.total(), entries);
    // Kill the master of partition 0 (and whatever else it serves).
    let victim = cluster.master_of(host::slot(&host::partition_name(base, 0))).port;
    // The hosts are pointed at the very node that dies: they must carry on
    // through the others they learnt of.
    let url = format!("redis+cluster://127.0.0.1:{victim}");
    let mut hosts = vec![chaos_host(&url, base, PARTITIONS, &[]), chaos_host(&url, base, PARTITIONS, &[])];
    while acked_so_far(&mut hosts) < entries / 5 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let victims: Vec<String> = (0..PARTITIONS)
        .map(|p| host::partition_name(base, p))
        .filter(|stream| cluster.master_of(host::slot(stream)).port == victim)
        .collect();
    for host in hosts.iter_mut() {
        host.collect();
    }
    let seen: Vec<usize> = hosts.iter().map(|h| h.log.len()).collect();
    let killed = Instant::now();
    cluster.kill(victim);
    // Resumed: a consumer of a partition the dead master served says Redis
    // answers again (its first successful step after the errors).
    let resumed_after = loop {
        let mut resumed = false;
        for (host, seen) in hosts.iter_mut().zip(&seen) {
            host.collect();
            resumed |= host.log[*seen..]
                .iter()
                .any(|line| line.contains("redis answers again") && victims.iter().any(|s| line.contains(s.as_str())));
        }
        if resumed {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "consumption of {victims:?} did not resume within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    cluster.wait_healthy(Duration::from_secs(30)).expect("the replica was promoted");
    let healthy_after = killed.elapsed();
    let mut conn = cluster.connect().await;
    wait_drained_all(&mut conn, base, PARTITIONS, "g", Duration::from_secs(120)).await;

    let mut present = 0;
    let mut dead = 0;
    for p in 0..PARTITIONS {
        let stream = host::partition_name(base, p);
        let len: usize = redis::cmd("XLEN").arg(&stream).query_async(&mut conn).await.unwrap();
        present += len;
        let dlq: usize =
            redis::cmd("XLEN").arg(host::partition_name("orders:dlq", p)).query_async(&mut conn).await.unwrap();
        dead += dlq;
    }
    let logs: Vec<Vec<String>> = hosts
        .iter_mut()
        .map(|host| {
            let (status, _) = host.terminate();
            assert!(
                status.success(),
                "host survives the failover: {:#?}",
                &host.log[host.log.len().saturating_sub(30)..]
            );
            host.log.clone()
        })
        .collect();
    let mut handled: BTreeMap<String, usize> = BTreeMap::new();
    for id in logs.iter().flat_map(|log| handled_ids(log)) {
        *handled.entry(id).or_default() += 1;
    }
    let duplicates: usize = handled.values().map(|n| n - 1).sum();
    let lost_writes = entries - present;
    eprintln!(
        "failover: produced {entries}, present after failover {present} (lost with the master: {lost_writes}), \
         handled ok {} distinct, duplicates {duplicates}, dead-lettered {dead}, pending 0, \
         consumption of the killed master's partitions resumed {} ms after kill -9 \
         (cluster healthy again by {} ms)",
        handled.len(),
        resumed_after.as_millis(),
        healthy_after.as_millis()
    );
    // Every entry still in the stream was delivered and acked (pending 0,
    // lag 0 above); each was handled Ok at least once, or dead-lettered.
    assert_eq!(dead, 0, "no entry here fails: none may be dead-lettered");
    let present_ids: BTreeSet<String> = {
        let mut ids = BTreeSet::new();
        for p in 0..PARTITIONS {
            let range: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
                .arg(host::partition_name(base, p))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
            ids.extend(range.into_iter().map(|(id, _)| id));
        }
        ids
    };
    let unhandled: Vec<_> = present_ids.iter().filter(|id| !handled.contains_key(*id)).take(5).collect();
    assert!(unhandled.is_empty(), "entries in the stream never handled: {unhandled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_a_partitions_slot_while_consuming_loses_nothing() {
    let cluster = LocalCluster::start();
    let mut conn = cluster.connect().await;
    let base = "orders";
    let entries = 9_000;
    let produced = produce(&mut conn, base, PARTITIONS, entries, slow).await;
    // The partition whose slot comes first in its master's range: moving the
    // master's lowest slots up to it moves few slots.
    let ranges = slot_ranges(&cluster);
    let (p, (first, _, source)) = (0..PARTITIONS)
        .map(|p| {
            let slot = host::slot(&host::partition_name(base, p));
            (p, *ranges.iter().find(|(a, b, _)| *a <= slot && slot <= *b).unwrap())
        })
        .min_by_key(|(p, (a, _, _))| host::slot(&host::partition_name(base, *p)) - a)
        .unwrap();
    let slot = host::slot(&host::partition_name(base, p));
    let target = ranges.iter().find(|(_, _, port)| *port != source).unwrap().2;
    let node = |port: u16| cluster.nodes.iter().find(|n| n.port == port).unwrap();
    let url = cluster.url();
    let mut hosts = vec![chaos_host(&url, base, PARTITIONS, &[]), chaos_host(&url, base, PARTITIONS, &[])];
    while acked_so_far(&mut hosts) < entries / 5 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let moved = Command::new("redis-cli")
        .args(["--cluster", "reshard", &node(source).addr()])
        .args(["--cluster-from", &cluster.id_of(node(source)), "--cluster-to", &cluster.id_of(node(target))])
        .args(["--cluster-slots", &(slot - first + 1).to_string(), "--cluster-yes"])
        .output()
        .expect("redis-cli runs");
    assert!(moved.status.success(), "reshard: {}", String::from_utf8_lossy(&moved.stdout));
    assert_eq!(cluster.master_of(slot).port, target, "partition {p}'s slot {slot} moved");
    let on_moved: BTreeSet<String> = produced.ids[p as usize].iter().cloned().collect();
    wait_handled(&mut hosts, &on_moved, Duration::from_secs(60));
    wait_drained_all(&mut conn, base, PARTITIONS, "g", Duration::from_secs(120)).await;
    let mut handled = BTreeSet::new();
    let mut redirected = 0;
    for host in hosts.iter_mut() {
        let (status, _) = host.terminate();
        assert!(status.success(), "host survives the reshard: {:#?}", &host.log[host.log.len().saturating_sub(30)..]);
        handled.extend(handled_ids(&host.log));
        redirected += host.log.iter().filter(|l| l.contains("Moved: ") || l.contains("Ask: ")).count();
    }
    eprintln!(
        "reshard: moved {} slots (partition {p}'s slot {slot}); {redirected} redirections logged",
        slot - first + 1
    );
    assert_eq!(handled.len(), entries, "every entry handled Ok, none lost");
    assert!(redirected > 0, "a reader of partition {p} was told MOVED and followed it");
}

use std::process::Command;

/// `CLUSTER SLOTS` of a live node: (first, last, master port).
fn slot_ranges(cluster: &LocalCluster) -> Vec<(u16, u16, u16)> {
    let mut conn = cluster.nodes[0].conn();
    let reply: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut conn)
        .map(|rows: Vec<redis::Value>| {
            rows.into_iter()
                .filter_map(|row| {
                    let redis::Value::Array(items) = row else { return None };
                    let int = |v: &redis::Value| if let redis::Value::Int(i) = v { Some(*i as u16) } else { None };
                    let redis::Value::Array(master) = &items[2] else { return None };
                    let host = match &master[0] {
                        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        _ => return None,
                    };
                    Some((int(&items[0])?, int(&items[1])?, (host, int(&master[1])?)))
                })
                .collect()
        })
        .unwrap();
    reply.into_iter().map(|(a, b, (_, port))| (a, b, port)).collect()
}
