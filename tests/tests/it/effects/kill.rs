//! Hosts killed with SIGKILL while the analytics plugin counts orders.

use super::*;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Totals recomputed from the stream: count and revenue in cents per type,
/// over the entries that were not dead-lettered; and the paid ones' ids.
fn recompute(
    entries: &[(String, HashMap<String, String>)],
    dead: &HashSet<String>,
) -> (BTreeMap<String, i64>, HashSet<String>) {
    let mut totals = BTreeMap::new();
    let mut paid = HashSet::new();
    for (id, f) in entries.iter().filter(|(id, _)| !dead.contains(id)) {
        let (units, cents) = f["amount"].split_once('.').unwrap();
        let cents: i64 = units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap();
        *totals.entry(format!("count:{}", f["type"])).or_insert(0) += 1;
        *totals.entry(format!("revenue:{}", f["type"])).or_insert(0) += cents;
        if f["type"] == "order.paid" {
            paid.insert(id.clone());
        }
    }
    (totals, paid)
}

/// 10 000 orders, two host processes, each killed with SIGKILL in turn
/// while consuming and started again: afterwards the totals equal the sums
/// recomputed from XRANGE exactly, and `:paid` holds each paid order once.
#[tokio::test(flavor = "multi_thread")]
async fn totals_stay_exact_through_kill_9() {
    const ORDERS: usize = 10_000;
    let mut conn = redis().await;
    let s = unique_stream("effects-kill");
    let types = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let input: Vec<_> = (0..ORDERS)
        .map(|i| {
            let amount =
                if i % 397 == 5 { "1.2.3".to_string() } else { format!("{}.{:02}", next() % 500, next() % 100) };
            fields(&[
                ("type", types[next() % 4].to_string()),
                ("order_id", format!("o-{i}")),
                ("customer", "c".to_string()),
                ("amount", amount),
            ])
        })
        .collect();
    for chunk in input.chunks(1000) {
        produce(&mut conn, &s, chunk).await;
    }
    let totals_key = format!("{s}:totals");
    let (keys, streams) = (totals_key.clone(), format!("{s}:paid"));
    let start = |n: usize| {
        let consumer = format!("worker-{n}");
        let extra = [
            "--grant-key",
            &keys,
            "--grant-stream",
            &streams,
            "--consumer",
            &consumer,
            "--count",
            "50",
            "--min-idle-ms",
            "1000",
            "--reap-interval-ms",
            "200",
        ];
        Host::run(&s, "analytics", &extra).start()
    };
    let mut hosts = [start(0), start(1)];
    let mut log = Vec::new();
    let counted = |conn: &mut MultiplexedConnection| {
        let mut conn = conn.clone();
        let key = totals_key.clone();
        async move {
            let totals: HashMap<String, i64> = conn.hgetall(&key).await.unwrap();
            totals.iter().filter(|(k, _)| k.starts_with("count:")).map(|(_, v)| *v).sum::<i64>()
        }
    };
    let mut kills = 0;
    for (round, threshold) in [1500, 3500, 5500, 7500].into_iter().enumerate() {
        let started = std::time::Instant::now();
        while counted(&mut conn).await < threshold {
            assert!(started.elapsed() < MINUTE * 2, "no progress past {threshold}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let victim = &mut hosts[round % 2];
        victim.child.kill().unwrap();
        victim.child.wait().unwrap();
        victim.collect();
        log.append(&mut victim.log);
        kills += 1;
        hosts[round % 2] = start(round % 2);
    }
    wait_drained(&mut conn, &s, "g", 0).await;
    for host in &mut hosts {
        host.terminate();
        log.append(&mut host.log);
    }

    let entries: Vec<(String, HashMap<String, String>)> = conn.xrange_all(&s).await.unwrap();
    assert_eq!(entries.len(), ORDERS);
    let dead: HashSet<String> =
        dead_letters(&mut conn, &s).await.iter().map(|d| d.meta("dlq:id").unwrap().to_string()).collect();
    let (want, want_paid) = recompute(&entries, &dead);
    let totals: BTreeMap<String, i64> = conn.hgetall(&totals_key).await.unwrap();
    assert_eq!(totals, want, "totals differ from the sums recomputed from XRANGE");
    let paid: Vec<(String, HashMap<String, String>)> = conn.xrange_all(format!("{s}:paid")).await.unwrap();
    let sources: Vec<&String> = paid.iter().map(|(_, f)| &f["source"]).collect();
    let unique: HashSet<String> = sources.iter().map(|s| s.to_string()).collect();
    assert_eq!(sources.len(), unique.len(), "a paid order emitted twice");
    assert_eq!(unique, want_paid);
    let refused = log.iter().filter(|l| l.contains("effects not applied: the entry is now")).count();
    let redelivered = log.iter().filter(|l| l.contains(" counted on delivery ")).count();
    eprintln!(
        "kill -9: {ORDERS} produced, {kills} kills, {} dead-lettered, {} counted, {} paid emitted, \
         {redelivered} counted on a redelivery, {refused} commits refused as not owner",
        dead.len(),
        totals.iter().filter(|(k, _)| k.starts_with("count:")).map(|(_, v)| v).sum::<i64>(),
        paid.len()
    );
}
