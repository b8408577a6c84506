//! Issue 16, sandbox limits and hardening: an instance's memories and tables
//! share the one budget of `--max-memory-mb` (wasmtime caps each on its own)
//! and how many it may make is capped, so a hand-assembled component with many
//! of them cannot take many times the limit; the compile cache maps no code
//! that it did not write into a folder only this user can write; a sidecar's
//! relative grant is next to it, and cannot widen host.toml's ceiling.

use crate::support::*;
use std::io::BufRead as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What each of a bomb's hog core instances makes at instantiation, and
/// fills in its start function so it is really resident.
#[derive(Clone, Copy)]
enum Hog {
    /// A linear memory of this many 64 KiB pages.
    Memory { pages: u32 },
    /// A `funcref` table of this many elements.
    Table { elements: u32 },
}

/// A component of world `consumer` whose `handle` acks every entry, and
/// which instantiates `hogs` core instances of a module making one `hog`.
fn bomb(hogs: usize, hog: Hog) -> Vec<u8> {
    let hog_module = match hog {
        Hog::Memory { pages } => format!(
            "(core module $hog (memory {pages})
               (func $fill (memory.fill (i32.const 0) (i32.const 1) (i32.const {})))
               (start $fill))",
            pages * 65536
        ),
        Hog::Table { elements } => format!(
            "(core module $hog (table {elements} funcref) (func $f) (elem declare func $f)
               (func $fill (table.fill (i32.const 0) (ref.func $f) (i32.const {elements})))
               (start $fill))"
        ),
    };
    let instances = "(core instance (instantiate $hog))\n".repeat(hogs);
    let wat = format!(
        r#"(component
  {hog_module}
  {instances}
  ;; `handle` returns a pointer to `result::ok` (tag 0 at address 0);
  ;; `realloc` is a bump allocator, reset at each call.
  (core module $main
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $at i32)
      (local.set $at (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
                              (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (global.set $next (i32.const 1024))
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0)))
  (core instance $m (instantiate $main))
  (type $field' (record (field "name" string) (field "value" (list u8))))
  (export $field "field" (type $field'))
  (type $entry' (record (field "stream" string) (field "id" string) (field "fields" (list $field))
                        (field "delivery-count" u32) (field "group" string) (field "consumer" string)))
  (export $entry "entry" (type $entry'))
  (type $retry' (record (field "reason" string) (field "delay-ms" (option u64))))
  (export $retry "retry" (type $retry'))
  (type $error' (variant (case "retry" $retry) (case "reject" string)))
  (export $error "error" (type $error'))
  (func (export "handle") (param "entry" $entry) (result (result (error $error)))
    (canon lift (core func $m "handle") (memory (core memory $m "memory")) (realloc (core func $m "realloc")))))"#
    );
    wat::parse_str(&wat).expect("the bomb's WAT assembles")
}

/// How a `host run` of a bomb ended.
struct Outcome {
    /// The exit status (`None`: it was still serving, and was killed).
    exit: Option<i32>,
    /// Peak resident memory of the host process, MiB.
    peak_rss_mb: u64,
    /// Its stderr.
    log: Vec<String>,
    /// Entries of the stream its group acknowledged.
    acked: u64,
}

/// Runs `host run` on one entry with `wasm` as the plugin and
/// `--max-memory-mb max_mb` until the host exits, or until it acks the entry
/// (then it is killed: a bomb it should have refused is serving).
async fn run_bomb(name: &str, wasm: &[u8], max_mb: u32) -> Outcome {
    let dir = plugin_dir(&format!("limits-{name}"));
    let plugin = dir.join(format!("{name}.wasm"));
    std::fs::write(&plugin, wasm).unwrap();
    let mut conn = redis().await;
    let stream = unique_stream(name);
    produce(&mut conn, &stream, &[vec![("n", b"1".to_vec())]]).await;
    #[allow(clippy::zombie_processes, reason = "reaped by `Reaped`, with wait4 for its peak memory")]
    let mut child =
        Host::new(["run", "--stream", &stream, "--group", "g", "--redis", redis_url(), "--block-ms", "100"])
            .arg("--plugin")
            .arg(&plugin)
            .args(["--max-memory-mb", &max_mb.to_string()])
            .env("HOST_CACHE_DIR", dir.join("cache"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::BufReader::new(stderr).lines().map_while(Result::ok).collect());
    let mut host = Reaped { pid: child.id() as i32, reaped: false };
    let started = Instant::now();
    let (exit, usage) = loop {
        if let Some((status, usage)) = host.wait(false) {
            break (Some(status), usage);
        }
        let acked = group_info(&mut conn, &stream, "g").await.is_some_and(|g| g.lag == Some(0) && g.pending == 0);
        if acked || started.elapsed() > Duration::from_secs(60) {
            // SAFETY: signalling the child this test started.
            unsafe { libc::kill(host.pid, libc::SIGKILL) };
            break (None, host.wait(true).expect("killed host reaped").1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log: Vec<String> = reader.join().unwrap();
    let group = group_info(&mut conn, &stream, "g").await;
    let acked = group.map_or(0, |g| g.entries_read.unwrap_or(0) - g.pending);
    let _ = std::fs::remove_dir_all(&dir);
    // ru_maxrss is in KiB on Linux.
    Outcome { exit, peak_rss_mb: usage.ru_maxrss as u64 >> 10, log, acked }
}

/// A child process reaped with `wait4`, which also reports its peak memory;
/// killed and reaped when dropped still running (a failed assertion).
struct Reaped {
    pid: i32,
    reaped: bool,
}

impl Reaped {
    /// Its exit code and resource usage, once it exited (`block`: wait for that).
    fn wait(&mut self, block: bool) -> Option<(i32, libc::rusage)> {
        let mut status = 0;
        // SAFETY: a zeroed rusage is valid; wait4 on the child this test started.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if block { 0 } else { libc::WNOHANG };
        if unsafe { libc::wait4(self.pid, &mut status, flags, &mut usage) } != self.pid {
            return None;
        }
        self.reaped = true;
        Some((if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 }, usage))
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: signalling the child this test started.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.wait(true);
        }
    }
}

/// Asserts the host refused the bomb at instantiation: it exited with an
/// error saying `why`, acked nothing, and stayed under `rss_mb` of memory.
fn assert_refused(outcome: &Outcome, why: &str, rss_mb: u64) {
    let Outcome { exit, peak_rss_mb, log, acked } = outcome;
    assert_eq!(
        *exit,
        Some(1),
        "the host should refuse the plugin and exit (peak RSS {peak_rss_mb} MiB); log: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("cannot instantiate plugin") && l.contains(why)),
        "expected `{why}`: {log:#?}"
    );
    assert_eq!(*acked, 0);
    assert!(*peak_rss_mb < rss_mb, "peak RSS {peak_rss_mb} MiB, over {rss_mb} MiB");
}

/// Twelve memories of 16 MiB each fit a 20 MiB limit one by one, not
/// together: the plugin is refused at instantiation and the host's peak
/// memory stays far below the 192 MiB the bomb fills. The same component
/// with two such memories under a 40 MiB limit serves (the component is valid).
#[tokio::test(flavor = "multi_thread")]
async fn many_memories_share_one_budget() {
    let served = run_bomb("memories-ok", &bomb(2, Hog::Memory { pages: 256 }), 40).await;
    assert_eq!((served.exit, served.acked), (None, 1), "a bomb within the budget serves: {:#?}", served.log);

    let refused = run_bomb("memories", &bomb(12, Hog::Memory { pages: 256 }), 20).await;
    assert_refused(&refused, "plugin memory limit", 120);
}

/// Twelve tables of a million elements (8 MiB of host memory each) each
/// fit the per-table cap, not together: refused, memory bounded.
#[tokio::test(flavor = "multi_thread")]
async fn many_tables_share_one_budget() {
    let refused = run_bomb("tables", &bomb(12, Hog::Table { elements: 1_000_000 }), 256).await;
    assert_refused(&refused, "plugin table limit", 120);
}

/// Forty empty-ish memories (64 KiB each, 2.5 MiB together) are within the
/// budget but over the count of memories an instance may make.
#[tokio::test(flavor = "multi_thread")]
async fn memory_count_is_capped() {
    let refused = run_bomb("memory-count", &bomb(40, Hog::Memory { pages: 1 }), 256).await;
    assert_refused(&refused, "memory count too high", 120);
}

/// Whether loading fixture `name` with a fresh engine caching in `cache`
/// came from the cache.
fn load_from_cache(cache: &std::path::Path, name: &str) -> bool {
    let engine = host::Engine::with_cache(Some(cache.to_path_buf())).unwrap();
    host::Plugin::load(&engine, &plugin(name)).unwrap().from_cache
}

/// The compiled entries (`*.cwasm`) under `cache`, by plugin version.
fn cache_entries(cache: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let mut found = Vec::new();
    for compat in std::fs::read_dir(cache).unwrap().flatten().filter(|e| e.path().is_dir()) {
        for entry in std::fs::read_dir(compat.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                let stem = path.file_stem().unwrap().to_string_lossy();
                found.push((stem[..12].to_string(), path));
            }
        }
    }
    found
}

/// A compiled entry swapped for another plugin's (real native code, written
/// by this cache) is not loaded: the plugin is compiled afresh and its entry
/// rewritten. A new cache folder is private (0700).
#[test]
fn a_tampered_cache_entry_is_not_loaded() {
    use std::os::unix::fs::PermissionsExt as _;
    let cache = plugin_dir("cache-tampered").join("compiled");
    assert!(!load_from_cache(&cache, "orders") && !load_from_cache(&cache, "noop"), "first loads compile");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "a new cache folder is private, not {mode:o}");
    let entries = cache_entries(&cache);
    let entry_of = |name: &str| {
        let version = host::plugin_version(&std::fs::read(plugin(name)).unwrap());
        entries
            .iter()
            .find(|(v, _)| *v == version)
            .unwrap_or_else(|| panic!("no entry for {name}: {entries:?}"))
            .1
            .clone()
    };
    std::fs::copy(entry_of("noop"), entry_of("orders")).unwrap();
    assert!(!load_from_cache(&cache, "orders"), "the swapped entry was loaded as orders' code");
    assert!(load_from_cache(&cache, "orders"), "orders' entry is rewritten and then used");
    let _ = std::fs::remove_dir_all(cache.parent().unwrap());
}

/// A cache folder others may write is not used: every load compiles and
/// nothing is written there.
#[test]
fn a_cache_folder_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let cache = plugin_dir("cache-open");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(!load_from_cache(&cache, "orders"));
    assert!(!load_from_cache(&cache, "orders"), "loaded code from a world-writable folder");
    assert_eq!(cache_entries(&cache), vec![], "wrote code into a world-writable folder");
    let _ = std::fs::remove_dir_all(&cache);
}

const MINUTE: Duration = Duration::from_secs(60);

/// Folder mode on `dir` (plus `args`), caching in a folder of its own,
/// until each of `plugins` started or was refused.
fn serve_folder(dir: &std::path::Path, args: &[&str], plugins: usize) -> HostProcess {
    let cache = dir.join(".cache");
    let mut all = vec!["run", "--plugins", dir.to_str().unwrap(), "--redis", redis_url()];
    all.extend_from_slice(args);
    let mut host = Host::new(&all).env("HOST_CACHE_DIR", &cache).logging().start();
    let settled = |l: &String| l.contains("consuming") || l.contains("not started");
    host.wait_log(MINUTE, "the plugins to start or be refused", |log| {
        log.iter().filter(|l| settled(l)).count() >= plugins
    });
    host
}

/// The chaos plugin of a folder reads `file` (an entry on `stream`): what it got.
async fn read_through(conn: &mut redis::aio::MultiplexedConnection, stream: &str, file: &std::path::Path) -> String {
    produce(conn, stream, &[vec![("read_file", file.to_string_lossy().into_owned().into_bytes())]]).await;
    crate::wait_until!(MINUTE, "the probe's dead letter", !dead_letters(conn, stream).await.is_empty());
    dead_letters(conn, stream).await[0].meta("dlq:error").unwrap().to_string()
}

/// A sidecar's relative `[grant]` directory is the one next to the sidecar,
/// not one under the host's working directory: the plugin starts and reads
/// a file there.
#[tokio::test(flavor = "multi_thread")]
async fn a_relative_grant_resolves_next_to_the_sidecar() {
    let mut conn = redis().await;
    let stream = unique_stream("relative-grant");
    let dir = plugin_dir("relative-grant");
    std::fs::create_dir(dir.join("reference")).unwrap();
    std::fs::write(dir.join("reference/rates.txt"), "EUR=1").unwrap();
    let sidecar = format!("stream = \"{stream}\"\ngroup = \"g\"\n[grant]\ndirs = [\"reference\"]\n");
    std::fs::write(dir.join("chaos.toml"), sidecar).unwrap();
    install(&dir.join("chaos.wasm"), &std::fs::read(plugin("chaos")).unwrap());
    let mut host = serve_folder(&dir, &[], 1);
    assert!(!host.log.iter().any(|l| l.contains("not started")), "{:#?}", host.log);
    assert_eq!(read_through(&mut conn, &stream, &dir.join("reference/rates.txt")).await, "ok: EUR=1");
    host.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

/// host.toml's `[grant_ceiling]` (kept outside the plugin folder) bounds what
/// sidecars grant: a sidecar granting a directory inside it serves; one
/// granting a directory outside it, or an environment variable it does not
/// name, is refused with an error naming the sidecar; narrowing the ceiling
/// later stops the plugin that no longer fits.
#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_cannot_widen_the_grant_ceiling() {
    let mut conn = redis().await;
    let root = plugin_dir("ceiling");
    let dir = root.join("plugins");
    std::fs::create_dir_all(dir.join("private")).unwrap();
    std::fs::create_dir_all(root.join("shared/rates")).unwrap();
    std::fs::write(root.join("shared/rates/eur.txt"), "EUR=1").unwrap();
    let host_toml = root.join("host.toml");
    std::fs::write(&host_toml, "[grant_ceiling]\ndirs = [\"shared\"]\nenv = [\"TZ\"]\n").unwrap();
    let streams: Vec<String> = (0..3).map(|_| unique_stream("ceiling")).collect();
    let grants = [
        format!("dirs = [\"{}\"]", root.join("shared/rates").display()),
        "dirs = [\"private\"]".to_string(),
        "env = [\"HOME\"]".to_string(),
    ];
    for ((name, stream), grant) in ["narrow", "wide-dir", "wide-env"].iter().zip(&streams).zip(&grants) {
        std::fs::write(
            dir.join(format!("{name}.toml")),
            format!("stream = \"{stream}\"\ngroup = \"g\"\n[grant]\n{grant}\n"),
        )
        .unwrap();
        install(&dir.join(format!("{name}.wasm")), &std::fs::read(plugin("chaos")).unwrap());
    }
    let mut host = serve_folder(&dir, &["--config", host_toml.to_str().unwrap()], 3);
    let refused = |name: &str| {
        let sidecar = dir.join(format!("{name}.toml"));
        host.log.iter().any(|l| {
            l.contains("not started") && l.contains(&sidecar.display().to_string()) && l.contains("[grant_ceiling]")
        })
    };
    assert!(refused("wide-dir") && refused("wide-env"), "both widening sidecars refused: {:#?}", host.log);
    assert!(!refused("narrow"), "{:#?}", host.log);
    assert_eq!(read_through(&mut conn, &streams[0], &root.join("shared/rates/eur.txt")).await, "ok: EUR=1");

    // Narrowing the ceiling below what a running plugin holds stops it.
    install(&host_toml, b"[grant_ceiling]\ndirs = [\"shared/other\"]\n");
    host.wait_log(MINUTE, "narrow to stop", |log| {
        log.iter().any(|l| l.contains("stopping it: its grants are beyond the new [grant_ceiling]"))
            && log.iter().any(|l| l.contains("plugin stopped") && l.contains("narrow"))
    });
    host.terminate();
    let _ = std::fs::remove_dir_all(&root);
}
