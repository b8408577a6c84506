//! The `state` import's reads and records on Redis: plain blocking
//! connections (a plugin call runs on a blocking thread), pooled per
//! consumer group, each command bounded by the plugin call's deadline. A
//! connection that fails or times out is dropped, never reused half-read.
//! On a cluster: one shared cluster connection (redis-rs routes each
//! command by its key and follows redirects), its command awaited from the
//! blocking thread under the deadline, however many tries redis-rs makes.

use super::cluster::Cluster;
use crate::effects::StateStore;
use redis::cluster_async::ClusterConnection;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Connections kept for reuse; more are opened when calls overlap.
const POOL: usize = 8;

/// [`StateStore`] on one Redis server or a Redis Cluster.
pub struct RedisState {
    client: redis::Client,
    /// On a cluster: what is known of it and, once opened, the shared connection.
    cluster: Option<(Arc<Cluster>, tokio::sync::OnceCell<ClusterConnection>)>,
    shown_url: String,
    idle: Mutex<Vec<redis::Connection>>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState").field("url", &self.shown_url).finish_non_exhaustive()
    }
}

impl RedisState {
    /// `cluster`: what is known of the cluster, when this is one.
    pub(super) fn new(client: redis::Client, cluster: Option<Arc<Cluster>>, shown_url: String) -> Self {
        RedisState {
            client,
            cluster: cluster.map(|c| (c, tokio::sync::OnceCell::new())),
            shown_url,
            idle: Mutex::default(),
        }
    }

    /// Runs `cmd` on the cluster connection, all of it before `until`: on the
    /// runtime the plugin's blocking thread belongs to.
    fn run_on_cluster<T: redis::FromRedisValue>(
        &self,
        (cluster, conn): &(Arc<Cluster>, tokio::sync::OnceCell<ClusterConnection>),
        cmd: &redis::Cmd,
        left: Duration,
    ) -> Result<T, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "no Redis to ask here (state calls need `host run`)".to_string())?;
        let asked = runtime.block_on(tokio::time::timeout(left, async {
            let conn = conn
                .get_or_try_init(|| async {
                    redis::cluster::ClusterClientBuilder::new(cluster.seeds().await)
                        .connection_timeout(super::CONNECT_TIMEOUT)
                        .min_retry_wait(10)
                        .max_retry_wait(200)
                        .build()?
                        .get_async_connection()
                        .await
                })
                .await?;
            cmd.query_async::<T>(&mut conn.clone()).await
        }));
        match asked {
            Ok(reply) => reply.map_err(|e| format!("Redis: {e}")),
            Err(_) => Err("Redis did not answer before the call's deadline".to_string()),
        }
    }

    /// Runs `cmd` on a pooled connection, all of it before `until`.
    fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, until: Instant) -> Result<T, String> {
        let left = until.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err("the call's deadline has passed: no time left to ask Redis".into());
        }
        if let Some(cluster) = &self.cluster {
            return self.run_on_cluster(cluster, cmd, left);
        }
        let pooled = self.idle.lock().expect("state pool lock").pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self
                .client
                .get_connection_with_timeout(left)
                .map_err(|e| format!("cannot reach Redis at {}: {e}", self.shown_url))?,
        };
        let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        conn.set_read_timeout(Some(left))
            .and_then(|()| conn.set_write_timeout(Some(left)))
            .map_err(|e| e.to_string())?;
        let reply = cmd.query::<T>(&mut conn).map_err(|e| {
            if e.is_timeout() {
                "Redis did not answer before the call's deadline".to_string()
            } else {
                format!("Redis: {e}")
            }
        });
        // A connection whose command failed may hold half a reply: drop it.
        if reply.is_ok() {
            let mut idle = self.idle.lock().expect("state pool lock");
            if idle.len() < POOL {
                idle.push(conn);
            }
        }
        reply
    }
}

impl StateStore for RedisState {
    fn get(&self, key: &str, until: Instant) -> Result<Option<Vec<u8>>, String> {
        self.run(redis::cmd("GET").arg(key), until)
    }

    fn hget(&self, key: &str, field: &str, until: Instant) -> Result<Option<Vec<u8>>, String> {
        self.run(redis::cmd("HGET").arg(key).arg(field), until)
    }

    fn seen(&self, key: &str, ttl: Duration, until: Instant) -> Result<bool, String> {
        let ms = ttl.as_millis().max(1) as u64;
        let set: Option<String> = self.run(redis::cmd("SET").arg(key).arg(1).arg("NX").arg("PX").arg(ms), until)?;
        Ok(set.is_none())
    }
}
