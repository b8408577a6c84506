//! `host info`, `replay`, `trim` and `tail`, checked against what Redis
//! itself says (XINFO, XLEN, XRANGE).

use crate::support::*;
use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `host ARGS… --redis URL` and returns its stdout; it must succeed.
fn host(args: &[&str]) -> String {
    let out = Host::new(args).args(["--redis", redis_url()]).output();
    assert!(out.status.success(), "host {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn info_shows_what_xinfo_says() {
    let mut conn = redis().await;
    let stream = unique_stream("info");
    let ids = produce(&mut conn, &stream, &(0..10).map(order).collect::<Vec<_>>()).await;
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg(&stream).arg("g").arg("0").query_async(&mut conn).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c1")
        .arg("COUNT")
        .arg(4)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let group = group_info(&mut conn, &stream, "g").await.unwrap();

    let info = json(host(&["info", "--stream", &stream, "--json"]).trim());
    assert_eq!(info["length"], xlen(&mut conn, &stream).await);
    assert_eq!(info["first_id"], ids[0].as_str());
    assert_eq!(info["last_id"], ids[9].as_str());
    let g = &info["groups"][0];
    assert_eq!(
        (g["name"].as_str(), g["pending"].as_u64(), g["lag"].as_u64()),
        (Some("g"), Some(group.pending), group.lag)
    );
    assert_eq!(g["last_delivered_id"], ids[3].as_str());
    assert_eq!(g["consumers"][0]["name"], "c1");
    assert_eq!(g["consumers"][0]["pending"], 4);

    let text = host(&["info", "--stream", &stream]);
    assert!(text.starts_with(&format!("stream {stream}: 10 entries, first {}", ids[0])), "{text}");
    assert!(text.contains(&format!("group g: 1 consumers, 4 pending, last delivered {}, lag 6", ids[3])), "{text}");

    let missing = Host::new(["info", "--stream", "no:such:stream", "--redis", redis_url()]).output();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("stream \"no:such:stream\" does not exist"));
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_prints_a_range_and_trim_trims() {
    let mut conn = redis().await;
    let stream = unique_stream("replay");
    let mut entries: Vec<_> = (0..10).map(|i| vec![("n", i.to_string().into_bytes())]).collect();
    entries[5] = vec![("bin", vec![0xff, 0x00, 0x41])];
    let ids = produce(&mut conn, &stream, &entries).await;

    let lines: Vec<serde_json::Value> =
        host(&["replay", "--stream", &stream, "--from", &ids[3], "--to", &ids[6], "--json"])
            .lines()
            .map(json)
            .collect();
    let got: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(got, &ids[3..=6]);
    assert_eq!(lines[0]["fields"], serde_json::json!([["n", "3"]]));
    assert_eq!(lines[2]["fields"], serde_json::json!([["bin", {"hex": "ff0041"}]]), "binary values as hex");
    let text = host(&["replay", "--stream", &stream, "--count", "2"]);
    assert_eq!(text, format!("{} n=\"0\"\n{} n=\"1\"\n2 entries from {stream} (- .. +)\n", ids[0], ids[1]));

    let trimmed = json(host(&["trim", "--stream", &stream, "--maxlen", "7", "--exact", "--json"]).trim());
    assert_eq!((trimmed["trimmed"].as_u64(), trimmed["length"].as_u64()), (Some(3), Some(7)));
    assert_eq!(xlen(&mut conn, &stream).await, 7);
    let text = host(&["trim", "--stream", &stream, "--minid", &ids[8], "--exact"]);
    assert_eq!(text, format!("trimmed 5 entries from {stream}; 2 left\n"));
    let left: Vec<String> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async::<Vec<(String, Vec<(String, String)>)>>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, &ids[8..]);
}

/// `host tail` prints entries added after it started (not older ones) and
/// exits 0 on SIGTERM; the stream's groups are untouched.
#[tokio::test(flavor = "multi_thread")]
async fn tail_follows_new_entries() {
    let mut conn = redis().await;
    let stream = unique_stream("tail");
    produce(&mut conn, &stream, &[vec![("old", b"1".to_vec())]]).await;
    let mut child = Host::new(["tail", "--stream", &stream, "--json", "--redis", redis_url()])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    // Wait until it has noted where it starts, so the entries below are new to it.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("following entries added after") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "host tail exited early");
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ids = produce(&mut conn, &stream, &[vec![("new", b"1".to_vec())], vec![("new", b"2".to_vec())]]).await;
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "tail printed only {seen:?}");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            seen.push(json(&line)["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids, "exactly the new entries, in order");
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "{status}");
    assert!(group_info(&mut conn, &stream, "g").await.is_none(), "tail creates no group");
}
