//! Folder mode and hot reload: plugins swapped under load with no loss, bad
//! files rejected while the old version keeps serving, removal and sidecar
//! changes applied without a restart.

use crate::support::*;
use crate::wait_until;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// (entry id, consumer, plugin version) of each `handled` log line, in log order.
fn handled_by(log: &[String]) -> Vec<(String, String, String)> {
    log.iter()
        .filter_map(|line| {
            let rest = line.split("handled ").nth(1)?;
            let mut words = rest.split_whitespace();
            let id = words.next()?.to_string();
            let consumer = words.nth(1)?.to_string();
            let version = line.split("version=").nth(1)?.split_whitespace().next()?.to_string();
            Some((id, consumer, version))
        })
        .collect()
}

/// Folder mode on `dir` serving `wasm` as plugin `tagger` on `stream` (group
/// `g`, consumers `a` and `b`), started and consuming.
fn serve_tagger(dir: &Path, stream: &str, wasm: &[u8]) -> HostProcess {
    std::fs::write(
        dir.join("tagger.toml"),
        format!("stream = \"{stream}\"\ngroup = \"g\"\nconsumers = [\"a\", \"b\"]\n"),
    )
    .unwrap();
    install(&dir.join("tagger.wasm"), wasm);
    let mut host = Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()]).logging().start();
    host.wait_log(MINUTE, "the plugin to start", |log| log.iter().any(|l| l.contains("consuming")));
    host
}

/// 50,000 entries flowing; v1 → v2 swapped midway by a rename into the
/// folder: every entry is handled exactly once, each consumer switches once
/// (never back), nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn hot_swap_under_load_loses_nothing() {
    let mut conn = redis().await;
    let stream = unique_stream("swap");
    let dir = plugin_dir("swap");
    let (v1, v2) = (chaos_variant(b"v1"), chaos_variant(b"v2"));
    let (h1, h2) = (host::plugin_version(&v1), host::plugin_version(&v2));
    let mut host = serve_tagger(&dir, &stream, &v1);
    let entries: Vec<_> = (0..50_000).map(|i| vec![("n", i.to_string().into_bytes())]).collect();
    let (first, second) = entries.split_at(20_000);
    let mut ids = produce(&mut conn, &stream, first).await;
    host.wait_log(MINUTE, "10,000 handled", |log| handled_list(log).len() >= 10_000);
    install(&dir.join("tagger.wasm"), &v2);
    ids.extend(produce(&mut conn, &stream, second).await);
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.wait_log(MINUTE, "every handled line", |log| handled_list(log).len() >= ids.len());
    let (status, _) = host.terminate();
    assert!(status.success());
    let loads = host.log.iter().filter(|l| l.contains("plugin compiled in") || l.contains("compile cache in")).count();
    assert_eq!(loads, 2, "start + one write = two loads (reading a plugin must not look like a change)");

    let handled = handled_by(&host.log);
    let mut seen = HashSet::new();
    for (id, _, _) in &handled {
        assert!(seen.insert(id.clone()), "{id} handled twice");
    }
    assert_eq!(seen, ids.iter().cloned().collect::<HashSet<_>>(), "every entry handled");
    let mut versions: HashMap<&str, Vec<&str>> = HashMap::new();
    for (_, consumer, version) in &handled {
        let seq = versions.entry(consumer).or_default();
        if seq.last() != Some(&version.as_str()) {
            seq.push(version);
        }
    }
    for (consumer, seq) in &versions {
        assert!(seq == &[h1.as_str(), h2.as_str()] || seq == &[h2.as_str()], "consumer {consumer} ran {seq:?}");
    }
    assert!(versions.values().any(|seq| seq.len() == 2), "a consumer switched mid-stream: {versions:?}");
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
}

/// Garbage, a truncated file and a component of another world written over a
/// working plugin (`--plugin FILE` is watched too): each is refused with an
/// error naming the file and the reason, and the old version keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn bad_files_keep_the_old_version_serving() {
    let mut conn = redis().await;
    let stream = unique_stream("badfile");
    let dir = plugin_dir("badfile");
    let file = dir.join("p.wasm");
    let good = chaos_variant(b"good");
    let version = host::plugin_version(&good);
    install(&file, &good);
    let args = ["run", "--plugin", file.to_str().unwrap(), "--stream", &stream, "--group", "g", "--redis", redis_url()];
    let mut host = Host::new(args).logging().start();
    host.wait_log(MINUTE, "the plugin to start", |log| log.iter().any(|l| l.contains("consuming")));
    // A batch plugin whose `handle-batch` has the wrong type: refused at
    // load, like the others (not loaded, then refused by every consumer).
    let wrong_batch = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "handle-batch" (func $f)))"#,
    )
    .unwrap();
    let bad: [(&str, Vec<u8>); 4] = [
        ("is not a WebAssembly file", b"garbage, not wasm".to_vec()),
        ("is not a valid component", good[..good.len() / 2].to_vec()),
        ("does not implement world", wasm::EMPTY_COMPONENT.to_vec()),
        ("its `handle-batch` is not", wrong_batch),
    ];
    for (i, (reason, bytes)) in bad.iter().enumerate() {
        install(&file, bytes);
        host.wait_log(MINUTE, reason, |log| {
            log.iter()
                .filter(|l| l.contains("reload of") && l.contains(&*file.to_string_lossy()) && l.contains(reason))
                .count()
                == 1
        });
        let id = produce(&mut conn, &stream, &[vec![("n", i.to_string().into_bytes())]]).await.remove(0);
        host.wait_log(MINUTE, "the entry handled by the old version", |log| {
            handled_by(log).iter().any(|(h, _, v)| *h == id && *v == version)
        });
    }
    let (status, _) = host.terminate();
    assert!(status.success());
}

/// Removing a plugin file stops its consumers with nothing lost; putting it
/// back starts them again, and they finish what was left pending.
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_plugin_stops_it_and_nothing_is_lost() {
    let mut conn = redis().await;
    let stream = unique_stream("remove");
    let dir = plugin_dir("remove");
    std::fs::write(
        dir.join("slow.toml"),
        format!("stream = \"{stream}\"\ngroup = \"g\"\nconsumers = [\"a\"]\ncount = 20\n"),
    )
    .unwrap();
    let bytes = std::fs::read(plugin("chaos")).unwrap();
    install(&dir.join("slow.wasm"), &bytes);
    let entries: Vec<_> = (0..200).map(|_| vec![("sleep_ms", b"10".to_vec())]).collect();
    let ids = produce(&mut conn, &stream, &entries).await;

    let mut host = Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()]).logging().start();
    host.wait_log(MINUTE, "some handled entries", |log| handled_list(log).len() >= 20);
    std::fs::remove_file(dir.join("slow.wasm")).unwrap();
    host.wait_log(MINUTE, "the plugin to stop", |log| log.iter().any(|l| l.contains("plugin stopped")));
    let stopped_at = handled_list(&host.log).len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.collect();
    assert_eq!(handled_list(&host.log).len(), stopped_at, "no entry handled after the stop");
    assert!(stopped_at < ids.len(), "stopped mid-stream");

    install(&dir.join("slow.wasm"), &bytes);
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.wait_log(MINUTE, "every entry handled", |log| handled_ids(log).len() >= ids.len());
    let (status, _) = host.terminate();
    assert!(status.success());
    assert_eq!(handled_ids(&host.log), ids.iter().cloned().collect::<HashSet<_>>());
}

/// A changed sidecar applies without a restart: a second consumer appears.
#[tokio::test(flavor = "multi_thread")]
async fn sidecar_change_applies_without_restart() {
    let mut conn = redis().await;
    let stream = unique_stream("sidecar");
    let dir = plugin_dir("sidecar");
    let sidecar = dir.join("p.toml");
    std::fs::write(&sidecar, format!("stream = \"{stream}\"\ngroup = \"g\"\nconsumers = [\"one\"]\n")).unwrap();
    install(&dir.join("p.wasm"), &std::fs::read(plugin("chaos")).unwrap());
    let mut host = Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()]).logging().start();
    wait_until!(MINUTE, "consumer one", consumer_names(&mut conn, &stream, "g").await == ["one"]);
    std::fs::write(&sidecar, format!("stream = \"{stream}\"\ngroup = \"g\"\nconsumers = [\"one\", \"two\"]\n"))
        .unwrap();
    wait_until!(MINUTE, "consumer two", consumer_names(&mut conn, &stream, "g").await.contains(&"two".to_string()));
    let id = produce(&mut conn, &stream, &[vec![("n", b"1".to_vec())]]).await.remove(0);
    host.wait_log(MINUTE, "the entry handled", |log| handled_ids(log).contains(&id));
    let (status, _) = host.terminate();
    assert!(status.success());
}

/// A restart loads the compiled plugin from the on-disk cache; a corrupt
/// cache entry is recompiled instead of failing the load.
#[test]
fn restart_is_served_from_the_compile_cache() {
    let cache = plugin_dir("cache");
    let orders = plugin("orders");
    let load = || {
        let engine = host::Engine::with_cache(Some(cache.clone())).unwrap();
        host::Plugin::load(&engine, &orders).unwrap().from_cache
    };
    assert!(!load(), "first load compiles");
    assert!(load(), "second load comes from the cache");
    let entries: Vec<PathBuf> =
        walk(&cache).into_iter().filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    std::fs::write(&entries[0], b"corrupt").unwrap();
    assert!(!load(), "a corrupt entry is recompiled");
    assert!(load(), "and cached again");
}

/// A restart of `host run` with the ~18 MB Python plugin is served from the
/// compile cache; both runs handle every order (and reject the malformed one).
#[tokio::test(flavor = "multi_thread")]
async fn python_plugin_restart_is_served_from_the_compile_cache() {
    let mut conn = redis().await;
    let cache = plugin_dir("py-cache");
    let wasm = plugin("python-orders");
    for (round, how) in [(1, "plugin compiled in"), (2, "plugin loaded from the compile cache in")] {
        let stream = unique_stream("py-cache");
        let mut entries: Vec<_> = (0..20).map(order).collect();
        entries[7][3].1 = b"12.345".to_vec();
        produce(&mut conn, &stream, &entries).await;
        let args = ["run", "--stream", &stream, "--group", "g", "--plugin", wasm.to_str().unwrap()];
        let mut host = Host::new(args).args(["--redis", redis_url()]).env("HOST_CACHE_DIR", &cache).logging().start();
        wait_drained(&mut conn, &stream, "g", 0).await;
        let (status, _) = host.terminate();
        assert!(status.success(), "round {round}: {status}");
        let loaded = host.log.iter().filter(|l| l.contains("python-orders") && l.contains(how)).count();
        assert_eq!(loaded, 1, "round {round}: expected one `{how}` line; log: {:#?}", host.log);
        // A large plugin says it is being compiled before the seconds that takes; not when cached.
        let announced = host.log.iter().filter(|l| l.contains("compiling a ") && l.contains("python-orders")).count();
        assert_eq!(announced, usize::from(round == 1), "round {round}: log: {:#?}", host.log);
        let orders = host.log.iter().filter(|l| l.contains(": amount ")).count();
        assert_eq!(orders, 19, "round {round}: every valid order logged once; log: {:#?}", host.log);
        let dead = dead_letters(&mut conn, &stream).await;
        assert_eq!(dead.len(), 1, "round {round}");
        assert_eq!(dead[0].meta("dlq:error"), Some("malformed amount \"12.345\""));
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

/// One process serves several plugins on several streams: one by its sidecar,
/// one by a `[plugins.NAME]` table in host.toml.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_serves_several_plugins_on_several_streams() {
    let mut conn = redis().await;
    let (orders_stream, chaos_stream) = (unique_stream("folder-orders"), unique_stream("folder-chaos"));
    let dir = plugin_dir("several");
    install(&dir.join("orders.wasm"), &std::fs::read(plugin("orders")).unwrap());
    install(&dir.join("chaos.wasm"), &std::fs::read(plugin("chaos")).unwrap());
    std::fs::write(dir.join("orders.toml"), format!("stream = \"{orders_stream}\"\ngroup = \"g\"\n")).unwrap();
    std::fs::write(
        dir.join("host.toml"),
        format!(
            "redis = \"{}\"\n\n[plugins.chaos]\nstream = \"{chaos_stream}\"\ngroup = \"g\"\nconsumers = 2\n",
            redis_url()
        ),
    )
    .unwrap();
    let orders: Vec<_> = (0..100).map(order).collect();
    produce(&mut conn, &orders_stream, &orders).await;
    produce(&mut conn, &chaos_stream, &orders).await;

    // No --redis flag: the URL comes from host.toml.
    let mut host = Host::new(["run", "--plugins", dir.to_str().unwrap()]).logging().start();
    wait_drained(&mut conn, &orders_stream, "g", 0).await;
    wait_drained(&mut conn, &chaos_stream, "g", 0).await;
    let (status, _) = host.terminate();
    assert!(status.success());
    assert_eq!(consumer_names(&mut conn, &chaos_stream, "g").await.len(), 2);
    assert_eq!(handled_ids(&host.log).len(), 100, "chaos handled its stream");
}

/// A `consumer` plugin replaced under load by a `batch-consumer` one (same
/// file name, folder mode): every entry is handled exactly once, by one
/// version or the other, and nothing is left pending.
#[tokio::test(flavor = "multi_thread")]
async fn hot_swap_to_a_batch_plugin_loses_nothing() {
    let mut conn = redis().await;
    let stream = unique_stream("swap-batch");
    let dir = plugin_dir("swap-batch");
    let mut host = serve_tagger(&dir, &stream, &std::fs::read(plugin("chaos")).unwrap());
    let batch = std::fs::read(plugin("chaos-batch")).unwrap();
    let entries: Vec<_> = (0..20_000).map(|i| vec![("n", i.to_string().into_bytes())]).collect();
    let (first, second) = entries.split_at(8_000);
    let mut ids = produce(&mut conn, &stream, first).await;
    host.wait_log(MINUTE, "4,000 handled", |log| handled_list(log).len() >= 4_000);
    install(&dir.join("tagger.wasm"), &batch);
    ids.extend(produce(&mut conn, &stream, second).await);
    wait_drained(&mut conn, &stream, "g", 0).await;
    host.wait_log(MINUTE, "every handled line", |log| handled_list(log).len() >= ids.len());
    let (status, _) = host.terminate();
    assert!(status.success(), "{status}");

    let handled = handled_list(&host.log);
    assert_eq!(handled.len(), ids.len(), "each entry handled exactly once");
    assert_eq!(handled.iter().collect::<HashSet<_>>(), ids.iter().collect::<HashSet<_>>());
    let version = host::plugin_version(&batch);
    assert!(
        host.log.iter().any(|l| l.contains("batch of") && l.contains(&version)),
        "the batch plugin took over: {:#?}",
        &host.log[host.log.len().saturating_sub(20)..]
    );
}

/// A folder's settings out of range are errors, as the same flags would be:
/// a sidecar `count = 0` (or a `[plugins.NAME]` table with `max_memory_mb =
/// 0`) leaves that plugin unstarted, with a log line naming the file and the
/// key; the folder's other plugins serve.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_plugin_with_settings_out_of_range_is_not_started() {
    let mut conn = redis().await;
    let streams: Vec<String> = (0..3).map(|_| unique_stream("folder-range")).collect();
    let dir = plugin_dir("folder-range");
    for name in ["good", "zero", "tabled"] {
        install(&dir.join(format!("{name}.wasm")), &std::fs::read(plugin("chaos")).unwrap());
    }
    std::fs::write(dir.join("good.toml"), format!("stream = \"{}\"\ngroup = \"g\"\n", streams[0])).unwrap();
    let zero = dir.join("zero.toml");
    std::fs::write(&zero, format!("stream = \"{}\"\ngroup = \"g\"\ncount = 0\n", streams[1])).unwrap();
    let host_toml = dir.join("host.toml");
    std::fs::write(
        &host_toml,
        format!("[plugins.tabled]\nstream = \"{}\"\ngroup = \"g\"\nmax_memory_mb = 0\n", streams[2]),
    )
    .unwrap();
    let mut host = Host::new(["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()]).logging().start();
    let refused = |log: &[String], key: &str, place: &str| {
        log.iter().any(|l| l.contains("not started") && l.contains(&format!("invalid {key} in {place}: 0 is outside")))
    };
    let tabled = format!("[plugins.tabled] of {}", host_toml.display());
    host.wait_log(MINUTE, "both refusals", |log| {
        refused(log, "count", &zero.display().to_string()) && refused(log, "max_memory_mb", &tabled)
    });
    let id = produce(&mut conn, &streams[0], &[vec![("n", b"1".to_vec())]]).await.remove(0);
    host.wait_log(MINUTE, "the good plugin's entry handled", |log| handled_ids(log).contains(&id));
    let (status, _) = host.terminate();
    assert!(status.success());
    for stream in &streams[1..] {
        assert!(consumer_names(&mut conn, stream, "g").await.is_empty(), "no consumer on {stream}");
    }
}
