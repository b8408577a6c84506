//! Per-request cost of outbound HTTP from a plugin: the notifier POSTing one
//! order notification to a webhook on loopback (through `wasi:http`, the
//! grant check, the host's client, one connection per request), against
//! the same POST sent from Rust directly over a fresh connection, and
//! against a notifier call that sends nothing (already notified). The
//! webhook is a minimal HTTP/1.1 server in a thread of this process. Prints
//! one JSON line per mode, then the overhead per request.
//!
//!     make plugins && cargo bench -p host --bench http_cost

use anyhow::{Context, Result};
use host::{Delivery, Engine, Entry, Instance, Limits, Plugin, StateStore, Verdict};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("plugins/dist/notifier.wasm");
    let addr = webhook()?;
    let origin = format!("http://{addr}");
    let engine = Engine::new()?;
    let plugin =
        Plugin::load(&engine, &path).with_context(|| format!("loading {} (run `make plugins`)", path.display()))?;
    let keys = vec!["bench:notified:*".to_string()];
    let mut grants = host::Grants { http: vec![origin.clone()], keys, ..Default::default() };
    grants.config.insert("webhook".into(), format!("{origin}/hook"));
    let limits = Limits { grants: Arc::new(grants), ..Limits::default() };

    let mut results = Vec::new();
    for (mode, notified) in [("plugin POST", false), ("plugin, nothing sent", true)] {
        let state = Arc::new(Notified(AtomicBool::new(notified)));
        let delivery = Delivery {
            stream: "bench".into(),
            group: "g".into(),
            consumer: "c".into(),
            state: Some(state),
            http: None,
        };
        let mut instance = Instance::new(&plugin, delivery, Duration::from_secs(5), limits.clone())?;
        let mut entry = order();
        let per = measure(|| {
            let verdict = instance.handle(&mut entry);
            anyhow::ensure!(verdict == Verdict::Ack, "expected ack, got {verdict}");
            Ok(())
        })?;
        results.push((mode, per));
    }
    let body = br#"{"id":"1700000000000-0","stream":"bench","delivery":1,"fields":{"type":"order.placed","order_id":"o-1","customer":"customer-1","amount":"12.50"}}"#;
    let per = measure(|| native_post(&addr, body))?;
    results.push(("native POST", per));
    for (mode, per) in &results {
        println!("{{\"mode\":\"{mode}\",\"us_per_call\":{:.1}}}", per.as_nanos() as f64 / 1000.0);
    }
    let (plugin_post, nothing, native) = (results[0].1, results[1].1, results[2].1);
    println!(
        "{{\"overhead_us_per_request\":{:.1},\"of_which_plugin_call_us\":{:.1}}}",
        (plugin_post.as_nanos() as f64 - native.as_nanos() as f64) / 1000.0,
        nothing.as_nanos() as f64 / 1000.0
    );
    Ok(())
}

/// A state store answering that nothing was notified yet (or that
/// everything was): no Redis in the measurement.
#[derive(Debug)]
struct Notified(AtomicBool);

impl StateStore for Notified {
    fn get(&self, _: &str, _: Instant) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.load(Ordering::Relaxed).then(|| b"1".to_vec()))
    }
    fn hget(&self, _: &str, _: &str, _: Instant) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn seen(&self, _: &str, _: Duration, _: Instant) -> Result<bool, String> {
        Ok(false)
    }
}

fn order() -> Entry {
    let fields = [("type", "order.placed"), ("order_id", "o-1"), ("customer", "customer-1"), ("amount", "12.50")];
    let fields = fields.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
    Entry { id: "1700000000000-0".into(), fields, delivery_count: 1 }
}

/// Runs `call` for ~2 s after a warm-up; the mean time per call.
fn measure(mut call: impl FnMut() -> Result<()>) -> Result<Duration> {
    for _ in 0..200 {
        call()?;
    }
    let (started, mut calls) = (Instant::now(), 0u32);
    while started.elapsed() < Duration::from_secs(2) {
        call()?;
        calls += 1;
    }
    Ok(started.elapsed() / calls)
}

/// The POST a plugin sends, from Rust over a fresh connection, read to the end.
fn native_post(addr: &str, body: &[u8]) -> Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let head = format!(
        "POST /hook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         idempotency-key: bench/1700000000000-0\r\n\r\n",
        body.len()
    );
    stream.write_all(&[head.as_bytes(), body].concat())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    anyhow::ensure!(response.starts_with(b"HTTP/1.1 200"), "the webhook did not answer 200");
    Ok(())
}

/// A webhook on a free loopback port: reads one request per connection,
/// answers 200 and closes.
fn webhook() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream);
        }
    });
    Ok(addr)
}

fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
}
