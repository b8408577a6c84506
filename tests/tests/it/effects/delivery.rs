//! Hosts running the chaos plugins: what each verdict, a peer, a refused
//! write, a cut connection and the grants do to an entry's effects.

use super::*;
use crate::metrics::{scrape, value};
use redis::AsyncCommands;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

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
    let errors = dead_errors(&mut conn, &s).await;
    assert!(errors[&ids[4]].contains("reject requested"));
    let flood = &errors[&ids[5]];
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
    let errors = dead_errors(&mut conn, &s).await;
    let error_of = |id: &String| errors[id].as_str();
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
    let errors = dead_errors(&mut conn, &s).await;
    let error_of = |id: &String| errors[id].as_str();
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
    let errors = dead_errors(&mut conn, &s).await;
    let error_of = |id: &String| errors[id].as_str();
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
