//! Bad input to the `host` binary: one clear error line and a non-zero exit.

use crate::support::*;
use std::path::Path;

/// Runs `host run` with `plugin` (and extra flags) and returns (exit code, stderr).
fn run_host(plugin: &Path, redis: &str, extra: &[&str]) -> (i32, String) {
    let out = Host::new(["run", "--stream", "test:cli", "--group", "g", "--redis", redis, "--plugin"])
        .arg(plugin)
        .args(extra)
        .env_remove("REDIS_URL")
        .output();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_error(code: i32, stderr: &str, expected: &str) {
    assert_ne!(code, 0, "must exit non-zero; stderr: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line expected, got: {stderr}");
    assert!(errors[0].contains(expected), "error line {:?} should mention {expected:?}", errors[0]);
    assert!(!stderr.contains("panicked"), "must not panic: {stderr}");
}

fn fixture(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("host-cli-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A missing plugin file names the file.
#[test]
fn missing_plugin_file() {
    let (code, err) = run_host(Path::new("/nonexistent/nope.wasm"), redis_url(), &[]);
    assert_error(code, &err, "plugin file /nonexistent/nope.wasm not found");
}

/// A file that is not WebAssembly, and a core module that is not a component.
#[test]
fn file_that_is_not_a_component() {
    let text = fixture("text.wasm", b"this is not wasm");
    let (code, err) = run_host(&text, redis_url(), &[]);
    assert_error(code, &err, "is not a WebAssembly file");

    let core = fixture("core.wasm", wasm::CORE_MODULE);
    let (code, err) = run_host(&core, redis_url(), &[]);
    assert_error(code, &err, "is a core WebAssembly module, not a component");
}

/// Components of another world: one without `handle`, one importing what the host lacks.
#[test]
fn component_of_another_world() {
    let empty = fixture("empty.wasm", wasm::EMPTY_COMPONENT);
    let (code, err) = run_host(&empty, redis_url(), &[]);
    assert_error(code, &err, "does not implement world redis-streams:plugin/consumer@0.1.3");
    assert!(err.contains("handle"), "should say `handle` is missing: {err}");

    let foreign = fixture("foreign.wasm", wasm::FOREIGN_IMPORT);
    let (code, err) = run_host(&foreign, redis_url(), &[]);
    assert_error(code, &err, "does not implement world");
    assert!(err.contains("acme:db/query@1.0.0"), "should name the missing import: {err}");
}

/// An unreachable Redis names the URL.
#[test]
fn unreachable_redis() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    let (code, err) = run_host(&plugin("orders"), &url, &[]);
    assert_error(code, &err, &format!("cannot reach Redis at {url}"));
}

/// Bad flags exit 2 with clap's message.
#[test]
fn bad_flags() {
    let (code, err) = run_host(&plugin("orders"), redis_url(), &["--count", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--count"), "{err}");

    let out = Host::new(["run", "--bogus"]).output();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

/// `host produce` appends one entry with its fields in order, honours
/// `--maxlen`, prints the new id, and rejects a field without `=`.
#[tokio::test(flavor = "multi_thread")]
async fn produce_appends_an_entry() {
    let mut conn = redis().await;
    let stream = unique_stream("produce");
    let produce = |fields: &[&str]| {
        Host::new(["produce", "--stream", &stream, "--maxlen", "1000", "--redis", redis_url()]).args(fields).output()
    };
    let out = produce(&["type=order.placed", "amount=12.50", "note=a=b"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let entries: Vec<(String, Vec<String>)> =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let expected = ["type", "order.placed", "amount", "12.50", "note", "a=b"].map(String::from).to_vec();
    assert_eq!(entries, vec![(id, expected)]);

    let out = produce(&["novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected FIELD=VALUE"));
}

/// `host check` describes a plugin of every language (and of the batch world),
/// and refuses what would not run.
#[test]
fn check_describes_plugins_and_refuses_others() {
    for name in ["orders", "python-orders", "js-orders", "c-orders", "zig-orders"] {
        let wasm = plugin(name);
        let out = Host::new(["check"]).arg(&wasm).output();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        let version = host::plugin_version(&std::fs::read(&wasm).unwrap());
        assert!(stdout.contains("ok, a component of world redis-streams:plugin/consumer@0.1.3"), "{stdout}");
        assert!(stdout.contains(&format!("  name     {name}\n")), "{stdout}");
        assert!(stdout.contains(&format!("  version  {version}\n")), "{stdout}");
        assert!(stdout.contains("handle"), "{stdout}");
        assert!(stdout.contains("redis-streams:plugin/log@0.1.3"), "{stdout}");
    }
    let out = Host::new(["check"]).arg(plugin("noop-batch")).output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok, a component of world redis-streams:plugin/batch-consumer@0.1.3"), "{stdout}");
    assert!(stdout.contains("  exports  handle-batch\n"), "{stdout}");
    for (file, expected) in [
        (fixture("check-text.wasm", b"this is not wasm"), "is not a WebAssembly file"),
        (fixture("check-core.wasm", wasm::CORE_MODULE), "is a core WebAssembly module"),
        (fixture("check-empty.wasm", wasm::EMPTY_COMPONENT), "does not implement world"),
        (fixture("check-foreign.wasm", wasm::FOREIGN_IMPORT), "does not implement world"),
        (Path::new("/nonexistent/x.wasm").to_path_buf(), "not found"),
    ] {
        let out = Host::new(["check"]).arg(&file).output();
        assert_error(out.status.code().unwrap_or(-1), &String::from_utf8_lossy(&out.stderr), expected);
    }
}

/// `--log-format json`: every log line is one JSON object; plugin lines carry
/// the plugin's name and version as fields.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let mut conn = redis().await;
    let stream = unique_stream("json-logs");
    produce(&mut conn, &stream, &[order(0)]).await;
    let mut host = Host::run(&stream, "orders", &["--log-format", "json"]).start();
    host.wait_log(std::time::Duration::from_secs(60), "the order's log line", |log| {
        log.iter().any(|l| l.contains("placed for"))
    });
    let (status, _) = host.terminate();
    assert!(status.success());
    let version = host::plugin_version(&std::fs::read(plugin("orders")).unwrap());
    let lines: Vec<serde_json::Value> = host
        .log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let order = lines.iter().find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("placed for")));
    let order = order.expect("the plugin's line");
    assert_eq!(order["level"], "INFO");
    assert_eq!(order["fields"]["plugin"], "orders");
    assert_eq!(order["fields"]["version"], version.as_str());
}

#[test]
fn version_names_the_plugin_contract() {
    let out = Host::new(["--version"]).output();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let wit = std::fs::read_to_string(root().join("wit/plugin.wit")).unwrap();
    let package = wit.lines().find_map(|l| l.strip_prefix("package ")).unwrap().trim_end_matches(';');
    let manifest = std::fs::read_to_string(root().join("host/Cargo.toml")).unwrap();
    let version = manifest.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"');
    assert!(text.starts_with(&format!("host {version} ")), "{text}");
    assert!(text.contains(package), "--version does not name {package}: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_without_its_plugins_says_what_to_do() {
    // Outside a checkout, in a binary without built-in plugins: a clear error,
    // no panic, and the stream it would have reset is left alone.
    let mut conn = redis().await;
    let stream = unique_stream("demo-no-plugins");
    produce(&mut conn, &stream, &[vec![("keep", b"me".to_vec())]]).await;
    let dir = plugin_dir("demo-no-plugins");
    let args = ["demo", "--port", "0", "--redis", redis_url(), "--stream-key", &stream];
    let out = Host::new(args).dir(&dir).env("HOME", &dir).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_error(out.status.code().unwrap_or(-1), &stderr, "make demo-plugins");
    assert!(stderr.contains("--plugins-dir"), "{stderr}");
    let len: u64 = redis::cmd("XLEN").arg(&stream).query_async(&mut conn).await.unwrap();
    assert_eq!(len, 1, "the demo reset the stream before finding out its plugins are missing");
}
