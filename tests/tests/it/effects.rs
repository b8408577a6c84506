//! Effects committed with the ack (contract 0.1.1): applied once when the
//! verdict is ok, never for retry / reject / trap / deadline / over the
//! caps; not applied when a peer owns the entry; nothing half-applied when
//! one write cannot be (WRONGTYPE, a non-integer counter); nothing applied
//! when the connection is cut mid-commit; keys and streams confined to the
//! grants; per entry in the batch world; and exact totals after kill -9.

use crate::metrics::{scrape, value};
use crate::support::*;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn fields(pairs: &[(&'static str, String)]) -> Vec<(&'static str, Vec<u8>)> {
    pairs.iter().map(|(n, v)| (*n, v.clone().into_bytes())).collect()
}

async fn get(conn: &mut MultiplexedConnection, key: &str) -> Option<String> {
    conn.get(key).await.unwrap()
}

/// Waits until `stream`'s group `g` has read everything, holds `pending`
/// entries and `dead` dead letters.
async fn settled(conn: &mut MultiplexedConnection, stream: &str, pending: u64, dead: u64) {
    let start = std::time::Instant::now();
    loop {
        let info = group_info(conn, stream, "g").await;
        let dlq = xlen(conn, &format!("{stream}:dlq")).await;
        if info.as_ref().is_some_and(|i| i.lag == Some(0) && i.pending == pending) && dlq == dead {
            return;
        }
        assert!(start.elapsed() < MINUTE, "not settled: {info:?}, {dlq} dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every verdict but ok drops the effects; the delivery that ends ok applies
/// them once. Over the cap per entry is a fault. Metrics count what was committed.
#[tokio::test(flavor = "multi_thread")]
async fn effects_apply_once_on_ok_and_never_for_other_verdicts() {
    let mut conn = redis().await;
    let s = unique_stream("effects-verdicts");
    let key = |name: &str| format!("{s}:fx:{name}");
    let input = [
        fields(&[("incr", key("ok"))]),
        fields(&[("incr", key("retry")), ("fail_first", "3".into())]),
        fields(&[("incr", key("trap")), ("trap_first", "2".into())]),
        fields(&[("incr", key("spin")), ("spin_first", "2".into())]),
        fields(&[("incr", key("reject")), ("reject", String::new())]),
        fields(&[("effects", "1001".into())]),
        fields(&[("emit", key("out")), ("incr", key("emitted"))]),
        fields(&[("set", key("set"))]),
    ];
    let ids = produce(&mut conn, &s, &input).await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let grant = format!("{s}:*");
    let extra = [
        "--grant-key",
        &grant,
        "--grant-stream",
        &grant,
        "--min-idle-ms",
        "300",
        "--reap-interval-ms",
        "100",
        "--call-deadline-ms",
        "500",
        "--max-deliveries",
        "4",
        "--metrics",
        &addr,
    ];
    let mut host = Host::run(&s, "chaos", &extra).start();
    settled(&mut conn, &s, 0, 2).await;
    host.wait_log(MINUTE, "the metrics endpoint", |log| log.iter().any(|l| l.contains("metrics on http://")));

    for name in ["ok", "retry", "trap", "spin", "emitted"] {
        assert_eq!(get(&mut conn, &key(name)).await.as_deref(), Some("1"), "{name}: applied exactly once");
    }
    assert_eq!(get(&mut conn, &key("reject")).await, None, "a rejected entry's effects are dropped");
    assert_eq!(get(&mut conn, &format!("{s}:flood")).await, None, "over the cap: nothing applied");
    assert_eq!(get(&mut conn, &key("set")).await.as_deref(), Some(ids[7].as_str()));
    let out: Vec<(String, HashMap<String, String>)> = conn.xrange_all(key("out")).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1["source"], ids[6]);
    let dead = dead_letters(&mut conn, &s).await;
    let error_of = |id: &str| dead.iter().find(|d| d.meta("dlq:id") == Some(id)).and_then(|d| d.meta("dlq:error"));
    assert!(error_of(&ids[4]).unwrap().contains("reject requested"));
    let flood = error_of(&ids[5]).unwrap();
    assert!(flood.contains("more effects than allowed per entry (1000 effects"), "{flood}");

    let samples = scrape(&addr);
    let committed = |kind| value(&samples, "host_effects_committed_total", &[("stream", &s), ("kind", kind)]);
    assert_eq!((committed("incr"), committed("emit"), committed("set")), (5.0, 1.0, 1.0));
    host.terminate();
}

/// A slow handler whose entry a peer took meanwhile: its effects are not
/// applied (the peer's delivery decides), and the peer's are, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_claimed_the_entry_decides_and_effects_apply_once() {
    let mut conn = redis().await;
    let s = unique_stream("effects-peer");
    let key = format!("{s}:fx:h");
    let ids = produce(
        &mut conn,
        &s,
        &[fields(&[("hincr", key.clone()), ("log_line", "started".into()), ("sleep_ms", "1500".into())])],
    )
    .await;
    let grant = format!("{s}:*");
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let slow = ["--grant-key", &grant, "--consumer", "slow", "--min-idle-ms", "600000", "--metrics", &addr];
    let mut host = Host::run(&s, "chaos", &slow).start();
    host.wait_log(MINUTE, "the handler to start", |log| log.iter().any(|l| l.contains("started")));
    let claimed: Vec<String> = redis::cmd("XCLAIM")
        .arg(&s)
        .arg("g")
        .arg("peer")
        .arg(0)
        .arg(&ids[0])
        .arg("JUSTID")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(claimed, ids[..1]);
    host.wait_log(MINUTE, "the commit refused", |log| {
        log.iter().any(|l| l.contains("effects not applied: the entry is now owned by peer"))
    });
    let applied: Option<String> = conn.hget(&key, &ids[0]).await.unwrap();
    assert_eq!(applied, None, "the slow consumer's effects were applied although a peer owned the entry");
    let refused = value(&scrape(&addr), "host_effect_commits_refused_total", &[("stream", &s), ("kind", "not_owner")]);
    assert_eq!(refused, 1.0);
    host.terminate();

    let peer = ["--grant-key", &grant, "--consumer", "peer", "--min-idle-ms", "600000"];
    let mut peer = Host::run(&s, "chaos", &peer).start();
    wait_drained(&mut conn, &s, "g", 0).await;
    let applied: Option<String> = conn.hget(&key, &ids[0]).await.unwrap();
    assert_eq!(applied.as_deref(), Some("1"));
    peer.terminate();
}

/// An entry one of whose writes cannot be applied gets none of them (the
/// others are checked first, not written), stays pending with a clear
/// error, and is dead-lettered at its last delivery; an entry beside it in
/// the same commit is applied.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_redis_would_refuse_applies_nothing_and_leaves_the_entry_pending() {
    let mut conn = redis().await;
    let s = unique_stream("effects-wrongtype");
    let key = |name: &str| format!("{s}:fx:{name}");
    let _: () = conn.rpush(key("list"), "x").await.unwrap();
    let _: () = conn.set(key("text"), "abc").await.unwrap();
    let ids = produce(
        &mut conn,
        &s,
        &[
            fields(&[("hincr", key("good")), ("incr", key("list"))]),
            fields(&[("incr", key("text"))]),
            fields(&[("hincr", key("beside"))]),
        ],
    )
    .await;
    let grant = format!("{s}:*");
    let extra = ["--grant-key", &grant, "--min-idle-ms", "400", "--reap-interval-ms", "100", "--max-deliveries", "2"];
    let mut host = Host::run(&s, "chaos", &extra).start();
    host.wait_log(MINUTE, "the refusal", |log| {
        log.iter().any(|l| l.contains("left pending: effects refused by Redis, nothing applied: WRONGTYPE"))
    });
    let pending: Vec<String> = pending(&mut conn, &s, "g").await.into_iter().map(|(id, ..)| id).collect();
    assert!(pending.contains(&ids[0]), "the refused entry is not pending: {pending:?}");
    settled(&mut conn, &s, 0, 2).await;
    let good: HashMap<String, String> = conn.hgetall(key("good")).await.unwrap();
    assert!(good.is_empty(), "half-applied: {good:?}");
    let beside: Option<String> = conn.hget(key("beside"), &ids[2]).await.unwrap();
    assert_eq!(beside.as_deref(), Some("1"));
    let dead = dead_letters(&mut conn, &s).await;
    let error_of = |id: &str| dead.iter().find(|d| d.meta("dlq:id") == Some(id)).unwrap().meta("dlq:error").unwrap();
    assert!(error_of(&ids[0]).contains(&format!("WRONGTYPE {} holds a list, not a string", key("list"))));
    assert!(error_of(&ids[1]).contains("does not hold an integer"), "{}", error_of(&ids[1]));
    host.terminate();
}

/// Nothing is granted by default: effects and state calls on keys and
/// streams outside the grants are errors the plugin sees, naming the key and
/// the grant, and the host logs them. Granted, `get` reads and `seen`
/// records once.
#[tokio::test(flavor = "multi_thread")]
async fn keys_and_streams_outside_the_grants_are_refused() {
    let mut conn = redis().await;
    let s = unique_stream("effects-grants");
    let granted = format!("{s}:g:");
    let _: () = conn.set(format!("{granted}v"), "hello").await.unwrap();
    let input = [
        fields(&[("incr", format!("{granted}n"))]),
        fields(&[("emit", format!("{granted}out"))]),
        fields(&[("get", format!("{granted}v"))]),
    ];
    let ids = produce(&mut conn, &s, &input).await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut host = Host::run(&s, "chaos", &["--metrics", &addr]).start();
    settled(&mut conn, &s, 0, 3).await;
    let dead = dead_letters(&mut conn, &s).await;
    let error_of = |id: &str| dead.iter().find(|d| d.meta("dlq:id") == Some(id)).unwrap().meta("dlq:error").unwrap();
    let by_default = "is not granted to this plugin (grant.keys allows nothing: none are granted by default";
    assert!(error_of(&ids[0]).contains(&format!("key \"{granted}n\" {by_default}")), "{}", error_of(&ids[0]));
    assert!(error_of(&ids[1]).contains(&format!("stream \"{granted}out\" is not granted")), "{}", error_of(&ids[1]));
    assert!(error_of(&ids[2]).starts_with("denied: key"), "{}", error_of(&ids[2]));
    host.wait_log(MINUTE, "the denial logged", |log| log.iter().any(|l| l.contains("denied: key")));
    let samples = scrape(&addr);
    let denied = |call| value(&samples, "host_grants_denied_total", &[("plugin", "chaos"), ("call", call)]);
    assert!(denied("incr") >= 1.0 && denied("emit") >= 1.0 && denied("get") >= 1.0, "{samples:?}");
    host.terminate();
    assert_eq!(get(&mut conn, &format!("{granted}n")).await, None);

    let s = unique_stream("effects-granted");
    let input = [
        fields(&[("get", format!("{granted}v"))]),
        fields(&[("seen", format!("{granted}once"))]),
        fields(&[("seen", format!("{granted}once"))]),
        fields(&[("get", format!("{s}:elsewhere"))]),
    ];
    let ids = produce(&mut conn, &s, &input).await;
    let pattern = format!("{granted}*");
    let mut host = Host::run(&s, "chaos", &["--grant-key", &pattern]).start();
    settled(&mut conn, &s, 0, 4).await;
    let dead = dead_letters(&mut conn, &s).await;
    let error_of = |id: &str| dead.iter().find(|d| d.meta("dlq:id") == Some(id)).unwrap().meta("dlq:error").unwrap();
    assert_eq!(error_of(&ids[0]), "ok: hello");
    assert_eq!((error_of(&ids[1]), error_of(&ids[2])), ("ok: seen=false", "ok: seen=true"));
    assert!(error_of(&ids[3]).contains(&format!("grant.keys allows \"{pattern}\"")), "{}", error_of(&ids[3]));
    host.terminate();
}

/// The batch world: each effect names its entry and is committed only with
/// that entry's ack — after a trap re-runs the batch one entry per call too.
#[tokio::test(flavor = "multi_thread")]
async fn batch_effects_follow_their_own_entry() {
    let mut conn = redis().await;
    let s = unique_stream("effects-batch");
    let key = format!("{s}:fx");
    let with = |extra: Option<&'static str>| {
        let mut f = fields(&[("incr", key.clone())]);
        f.extend(extra.map(|name| (name, Vec::new())));
        f
    };
    let ids =
        produce(&mut conn, &s, &[with(None), with(Some("fail")), with(Some("reject")), with(Some("trap")), with(None)])
            .await;
    let grant = format!("{s}:*");
    let extra = ["--grant-key", &grant, "--min-idle-ms", "300", "--reap-interval-ms", "100", "--max-deliveries", "3"];
    let mut host = Host::run(&s, "chaos-batch", &extra).start();
    settled(&mut conn, &s, 0, 3).await;
    let applied: BTreeMap<String, String> = conn.hgetall(&key).await.unwrap();
    let want: BTreeMap<String, String> =
        [&ids[0], &ids[4]].iter().map(|id| (id.to_string(), "1".to_string())).collect();
    assert_eq!(applied, want, "only the entries acked, each once");
    host.terminate();
}

/// The connection cut while the commit waits to run (Redis paused for
/// writes): the commit never runs — nothing applied, the entry still
/// pending — and a later delivery applies the effects once.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_cut_mid_commit_applies_nothing_and_the_retry_applies_once() {
    let server = PrivateRedis::start();
    let mut conn = server.connect().await;
    let s = unique_stream("effects-cut");
    let key = format!("{s}:fx");
    let ids = produce(
        &mut conn,
        &s,
        &[fields(&[("hincr", key.clone()), ("log_line", "started".into()), ("sleep_ms", "800".into())])],
    )
    .await;
    let grant = format!("{s}:*");
    let plugin = plugin("chaos");
    let args = ["run", "--stream", &s, "--group", "g", "--plugin", plugin.to_str().unwrap(), "--redis", &server.url];
    let extra = ["--grant-key", &grant, "--consumer", "c", "--min-idle-ms", "1000", "--reap-interval-ms", "200"];
    let mut host = Host::new(args).args(extra).logging().start();
    host.wait_log(MINUTE, "the handler to start", |log| log.iter().any(|l| l.contains("started")));
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(20_000).arg("WRITE").query_async(&mut conn).await.unwrap();
    // The handler ends and its commit (a script: a write) waits in the pause.
    host.wait_log(MINUTE, "the handler to end", |log| log.iter().any(|l| l.contains(&format!("handled {}", ids[0]))));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(killed > 0);
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query_async(&mut conn).await.unwrap();
    let applied: Option<String> = conn.hget(&key, &ids[0]).await.unwrap();
    assert_eq!(applied, None, "a commit whose connection was cut was applied");
    let pending: Vec<String> = pending(&mut conn, &s, "g").await.into_iter().map(|(id, ..)| id).collect();
    assert_eq!(pending, ids);
    wait_drained(&mut conn, &s, "g", 0).await;
    let applied: Option<String> = conn.hget(&key, &ids[0]).await.unwrap();
    assert_eq!(applied.as_deref(), Some("1"));
    host.terminate();
}

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

/// A batch that faults after some of its entries were handled ok (here: an
/// error text over the limit) runs again one entry per call: the ok
/// entries' effects are still applied once, not once per run.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_run_again_after_a_fault_applies_effects_once() {
    let mut conn = redis().await;
    let s = unique_stream("effects-batch-rerun");
    let key = format!("{s}:fx");
    let ids = produce(
        &mut conn,
        &s,
        &[fields(&[("incr", key.clone())]), vec![("big_reject", Vec::new())], fields(&[("incr", key.clone())])],
    )
    .await;
    let grant = format!("{s}:*");
    let extra = ["--grant-key", &grant, "--max-return-bytes", "1000", "--max-deliveries", "1"];
    let mut host = Host::run(&s, "chaos-batch", &extra).start();
    settled(&mut conn, &s, 0, 1).await;
    let applied: BTreeMap<String, String> = conn.hgetall(&key).await.unwrap();
    let want: BTreeMap<String, String> = [&ids[0], &ids[2]].iter().map(|id| (id.to_string(), "1".into())).collect();
    assert_eq!(applied, want, "effects of a batch run twice were applied twice");
    host.terminate();
}

/// One entry's effects as the commit receives them.
fn incr(key: &str, field: Option<&str>) -> host::Effect {
    host::Effect::Incr { key: key.into(), field: field.map(Into::into), by: 1 }
}

/// Reads entries of `stream` into `consumer`'s pending list (group `g`).
async fn deliver(conn: &mut MultiplexedConnection, stream: &str, consumer: &str, n: usize) -> Vec<String> {
    let input: Vec<_> = (0..n).map(|i| fields(&[("n", i.to_string())])).collect();
    let ids = produce(conn, stream, &input).await;
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg(stream).arg("g").arg("0").query_async(conn).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg(consumer)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    ids
}

/// The commit step attacked directly: writes Redis would refuse after other
/// writes (a name with NUL shared between a string key and a hash field, a
/// write over the consumed stream's own key) refuse the entry whole, and a
/// chunk of deletes over many fields stays linear (it held Redis for
/// minutes before).
#[tokio::test(flavor = "multi_thread")]
async fn the_commit_refuses_whole_entries_and_stays_linear() {
    let mut conn = redis().await;
    let s = unique_stream("effects-commit");
    let ids = deliver(&mut conn, &s, "c", 53).await;
    let (hash, nul) = (format!("{s}:a"), format!("{s}:a\0b"));
    let _: () = conn.hset(&hash, "b", "abc").await.unwrap();
    let counter = format!("{s}:n");
    let set =
        |key: &str, value: &str| host::Effect::Set { key: key.into(), field: None, value: value.into(), ttl_ms: None };
    let del = |key: &str| host::Effect::Del { key: key.into(), field: None };
    // 0: the string "a\0b" and field b of "a" are different things.
    let collide = vec![incr(&counter, None), set(&nul, "5"), incr(&hash, Some("b"))];
    // 1: the consumed stream's key turned into a string.
    let clobber = vec![incr(&counter, None), del(&s), set(&s, "x")];
    // 2: the plan after a DEL reads nothing stale.
    let fresh_key = format!("{s}:fresh");
    let _: () = conn.set(&fresh_key, "not a number").await.unwrap();
    let fresh = vec![del(&fresh_key), incr(&fresh_key, None)];
    // 3..53: 50 entries of 500 counters and 500 deletes each.
    let wide: Vec<host::Effect> = (0..500)
        .flat_map(|i| {
            let key = format!("{s}:w{i}");
            [incr(&key, Some("f")), del(&key)]
        })
        .collect();
    let mut entries: Vec<(&str, &[host::Effect])> = vec![(&ids[0], &collide), (&ids[1], &clobber), (&ids[2], &fresh)];
    entries.extend(ids[3..].iter().map(|id| (id.as_str(), wide.as_slice())));
    let results = host::commit_effects(redis_url(), &s, "g", "c", &entries).await.expect("the commit ran");
    assert!(
        matches!(&results[0], host::Committed::Refused(e) if e.contains("does not hold an integer")),
        "{:?}",
        results[0]
    );
    assert!(matches!(&results[1], host::Committed::Refused(e) if e.contains("consumed stream")), "{:?}", results[1]);
    assert_eq!(results[2], host::Committed::Applied);
    assert!(results[3..].iter().all(|r| *r == host::Committed::Applied), "{:?}", &results[3..6]);
    assert_eq!(get(&mut conn, &counter).await, None, "a refused entry's first write was applied");
    assert_eq!(get(&mut conn, &nul).await, None);
    assert_eq!(get(&mut conn, &fresh_key).await.as_deref(), Some("1"));
    let key_type: String = redis::cmd("TYPE").arg(&s).query_async(&mut conn).await.unwrap();
    assert_eq!(key_type, "stream");
    let pending: Vec<String> = pending(&mut conn, &s, "g").await.into_iter().map(|(id, ..)| id).collect();
    assert_eq!(pending, ids[..2], "only the refused entries stay pending");
}

/// The commit sums increments per key and field before writing them: the
/// result is exactly what the writes one by one give — past 2^53 (where
/// Lua's numbers stop being exact) and around a SET or DEL of the key.
#[tokio::test(flavor = "multi_thread")]
async fn summed_increments_give_exactly_what_one_by_one_gives() {
    let mut conn = redis().await;
    let s = unique_stream("effects-sums");
    let ids = deliver(&mut conn, &s, "c", 4).await;
    let (big, around) = (format!("{s}:big"), format!("{s}:around"));
    let by = |key: &str, field: Option<&str>, by: i64| host::Effect::Incr {
        key: key.into(),
        field: field.map(Into::into),
        by,
    };
    let big_one = (1i64 << 53) - 1;
    let e0 = vec![by(&big, Some("f"), big_one)];
    let e1 = vec![by(&big, Some("f"), big_one), by(&big, Some("f"), 3)];
    let set = host::Effect::Set { key: around.clone(), field: None, value: b"7".to_vec(), ttl_ms: None };
    let e2 = vec![by(&around, None, 5), set, by(&around, None, 1)];
    let e3 = vec![by(&around, None, 2), host::Effect::Del { key: around.clone(), field: None }, by(&around, None, 4)];
    let entries: Vec<(&str, &[host::Effect])> = vec![(&ids[0], &e0), (&ids[1], &e1), (&ids[2], &e2), (&ids[3], &e3)];
    let results = host::commit_effects(redis_url(), &s, "g", "c", &entries).await.unwrap();
    assert_eq!(results[..2], [host::Committed::Applied, host::Committed::Applied]);
    let f: Option<String> = conn.hget(&big, "f").await.unwrap();
    assert_eq!(f, Some((2 * big_one + 3).to_string()));
    assert_eq!(results[2..], [host::Committed::Applied, host::Committed::Applied]);
    assert_eq!(get(&mut conn, &around).await.as_deref(), Some("4"));
}

/// A stream that has used up the last possible id takes no more entries:
/// an emit to it is refused before anything of its entry is written (it
/// failed in the middle of the commit before).
#[tokio::test(flavor = "multi_thread")]
async fn an_emit_to_a_stream_out_of_ids_refuses_its_entry_whole() {
    let mut conn = redis().await;
    let s = unique_stream("effects-full");
    let ids = deliver(&mut conn, &s, "c", 2).await;
    let (out, key) = (format!("{s}:out"), format!("{s}:k"));
    let last = "18446744073709551615-18446744073709551615";
    let _: String = redis::cmd("XADD").arg(&out).arg(last).arg("a").arg("b").query_async(&mut conn).await.unwrap();
    let emit = host::Effect::Emit { stream: out.clone(), fields: vec![(b"a".to_vec(), b"b".to_vec())], max_len: None };
    let (e0, e1) = (vec![incr(&key, Some("f"))], vec![incr(&key, Some("g")), emit]);
    let entries: Vec<(&str, &[host::Effect])> = vec![(&ids[0], &e0), (&ids[1], &e1)];
    let results = host::commit_effects(redis_url(), &s, "g", "c", &entries).await.expect("the commit ran");
    assert_eq!(results[0], host::Committed::Applied);
    assert!(matches!(&results[1], host::Committed::Refused(e) if e.contains("last possible id")), "{:?}", results[1]);
    let applied: BTreeMap<String, String> = conn.hgetall(&key).await.unwrap();
    assert_eq!(applied, BTreeMap::from([("f".to_string(), "1".to_string())]));
    let pending: Vec<String> = pending(&mut conn, &s, "g").await.into_iter().map(|(id, ..)| id).collect();
    assert_eq!(pending, ids[1..]);
}
