//! Redis servers of the tests: the one this test binary shares (killed by pid
//! at exit) and private ones for tests that disturb theirs (killed by pid when
//! dropped); connections to the shared one and stream names no other test uses.

use anyhow::{Context, Result, bail};
use redis::aio::MultiplexedConnection;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
        connect_patient(&self.url).await
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
    connect_patient(redis_url()).await
}

/// A connection whose replies may take 30 s: redis-rs gives up after
/// 500 ms by default, which a large read (10,000 entries) can need on a
/// machine busy with the rest of the suite.
async fn connect_patient(url: &str) -> MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection_with_config(&config).await.expect("connect to the test redis")
}

/// A stream key no other test uses.
pub fn unique_stream(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("test:{name}:{}", N.fetch_add(1, Ordering::SeqCst))
}
