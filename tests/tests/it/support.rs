//! Owns the external resources of the test binary: one `redis-server` on a
//! free loopback port (killed by pid when the binary exits), the fixture
//! plugins (built once per run with `make plugins`) and the `host` binary.

use anyhow::{Context, Result, bail};
use host::{RunConfig, RunReport};
use redis::aio::MultiplexedConnection;
use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

static REDIS_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn kill_redis() {
    let pid = REDIS_PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: plain syscalls on a pid this process started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// URL of this test binary's own redis-server, started on first use.
pub fn redis_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| start_redis().unwrap_or_else(|e| panic!("{e:#}")))
}

fn start_redis() -> Result<String> {
    let (child, url) = spawn_redis_server(&[])?;
    REDIS_PID.store(child.id() as i32, Ordering::SeqCst);
    // SAFETY: registering a plain extern "C" fn.
    unsafe { libc::atexit(kill_redis) };
    Ok(url)
}

/// Starts a `redis-server` (no persistence, plus `extra` settings) on a free
/// loopback port and waits until it answers.
fn spawn_redis_server(extra: &[&str]) -> Result<(Child, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child: Child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start redis-server: install Debian's redis-server package (`make test` does)")?;
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // With `requirepass`, NOAUTH is the answer of a server that is up.
        if let Ok(mut conn) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut conn).map_or_else(|e| e.code() == Some("NOAUTH"), |_| true)
        {
            return Ok((child, url));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("redis-server on port {port} did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A redis-server of one test's own, for tests that disturb the server
/// (killing connections); killed by pid when dropped.
pub struct PrivateRedis {
    child: Child,
    pub url: String,
}

impl PrivateRedis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With `extra` redis-server settings (e.g. `--requirepass`); `url` has no password.
    pub fn start_with(extra: &[&str]) -> Self {
        let (child, url) = spawn_redis_server(extra).unwrap_or_else(|e| panic!("{e:#}"));
        PrivateRedis { child, url }
    }

    pub async fn connect(&self) -> MultiplexedConnection {
        redis::Client::open(self.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to the test Redis.
pub async fn redis() -> MultiplexedConnection {
    redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.expect("connect to test redis")
}

/// A stream key no other test uses.
pub fn unique_stream(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("test:{name}:{}", N.fetch_add(1, Ordering::SeqCst))
}

/// Path of a fixture plugin, building all of them once per run.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let status = Command::new("make")
            .arg("-C")
            .arg(root())
            .arg("plugins")
            .stdout(Stdio::null())
            .status()
            .expect("cannot run make: install make");
        assert!(status.success(), "`make plugins` failed: the guest toolchain is required");
        *built = true;
    }
    let path = root().join("plugins/dist").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} missing after `make plugins`", path.display());
    path
}

/// A fresh plugin folder for one test.
pub fn plugin_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("host-plugins-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The chaos plugin with a custom section appended: same behaviour, other
/// bytes, so another version hash.
pub fn chaos_variant(tag: &[u8]) -> Vec<u8> {
    variant("chaos", tag)
}

/// Fixture plugin `name` with a custom section appended: same behaviour,
/// other bytes, so another version hash.
pub fn variant(name: &str, tag: &[u8]) -> Vec<u8> {
    let mut bytes = std::fs::read(plugin(name)).unwrap();
    let name = b"tag";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + tag.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag);
    bytes
}

/// Writes `bytes` to `path` the way deploy tools do: a temporary file, then a rename.
pub fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The `host` binary of this build, brought up to date once per run (cargo
/// does not rebuild another package's binary for this test crate).
pub fn host_bin() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "host", "--bin", "host"])
            .current_dir(root())
            .status()
            .expect("cannot run cargo to build the host binary");
        assert!(status.success(), "building the host binary failed");
    });
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash> → target/<profile>/host
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("host");
    assert!(bin.exists(), "{} not found: run `cargo build -p host` first (`make test` does)", bin.display());
    bin
}

/// Appends entries, pipelined; returns their ids in order.
pub async fn produce(conn: &mut MultiplexedConnection, stream: &str, entries: &[Vec<(&str, Vec<u8>)>]) -> Vec<String> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(500) {
        let mut pipe = redis::pipe();
        for fields in chunk {
            let cmd = pipe.cmd("XADD").arg(stream).arg("*");
            for (name, value) in fields {
                cmd.arg(*name).arg(value.as_slice());
            }
        }
        let chunk_ids: Vec<String> = pipe.query_async(conn).await.expect("XADD");
        ids.extend(chunk_ids);
    }
    ids
}

/// A valid order event of the redis.io guide.
pub fn order(i: usize) -> Vec<(&'static str, Vec<u8>)> {
    let kinds = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];
    vec![
        ("type", kinds[i % 4].as_bytes().to_vec()),
        ("order_id", format!("o-{i}").into_bytes()),
        ("customer", format!("customer-{}", i % 7).into_bytes()),
        ("amount", format!("{}.{:02}", i % 500, i % 100).into_bytes()),
    ]
}

/// One consumer group's state, as `XINFO GROUPS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub pending: u64,
    pub lag: Option<u64>,
    pub last_delivered_id: String,
    pub entries_read: Option<u64>,
}

/// `None` until the group exists.
pub async fn group_info(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Option<GroupInfo> {
    let groups: Vec<std::collections::HashMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("GROUPS").arg(stream).query_async(conn).await.unwrap_or_default();
    let g = groups
        .into_iter()
        .find(|g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes()))?;
    let int = |k: &str| match g.get(k) {
        Some(redis::Value::Int(n)) => Some(*n as u64),
        _ => None,
    };
    let last = match g.get("last-delivered-id") {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("last-delivered-id: {other:?}"),
    };
    Some(GroupInfo {
        pending: int("pending").unwrap_or(0),
        lag: int("lag"),
        last_delivered_id: last,
        entries_read: int("entries-read"),
    })
}

/// Pending entries of a group: (id, consumer, delivery count); none while the group does not exist yet.
pub async fn pending(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Vec<(String, String, u64)> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .query_async(conn)
        .await
        .or_else(|e| if e.code() == Some("NOGROUP") { Ok(Vec::new()) } else { Err(e) })
        .expect("XPENDING");
    rows.into_iter().map(|(id, consumer, _idle, count)| (id, consumer, count)).collect()
}

/// Waits until `group` has read every entry of `stream` (lag 0) and holds
/// exactly `pending` of them.
pub async fn wait_drained(conn: &mut MultiplexedConnection, stream: &str, group: &str, pending: u64) -> GroupInfo {
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    loop {
        let info = group_info(conn, stream, group).await;
        if let Some(info) = &info
            && info.lag == Some(0)
            && info.pending == pending
        {
            return info.clone();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for group {group} to drain {stream}: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `host::run` in this process, stopped on demand.
pub struct HostRun {
    shutdown: CancellationToken,
    task: JoinHandle<Result<RunReport>>,
}

impl HostRun {
    pub fn start(config: RunConfig) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(host::run(config, shutdown.clone()));
        HostRun { shutdown, task }
    }

    pub async fn stop(self) -> RunReport {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("host stops within 10 s")
            .expect("host task did not panic")
            .expect("host run ends without error")
    }
}

/// A run configuration against the test Redis.
pub fn config(plugin_name: &str, stream: &str, group: &str, consumers: &[&str]) -> RunConfig {
    let mut config = RunConfig::new(redis_url(), plugin(plugin_name), stream, group, consumers[0]);
    config.settings.consumers = consumers.iter().map(|c| c.to_string()).collect();
    config.settings.block = Duration::from_millis(200);
    config
}

/// The `host` binary as a child process, its stderr collected line by line.
pub struct HostProcess {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
}

impl HostProcess {
    /// Starts `host ARGS…` with `RUST_LOG=info` and colours off.
    pub fn start(args: &[&str]) -> Self {
        Self::start_env(args, &[])
    }

    /// Like [`HostProcess::start`], with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &OsStr)]) -> Self {
        Self::start_in(None, args, env)
    }

    /// Like [`HostProcess::start_env`], in working directory `dir` (relative paths resolve there).
    pub fn start_in(dir: Option<&Path>, args: &[&str], env: &[(&str, &OsStr)]) -> Self {
        let mut command = Command::new(host_bin());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("REDIS_URL")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn host");
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        HostProcess { child, lines, reader: Some(reader), log: Vec::new() }
    }

    /// `host run` on `stream` (group `g`) with the fixture plugin
    /// `plugin_name` against the test Redis, plus `extra` flags.
    pub fn run(stream: &str, plugin_name: &str, extra: &[&str]) -> Self {
        let plugin = plugin(plugin_name);
        let plugin = plugin.to_str().expect("UTF-8 path");
        let mut args = vec!["run", "--stream", stream, "--group", "g", "--plugin", plugin, "--redis", redis_url()];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// Collects the log lines that have arrived so far.
    pub fn collect(&mut self) {
        self.log.extend(self.lines.try_iter());
    }

    /// Collects log lines until `done(log)` holds; fails after `limit`.
    pub fn wait_log(&mut self, limit: Duration, what: &str, done: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        while !done(&self.log) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}; log: {:#?}", self.log);
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.log.push(line);
                // Take whatever else has arrived before checking again: checks scan the whole log.
                self.log.extend(self.lines.try_iter());
            }
        }
    }

    /// The log of a process that already exited (e.g. killed): everything it wrote.
    pub fn drain_log(&mut self) -> Vec<String> {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        self.log.extend(self.lines.try_iter());
        self.log.clone()
    }

    /// Sends SIGTERM and waits (at most 5 s) for the exit; returns the status
    /// and how long the exit took. The rest of the log is collected.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        // SAFETY: signalling the child this helper started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let signalled = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for host") {
                break status;
            }
            if signalled.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!("host did not exit within 5 s of SIGTERM; log: {:#?}", self.log);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = signalled.elapsed();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        self.log.extend(self.lines.try_iter());
        (status, took)
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Ids the chaos plugin logged as handled (`handled <id>`).
pub fn handled_ids(log: &[String]) -> std::collections::HashSet<String> {
    log.iter()
        .filter_map(|line| line.split("handled ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every record of `stream`'s default dead-letter stream, parsed.
pub async fn dead_letters(conn: &mut MultiplexedConnection, stream: &str) -> Vec<host::DeadLetter> {
    let reply: redis::Value =
        redis::cmd("XRANGE").arg(format!("{stream}:dlq")).arg("-").arg("+").query_async(conn).await.expect("XRANGE");
    let redis::Value::Array(items) = reply else { panic!("XRANGE reply {reply:?}") };
    items
        .into_iter()
        .map(|item| {
            let redis::Value::Array(parts) = item else { panic!("entry {item:?}") };
            let mut parts = parts.into_iter();
            let id: String = redis::from_redis_value(parts.next().unwrap()).unwrap();
            let flat: Vec<Vec<u8>> = redis::from_redis_value(parts.next().unwrap()).unwrap();
            let fields = flat.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            host::DeadLetter::parse(host::Entry { id, fields, delivery_count: 0 }).expect("a dead-letter record")
        })
        .collect()
}

/// Every `handled <id>` the chaos plugin logged, duplicates kept.
pub fn handled_list(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|line| line.split("handled ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A run configuration with short recovery timings, so tests finish fast.
pub fn fast_config(plugin_name: &str, stream: &str, group: &str, consumers: &[&str]) -> RunConfig {
    let mut cfg = config(plugin_name, stream, group, consumers);
    cfg.settings.min_idle = Duration::from_millis(300);
    cfg.settings.reap_interval = Duration::from_millis(50);
    cfg
}

/// `XLEN key`.
pub async fn xlen(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.expect("XLEN")
}

/// The newest entry of `stream` (`XREVRANGE + - COUNT 1`): its id and its
/// fields and values, flat.
pub async fn newest(conn: &mut MultiplexedConnection, stream: &str) -> (String, Vec<Vec<u8>>) {
    let mut rows: Vec<(String, Vec<Vec<u8>>)> =
        redis::cmd("XREVRANGE").arg(stream).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn).await.unwrap();
    rows.pop().unwrap_or_else(|| panic!("{stream} is empty"))
}

/// Consumer names of a group (`XINFO CONSUMERS`).
pub async fn consumer_names(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Vec<String> {
    let rows: Vec<std::collections::HashMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("CONSUMERS").arg(stream).arg(group).query_async(conn).await.unwrap_or_default();
    rows.into_iter()
        .filter_map(|row| match row.get("name") {
            Some(redis::Value::BulkString(n)) => Some(String::from_utf8_lossy(n).into_owned()),
            _ => None,
        })
        .collect()
}

/// Polls an async condition every 20 ms; fails with `what` after `limit`.
#[macro_export]
macro_rules! wait_until {
    ($limit:expr, $what:expr, $cond:expr) => {{
        let start = std::time::Instant::now();
        loop {
            if $cond {
                break;
            }
            assert!(start.elapsed() < $limit, "timed out after {:?} waiting for {}", $limit, $what);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// Hand-assembled fixtures (their WAT beside them), so the tests need no
/// WAT parser whose dependencies would change the host's feature set.
pub mod wasm {
    /// `(module)`: a core module, not a component.
    pub const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";
    /// `(component)`: a valid component that exports nothing.
    pub const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    /// `(component (import "acme:db/query@1.0.0" (instance (export "run" (func)))))`
    pub const FOREIGN_IMPORT: &[u8] = &[
        0, 97, 115, 109, 13, 0, 1, 0, 7, 16, 1, 66, 2, 1, 64, 0, 1, 0, 4, 0, 3, 114, 117, 110, 1, 0, 10, 24, 1, 0, 19,
        97, 99, 109, 101, 58, 100, 98, 47, 113, 117, 101, 114, 121, 64, 49, 46, 48, 46, 48, 5, 0,
    ];
}
