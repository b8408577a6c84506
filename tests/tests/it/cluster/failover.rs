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

/// A slot left migrating (its stream key already moved to the importing
/// node, the slot not yet handed over): the source answers `ASK`, and the
/// hot reader follows it with `ASKING`, so entries added meanwhile are
/// handled before the migration ends (not after it, as a reader that only
/// retries would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_moved_mid_migration_is_read_through_ask() {
    let cluster = LocalCluster::start();
    let mut conn = cluster.connect().await;
    let base = "orders";
    let stream = host::partition_name(base, 0);
    let slot = host::slot(&stream);
    produce(&mut conn, base, 1, 100, |_| Vec::new()).await;
    let url = cluster.url();
    let mut host = chaos_host(&url, base, 1, &[]);
    wait_drained_all(&mut conn, base, 1, "g", Duration::from_secs(60)).await;

    let source = cluster.master_of(slot);
    let ranges = slot_ranges(&cluster);
    let target =
        cluster.nodes.iter().find(|n| n.port == ranges.iter().find(|r| r.2 != source.port).unwrap().2).unwrap();
    let (source_id, target_id) = (cluster.id_of(source), cluster.id_of(target));
    let (mut at_source, mut at_target) = (source.conn(), target.conn());
    let _: () =
        redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("IMPORTING").arg(&source_id).query(&mut at_target).unwrap();
    let _: () =
        redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("MIGRATING").arg(&target_id).query(&mut at_source).unwrap();
    let keys: Vec<String> =
        redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(1000).query(&mut at_source).unwrap();
    assert!(keys.contains(&stream), "{keys:?}");
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(target.port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys)
        .query(&mut at_source)
        .unwrap();
    // The slot stays migrating: entries added now (on the importing node,
    // as a client told ASK adds them) must be handled all the same.
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.cmd("ASKING").ignore().cmd("XADD").arg(&stream).arg("*").arg("n").arg(i);
    }
    let added: Vec<String> = pipe.query(&mut at_target).unwrap();
    let new_ids: BTreeSet<String> = added.into_iter().collect();
    let start = Instant::now();
    let mut handled = BTreeSet::new();
    while !new_ids.is_subset(&handled) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of the 50 entries added mid-migration handled within 30 s",
            new_ids.intersection(&handled).count()
        );
        host.collect();
        handled = handled_ids(&host.log).into_iter().collect();
        std::thread::sleep(Duration::from_millis(50));
    }
    let asked = host.log.iter().filter(|l| l.contains("Ask: ")).count();
    for node in cluster.nodes.iter().filter(|n| n.alive()) {
        let _: redis::RedisResult<()> =
            redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("NODE").arg(&target_id).query(&mut node.conn());
    }
    wait_drained_all(&mut conn, base, 1, "g", Duration::from_secs(60)).await;
    let (status, _) = host.terminate();
    assert!(status.success());
    assert!(asked > 0, "the reader was told ASK: {:#?}", &host.log[host.log.len().saturating_sub(20)..]);
    assert_eq!(handled_ids(&host.log).into_iter().collect::<BTreeSet<_>>().len(), 150, "every entry handled");
}
