//! The commit step attacked directly, through `host::commit_effects`.

use super::*;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;

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
