//! Which Redis `host demo` and `host bench` use, and the throw-away
//! `redis-server` child they start when no Redis was given and none answers
//! on the default port: loopback only, a free port, no persistence. Stopped
//! (by pid) when dropped.

use anyhow::{Context, Result, bail};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the child may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The Redis to use: `given`; else `probe` when a Redis answers there; else
/// a redis-server child (kept alive by the returned handle).
pub async fn resolve(given: Option<&str>, probe: &str) -> Result<(String, Option<LocalRedis>)> {
    if let Some(url) = given {
        return Ok((url.to_string(), None));
    }
    if let Ok(mut conn) = crate::streams::Redis::open(probe)?.connect(Duration::ZERO).await
        && conn.ping().await.is_ok()
    {
        tracing::info!("using the Redis answering on {}", crate::streams::masked::url(probe));
        return Ok((probe.to_string(), None));
    }
    let local = LocalRedis::start().await?;
    tracing::info!(
        pid = local.pid(),
        "no Redis given and none answers on {}: started redis-server at {} \
        (no persistence; stopped on exit)",
        crate::streams::masked::url(probe),
        local.url()
    );
    Ok((local.url(), Some(local)))
}

/// A running `redis-server` child.
pub struct LocalRedis {
    child: Child,
    port: u16,
}

impl LocalRedis {
    /// Starts `redis-server` on a free loopback port and waits until it answers.
    pub async fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free loopback port for redis-server")?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => anyhow::anyhow!(
                    "no Redis given and none answers on 127.0.0.1:6379, and redis-server is not installed: \
                     install it (Debian: apt-get install redis-server) or pass --redis URL"
                ),
                _ => anyhow::Error::new(e).context("cannot start redis-server"),
            })?;
        let mut local = LocalRedis { child, port };
        let redis = crate::streams::Redis::open(&local.url())?;
        let started = Instant::now();
        loop {
            if let Ok(mut conn) = redis.connect(Duration::ZERO).await
                && conn.ping().await.is_ok()
            {
                return Ok(local);
            }
            if let Some(status) = local.child.try_wait()? {
                bail!("redis-server exited at start ({status}); see its messages above");
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("redis-server on port {port} did not answer within {} s", START_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        // Nothing is persisted, so SIGKILL loses nothing and cannot hang.
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::info!(pid = self.child.id(), port = self.port, "stopped the redis-server started for this run");
    }
}
