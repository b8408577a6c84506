//! The dashboard and `/metrics` against a page of another site (CSRF, DNS
//! rebinding), Redis passwords in everything the host prints, and hot reload
//! of plugins named by relative paths.

use crate::support::*;
use std::io::{Read, Write};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// A request header: name and value.
type Header<'a> = (&'a str, &'a str);

/// One HTTP/1.1 request with exactly these headers (a browser's, an
/// attacker's): the status and the body.
fn http(addr: &str, method: &str, path: &str, headers: &[Header], body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the host's HTTP server");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, body.to_string())
}

/// A cross-site form POST (by `Origin` or `Sec-Fetch-Site`), a POST without
/// or with a wrong token, and any request naming another `Host` (DNS
/// rebinding) are refused and change nothing; the page carries the token, a
/// same-origin call with it works, and `/metrics` needs no token.
#[test]
fn dashboard_refuses_cross_site_rebound_and_tokenless_calls() {
    let demo = Demo::start("web-csrf", &[]);
    let mut r = blocking::connect();
    demo.produce(5, "order.placed");
    let addr = demo.addr();
    let rebound = format!("attacker.example:{}", addr.rsplit(':').next().unwrap());
    let (host, token) = (("Host", addr), ("X-Host-Token", demo.token.as_str()));
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let attempts: [(&str, Vec<Header>, u16); 6] = [
        ("a cross-site form", vec![host, form, ("Origin", "https://evil.example")], 403),
        ("a cross-site Origin with the token", vec![host, token, ("Origin", "https://evil.example")], 403),
        ("Sec-Fetch-Site: cross-site with the token", vec![host, token, ("Sec-Fetch-Site", "cross-site")], 403),
        ("no token", vec![host, form], 403),
        ("a wrong token", vec![host, ("X-Host-Token", "00112233445566778899aabbccddeeff")], 403),
        ("a rebound Host with the token", vec![("Host", rebound.as_str()), token], 421),
    ];
    for (what, headers, want) in &attempts {
        let (status, body) = http(addr, "POST", "/api/reset", headers, "confirm=yes");
        assert_eq!(status, *want, "{what}: {body}");
        assert!(body.contains("refused"), "{what}: a clear reason: {body}");
        assert_eq!(blocking::xlen(&mut r, &demo.stream), 5, "{what}: the stream was not wiped");
    }
    let (status, body) = http(addr, "POST", "/api/groups/notifications/consumers/worker-a/claim", &[host], "");
    assert_eq!(status, 403, "a claim without the token: {body}");

    // After DNS rebinding the page's requests name the attacker's host: nothing is served, least of all the token.
    for path in ["/", "/api/state", "/metrics"] {
        let (status, body) = http(addr, "GET", path, &[("Host", rebound.as_str())], "");
        assert_eq!(status, 421, "GET {path} with a rebound Host: {body}");
        assert!(!body.contains(&demo.token), "GET {path} leaked the token");
    }
    let (status, page) = http(addr, "GET", "/", &[host], "");
    assert_eq!(status, 200);
    assert!(page.contains(&demo.token), "the page carries the token");
    let (status, _) = http(addr, "GET", "/metrics", &[host], "");
    assert_eq!(status, 200, "Prometheus scrapes without a token");

    let origin = format!("http://{addr}");
    let same = [host, token, ("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let (status, body) = http(addr, "POST", "/api/reset", &same, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(blocking::xlen(&mut r, &demo.stream), 0, "the page's own reset works");
}

/// `host run --metrics` on loopback refuses a rebound `Host` and serves
/// Prometheus as before.
#[test]
fn metrics_endpoint_refuses_a_rebound_host() {
    let stream = unique_stream("web-metrics");
    let mut host = Host::run(&stream, "chaos", &["--metrics", "127.0.0.1:0"]).start();
    host.wait_log(MINUTE, "the metrics line", |log| log.iter().any(|l| l.contains("metrics on http://")));
    let line = host.log.iter().find(|l| l.contains("metrics on http://")).unwrap().clone();
    let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let rebound = format!("attacker.example:{}", addr.rsplit(':').next().unwrap());
    let (status, body) = http(&addr, "GET", "/metrics", &[("Host", rebound.as_str())], "");
    assert_eq!(status, 421, "{body}");
    let (status, body) = http(&addr, "GET", "/metrics", &[("Host", addr.as_str())], "");
    assert_eq!(status, 200);
    assert!(body.ends_with("# EOF\n"), "{body}");
    let (status, _) = host.terminate();
    assert!(status.success());
}

/// Everything a `host` command prints: exit status, stdout and stderr.
fn host_output(args: &[&str]) -> (bool, String) {
    let out = Host::new(args).logging().output();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A Redis password (in the user info, holding an `@`, or in a unix
/// socket's `?pass=`) is in no line the host prints: not in the
/// "consuming" line, `host bench`'s output or the demo's `/api/state`, nor
/// in the errors of a wrong password, an unknown user, an unreachable
/// server or a `host.toml` that quotes the URL.
#[test]
fn redis_passwords_are_never_printed() {
    const PASSWORD: &str = "p4ss@S3CRET";
    let leaked = |text: &str| text.contains("S3CRET");
    let dir = plugin_dir("web-secret");
    let socket = dir.join("redis.sock");
    let socket = socket.to_str().unwrap();
    let redis =
        PrivateRedis::start_with(&["--requirepass", PASSWORD, "--unixsocket", socket, "--unixsocketperm", "700"]);
    let port = redis.url.rsplit(':').next().unwrap();
    let tcp = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let unix = format!("redis+unix://{socket}?pass={PASSWORD}");
    let orders = plugin("orders");
    let orders = orders.to_str().unwrap();
    let stream = unique_stream("web-secret");

    for url in [&tcp, &unix] {
        let mut host = Host::new(["run", "--plugin", orders, "--stream", &stream, "--group", "g", "--redis", url])
            .logging()
            .start();
        host.wait_log(MINUTE, "the consuming line", |log| log.iter().any(|l| l.contains("consuming")));
        let (status, _) = host.terminate();
        assert!(status.success(), "{url}: {:#?}", host.log);
        let lines: Vec<&String> = host.log.iter().filter(|l| leaked(l)).collect();
        assert!(lines.is_empty(), "host run printed the password: {lines:#?}");
        assert!(host.log.iter().any(|l| l.contains("consuming") && l.contains("***")), "{:#?}", host.log);
    }
    let (ok, text) = host_output(&["bench", "--handler", "native", "--entries", "20", "--redis", &tcp]);
    assert!(ok && !leaked(&text), "host bench: {text}");

    let mut demo = Demo::start("web-secret", &["--redis", &tcp]);
    let state = demo.state().to_string();
    assert!(!leaked(&state), "/api/state shows the password: {state}");
    assert!(state.contains("redis://:***@127.0.0.1"), "/api/state names the server, masked: {state}");
    demo.process.terminate();
    let lines: Vec<&String> = demo.process.log.iter().filter(|l| leaked(l)).collect();
    assert!(lines.is_empty(), "host demo printed the password: {lines:#?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for url in [
        format!("redis://:wr0ng-S3CRET@127.0.0.1:{port}"),
        format!("redis://admin:{PASSWORD}@127.0.0.1:{port}"),
        format!("redis://:{PASSWORD}@127.0.0.1:{closed}"),
        format!("redis+unix://{socket}?pass=wr0ng-S3CRET"),
    ] {
        let run = ["run", "--plugin", orders, "--stream", &stream, "--group", "g", "--redis", &url];
        for args in [&run[..], &["info", "--stream", &stream, "--redis", &url]] {
            let (ok, text) = host_output(args);
            assert!(!ok, "{} with {url} fails", args[0]);
            assert!(!leaked(&text), "host {} printed the password: {text}", args[0]);
            assert!(text.contains("***"), "the error names the server, masked: {text}");
        }
    }

    // A misspelt key: the settings error quotes the line, URL and all.
    std::fs::write(dir.join("host.toml"), format!("redis_url = \"{tcp}\"\n")).unwrap();
    let (ok, text) = host_output(&["run", "--plugins", dir.to_str().unwrap()]);
    assert!(!ok && text.contains("redis_url"), "{text}");
    assert!(!leaked(&text), "the settings error printed the password: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Plugins named by relative paths are hot-reloaded as absolute ones are:
/// `host run --plugin FILE` swaps a replaced file in, `host run --plugins
/// DIR` applies an edited `host.toml`, and `host demo` with its default form
/// of path (`plugins/dist/orders.wasm`) shows a replaced plugin's version.
#[test]
fn relative_paths_hot_reload() {
    let dir = plugin_dir("web-relative");
    let dist = dir.join("plugins/dist");
    std::fs::create_dir_all(&dist).unwrap();
    for name in ["orders", "python-analytics", "chaos"] {
        std::fs::copy(plugin(name), dist.join(format!("{name}.wasm"))).unwrap();
    }
    let consuming = |log: &[String]| log.iter().any(|l| l.contains("consuming"));

    let stream = unique_stream("web-relative");
    let args =
        ["run", "--plugin", "plugins/dist/chaos.wasm", "--stream", &stream, "--group", "g", "--redis", redis_url()];
    let mut run = Host::new(args).logging().dir(&dir).start();
    run.wait_log(MINUTE, "host run to consume", consuming);
    let v2 = chaos_variant(b"relative-run");
    let version = host::plugin_version(&v2);
    install(&dist.join("chaos.wasm"), &v2);
    run.wait_log(MINUTE, "host run to reload the replaced file", |log| {
        log.iter().any(|l| l.contains("reloaded") && l.contains(&version))
    });
    assert!(run.terminate().0.success());

    let folder = dir.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(plugin("chaos"), folder.join("chaos.wasm")).unwrap();
    let stream = unique_stream("web-relative");
    let settings =
        |consumers: u32| format!("[plugins.chaos]\nstream = \"{stream}\"\ngroup = \"g\"\nconsumers = {consumers}\n");
    std::fs::write(folder.join("host.toml"), settings(1)).unwrap();
    let mut serve = Host::new(["run", "--plugins", "folder", "--redis", redis_url()]).logging().dir(&dir).start();
    serve.wait_log(MINUTE, "the folder's plugin to consume", consuming);
    std::fs::write(folder.join("host.toml"), settings(2)).unwrap();
    serve.wait_log(MINUTE, "the edited host.toml to apply", |log| {
        log.iter().any(|l| l.contains("settings changed"))
            && log.iter().any(|l| l.contains("consuming") && l.contains("consumers=2"))
    });
    assert!(serve.terminate().0.success());

    let plugins = [
        "--notifications-plugin",
        "plugins/dist/orders.wasm",
        "--analytics-plugin",
        "plugins/dist/python-analytics.wasm",
    ];
    let demo = Demo::start_in(Some(&dir), "web-relative", &plugins);
    let v2 = variant("orders", b"relative-demo");
    let version = host::plugin_version(&v2);
    install(&dist.join("orders.wasm"), &v2);
    poll(MINUTE, "the demo's plugins panel to show the replaced plugin", || {
        let panel = demo.ok("GET", "/api/plugins", None);
        panel.as_array().unwrap().iter().any(|p| p["group"] == "notifications" && p["version"] == version.as_str())
    });
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
}
