//! Outbound HTTP (`wasi:http`) with the notifier plugin against webhooks the
//! test serves on loopback: only granted origins are reached (another port,
//! host or scheme and a redirect elsewhere are refused before a connection
//! is opened, logged and counted); 4xx dead-letters with the status; the
//! timeout, the call's deadline and the response cap hold; a sink down for
//! 2 s loses nothing; HTTPS checks certificates against the system's roots
//! (or SSL_CERT_FILE).

use crate::metrics::{scrape, value};
use crate::support::*;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// Installs the notifier as `dir/NAME.wasm` on stream `stream` (group `g`),
/// granted `granted` origins, posting to `webhook`, with `extra` sidecar lines.
fn notifier(dir: &Path, name: &str, stream: &str, webhook: &str, granted: &[&str], extra: &str) {
    install("notifier", dir, name, stream, webhook, granted, extra)
}

/// [`notifier`] with the plugin `plugin` (`notifier` or `python-notifier`).
fn install(plugin_name: &str, dir: &Path, name: &str, stream: &str, webhook: &str, granted: &[&str], extra: &str) {
    std::fs::copy(plugin(plugin_name), dir.join(format!("{name}.wasm"))).unwrap();
    let quoted: Vec<String> = granted.iter().map(|o| format!("{o:?}")).collect();
    let sidecar = format!(
        "stream = {stream:?}\ngroup = \"g\"\nmin_idle_ms = 100\nreap_interval_ms = 50\n{extra}\n\
         [grant]\nhttp = [{}]\nkeys = [\"{stream}:notified:*\", \"{stream}:stats\"]\n\
         [grant.config]\nwebhook = {webhook:?}\nretry_ms = \"50\"\nretry_max_ms = \"200\"\nstats = \"{stream}:stats\"\n",
        quoted.join(", ")
    );
    std::fs::write(dir.join(format!("{name}.toml")), sidecar).unwrap();
}

fn metrics_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// Waits until group `g` of `stream` has read everything, holds no pending
/// entry and `dead` dead letters.
async fn settled(conn: &mut MultiplexedConnection, stream: &str, dead: u64) {
    let start = Instant::now();
    loop {
        let info = group_info(conn, stream, "g").await;
        let dlq = xlen(conn, &format!("{stream}:dlq")).await;
        if info.as_ref().is_some_and(|i| i.lag == Some(0) && i.pending == 0) && dlq == dead {
            return;
        }
        assert!(start.elapsed() < MINUTE, "{stream} not settled: {info:?}, {dlq} dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `dlq:error` of each dead letter of `stream`.
async fn dead_errors(conn: &mut MultiplexedConnection, stream: &str) -> Vec<String> {
    dead_letters(conn, stream).await.iter().map(|d| d.meta("dlq:error").unwrap_or_default().to_string()).collect()
}

async fn orders(conn: &mut MultiplexedConnection, stream: &str, n: usize) -> Vec<String> {
    produce(conn, stream, &(0..n).map(order).collect::<Vec<_>>()).await
}

/// One host serves six notifiers: one whose webhook is granted, and five
/// whose requests must never arrive. Nothing is sent to the refused ones
/// (no connection at all), each refusal is logged and counted, and their
/// entries are dead-lettered saying why; a 4xx is dead-lettered at once with
/// its status and body; an entry already notified is skipped.
#[tokio::test(flavor = "multi_thread")]
async fn only_granted_origins_are_reached() {
    let mut conn = redis().await;
    let dir = plugin_dir("outbound-origins");
    let good = Webhook::start(Mode::Ok);
    let other_port = Webhook::start(Mode::Ok);
    let other_host = Webhook::start_on("127.0.0.2", Mode::Ok, None);
    let redirect = Webhook::start(Mode::Redirect(other_port.url()));
    let gone = Webhook::start(Mode::Status(404, "no such hook".into()));
    let granted = [good.origin(), redirect.origin(), gone.origin()];
    let granted: Vec<&str> = granted.iter().map(String::as_str).collect();
    let stream = |case: &str| unique_stream(&format!("outbound-{case}"));
    let (s_good, s_port, s_host, s_scheme, s_redirect, s_gone) =
        (stream("good"), stream("port"), stream("host"), stream("scheme"), stream("redirect"), stream("gone"));
    let https_same_port = format!("https://{}/hook", good.addr);
    let other_host_url = format!("http://127.0.0.2:{}/hook", other_host.addr.port());
    let two = "max_deliveries = 2";
    notifier(&dir, "good", &s_good, &good.url(), &granted, two);
    notifier(&dir, "port", &s_port, &other_port.url(), &granted, two);
    notifier(&dir, "elsewhere", &s_host, &other_host_url, &granted, two);
    notifier(&dir, "scheme", &s_scheme, &https_same_port, &granted, two);
    notifier(&dir, "redirect", &s_redirect, &redirect.url(), &granted, two);
    notifier(&dir, "gone", &s_gone, &gone.url(), &granted, two);

    let ids = orders(&mut conn, &s_good, 5).await;
    let _: () = conn.set(format!("{s_good}:notified:{}", ids[4]), "1").await.unwrap();
    for s in [&s_port, &s_host, &s_scheme, &s_redirect, &s_gone] {
        orders(&mut conn, s, 3).await;
    }
    let metrics = metrics_addr();
    let mut host =
        Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url(), "--metrics", &metrics])
            .logging()
            .start();
    settled(&mut conn, &s_good, 0).await;
    for s in [&s_port, &s_host, &s_scheme, &s_redirect, &s_gone] {
        settled(&mut conn, s, 3).await;
    }

    // The granted webhook got each order once, as JSON with its idempotency key;
    // the one already notified was skipped.
    let got = good.received();
    let keys: Vec<String> = got.iter().filter_map(|r| r.idempotency_key.clone()).collect();
    let want: Vec<String> = ids[..4].iter().map(|id| format!("{s_good}/{id}")).collect();
    assert_eq!(sorted(keys), sorted(want));
    for r in &got {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
        let json: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
        assert_eq!(json["stream"], s_good.as_str());
        assert!(json["fields"]["order_id"].as_str().is_some_and(|o| o.starts_with("o-")), "{json}");
    }
    let stats: HashMap<String, u64> = conn.hgetall(format!("{s_good}:stats")).await.unwrap();
    assert_eq!((stats.get("sent"), stats.get("skipped")), (Some(&4), Some(&1)));

    // Nothing reached the others: no connection was opened, not even for TLS.
    assert_eq!(other_port.connections(), 0, "another port was reached");
    assert_eq!(other_host.connections(), 0, "another host was reached");
    assert_eq!(redirect.received().len(), 6, "the redirecting webhook answers each delivery");
    for (s, why) in [
        (&s_port, "denied by the host"),
        (&s_host, "denied by the host"),
        (&s_scheme, "denied by the host"),
        (&s_redirect, "denied by the host"),
        (&s_gone, "answered 404: no such hook"),
    ] {
        let errors = dead_errors(&mut conn, s).await;
        assert!(errors.iter().all(|e| e.contains(why)), "{s}: {errors:?}");
    }
    // 4xx is not retried: one delivery each.
    assert_eq!(gone.received().len(), 3);
    // Good's only connections are its own four requests (the https attempt never connected).
    assert_eq!(good.connections(), 4);

    let samples = scrape(&metrics);
    let sent = |plugin: &str, origin: &str, status: &str| {
        value(&samples, "host_http_requests_total", &[("plugin", plugin), ("origin", origin), ("status", status)])
    };
    let origin = |w: &Webhook| format!("http://{}", w.addr);
    assert_eq!(sent("good", &origin(&good), "200"), 4.0);
    assert_eq!(sent("redirect", &origin(&redirect), "307"), 6.0);
    assert_eq!(sent("gone", &origin(&gone), "404"), 3.0);
    for (plugin, denied) in [("port", 6.0), ("elsewhere", 6.0), ("scheme", 6.0), ("redirect", 6.0), ("good", 0.0)] {
        let counted = value(&samples, "host_http_denied_total", &[("plugin", plugin), ("reason", "origin")]);
        assert_eq!(counted, denied, "{plugin}");
    }
    let latency = value(&samples, "host_http_request_duration_seconds_count", &[("plugin", "good")]);
    assert_eq!(latency, 4.0);
    host.terminate();
    let denial = host.log.iter().find(|l| l.contains("plugin=port") && l.contains("denied: not a granted origin"));
    assert!(denial.is_some_and(|l| l.contains(&other_port.origin())), "no denial naming the origin in the log");
}

/// The timeout (headers late, or a body dribbled byte by byte), the call's
/// deadline and the response-size cap (declared or streamed) each fail the request with an error the plugin sees: its entry
/// is retried, then dead-lettered saying why; a call is never cut as a fault.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_deadline_and_size_cap_hold() {
    let mut conn = redis().await;
    let dir = plugin_dir("outbound-limits");
    let slow = Webhook::start(Mode::Slow(Duration::from_secs(3)));
    let declared = Webhook::start(Mode::Big(2 << 20, true));
    let streamed = Webhook::start(Mode::Big(200 << 10, false));
    let small = Webhook::start(Mode::Big(60 << 10, false));
    let dribble = Webhook::start(Mode::Dribble(Duration::from_millis(50)));
    let cases = [
        ("timeout", &slow, "http_timeout_ms = 300", "timed out"),
        ("deadline", &slow, "call_deadline_ms = 800", "timed out"),
        ("declared", &declared, "http_max_response_bytes = 65536", "response body too large (2097152 bytes"),
        ("streamed", &streamed, "http_max_response_bytes = 65536", "response body size exceeds limit"),
        ("small", &small, "http_max_response_bytes = 65536", ""),
        ("dribble", &dribble, "http_timeout_ms = 1000", "connection read timeout"),
    ];
    let mut streams = BTreeMap::new();
    for (name, hook, limit, _) in &cases {
        let s = unique_stream(&format!("outbound-{name}"));
        let origin = hook.origin();
        notifier(&dir, name, &s, &hook.url(), &[&origin], &format!("max_deliveries = 2\n{limit}"));
        orders(&mut conn, &s, 2).await;
        streams.insert(*name, s);
    }
    let metrics = metrics_addr();
    let mut host =
        Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url(), "--metrics", &metrics])
            .logging()
            .start();
    for (name, _, _, why) in &cases {
        let s = &streams[name];
        if why.is_empty() {
            settled(&mut conn, s, 0).await;
            continue;
        }
        settled(&mut conn, s, 2).await;
        let errors = dead_errors(&mut conn, s).await;
        assert!(errors.iter().all(|e| e.contains(why) && !e.contains("deadline")), "{name}: {errors:?}");
    }
    let samples = scrape(&metrics);
    for (name, status, n) in [("timeout", "timeout", 4.0), ("deadline", "timeout", 4.0), ("declared", "too_large", 4.0)]
    {
        let counted = value(&samples, "host_http_requests_total", &[("plugin", name), ("status", status)]);
        assert_eq!(counted, n, "{name}");
    }
    // No verdict was a fault: every failure was an error the plugin returned.
    for (name, ..) in &cases {
        assert_eq!(value(&samples, "host_entries_total", &[("plugin", name), ("verdict", "fault")]), 0.0, "{name}");
    }
    host.terminate();
}

/// The webhook is down (503) for the first 2 s, then up: with the Rust and
/// the Python notifier alike, every order is notified at least once, none is
/// dead-lettered, the retries are the 503s answered, and duplicates (a key
/// received twice) are counted. The Python one also dead-letters a 4xx with
/// its status.
#[tokio::test(flavor = "multi_thread")]
async fn a_sink_down_for_two_seconds_loses_nothing() {
    let mut conn = redis().await;
    let dir = plugin_dir("outbound-down");
    let n = 200;
    let mut cases = Vec::new();
    for plugin_name in ["notifier", "python-notifier"] {
        let sink = Webhook::start(Mode::Status(503, "down".into()));
        let s = unique_stream(&format!("outbound-down-{plugin_name}"));
        let origin = sink.origin();
        let extra = "max_deliveries = 100\nconsumers = 2";
        install(plugin_name, &dir, plugin_name, &s, &sink.url(), &[&origin], extra);
        let ids = orders(&mut conn, &s, n).await;
        cases.push((plugin_name, sink, s, ids));
    }
    let gone = Webhook::start(Mode::Status(404, "no such hook".into()));
    let s_gone = unique_stream("outbound-python-gone");
    install("python-notifier", &dir, "python-gone", &s_gone, &gone.url(), &[&gone.origin()], "max_deliveries = 5");
    orders(&mut conn, &s_gone, 3).await;
    let mut host = Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()]).logging().start();
    // Compiling the two Python components may take a while on a loaded
    // machine (a cold compile cache); it is not what this test measures.
    host.wait_log(3 * MINUTE, "the three plugins consuming", |log| {
        log.iter().filter(|l| l.contains("consuming")).count() >= 3
    });
    // Each sink is down from its first request on, for 2 s.
    let start = Instant::now();
    while cases.iter().any(|(_, sink, ..)| sink.received().is_empty()) {
        assert!(start.elapsed() < MINUTE, "a notifier never called its sink");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (_, sink, ..) in &cases {
        sink.set(Mode::Ok);
    }
    for (plugin_name, sink, s, ids) in &cases {
        settled(&mut conn, s, 0).await;
        let got = sink.received();
        let retries = got.iter().filter(|r| r.status == 503).count();
        let mut ok: HashMap<String, usize> = HashMap::new();
        for r in got.iter().filter(|r| r.status == 200) {
            *ok.entry(r.idempotency_key.clone().unwrap()).or_default() += 1;
        }
        let want: Vec<String> = ids.iter().map(|id| format!("{s}/{id}")).collect();
        assert_eq!(sorted(ok.keys().cloned().collect()), sorted(want), "{plugin_name}: every order notified");
        let duplicates: usize = ok.values().map(|n| n - 1).sum();
        assert!(retries > 0, "{plugin_name}: the sink was never down");
        let stats: HashMap<String, u64> = conn.hgetall(format!("{s}:stats")).await.unwrap();
        eprintln!(
            "{plugin_name}, sink down 2 s: {n} orders, {} notifications received ({} distinct), {duplicates} \
             duplicates, {retries} retries (503s); the notifier counted sent={:?} skipped={:?}",
            ok.len() + duplicates,
            ok.len(),
            stats.get("sent"),
            stats.get("skipped"),
        );
    }
    settled(&mut conn, &s_gone, 3).await;
    let errors = dead_errors(&mut conn, &s_gone).await;
    assert!(errors.iter().all(|e| e.contains("answered 404: no such hook")), "{errors:?}");
    assert_eq!(gone.received().len(), 3, "a 4xx is not retried");
    host.terminate();
}

/// HTTPS is checked against the system's roots: a webhook whose certificate
/// a test CA signed is refused by default (certificate error, dead-lettered)
/// and reached once `SSL_CERT_FILE` names that CA.
#[tokio::test(flavor = "multi_thread")]
async fn https_trusts_the_system_roots_or_ssl_cert_file() {
    let mut conn = redis().await;
    let ca = TestCa::new("outbound");
    let hook = Webhook::start_tls(Mode::Ok, &ca);
    let origin = hook.origin();
    for (trusted, name) in [(false, "untrusted"), (true, "trusted")] {
        let dir = plugin_dir(&format!("outbound-tls-{name}"));
        let s = unique_stream(&format!("outbound-tls-{name}"));
        notifier(&dir, "notifier", &s, &hook.url(), &[&origin], "max_deliveries = 2");
        orders(&mut conn, &s, 2).await;
        let host = Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()]).logging();
        let mut host = if trusted { host.env("SSL_CERT_FILE", ca.ca_file()) } else { host }.start();
        if trusted {
            settled(&mut conn, &s, 0).await;
        } else {
            settled(&mut conn, &s, 2).await;
            let errors = dead_errors(&mut conn, &s).await;
            assert!(errors.iter().all(|e| e.contains("TlsCertificateError")), "{errors:?}");
        }
        host.terminate();
    }
    let keys: Vec<String> = hook.received().iter().filter_map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 2, "only the trusting host's two requests got through: {keys:?}");
}

/// A plugin that starts 20 requests without waiting for any gets 8 through
/// (the cap of requests in flight per instance) and `connection-limit-reached`
/// for the other 12; the refusals are counted.
#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_are_capped_per_instance() {
    let mut conn = redis().await;
    let hook = Webhook::start(Mode::Slow(Duration::from_millis(500)));
    let s = unique_stream("outbound-burst");
    produce(&mut conn, &s, &[vec![("burst", hook.url().into_bytes())]]).await;
    let metrics = metrics_addr();
    let origin = hook.origin();
    let mut host = Host::run(&s, "chaos", &["--grant-http", &origin, "--metrics", &metrics]).start();
    settled(&mut conn, &s, 1).await;
    let errors = dead_errors(&mut conn, &s).await;
    assert_eq!(errors, ["answered=8 limited=12 other=0"]);
    assert_eq!(hook.received().len(), 8);
    let samples = scrape(&metrics);
    assert_eq!(value(&samples, "host_http_denied_total", &[("plugin", "chaos"), ("reason", "in_flight")]), 12.0);
    host.terminate();
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}
