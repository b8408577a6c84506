//! The Redis layer: every Redis command the host sends, with typed
//! replies. The rest of the code never builds a raw command.
//!
//! Owns the connections ([`Redis`], [`Connection`], the hot-path
//! [`Reader`]) and the commands on them, by audience:
//! - `group.rs`: a consumer's commands on its group (read, claim, ack,
//!   ensure the group), what `consumer/` and `supervise/` use;
//! - `scripts.rs`: the multi-key writes as Lua scripts (leases, handover,
//!   dead letters, requeue); `commit.rs`: plugin effects committed with
//!   their acks (fenced, checked before written);
//! - `events.rs`: failure events appended to `host:events` (best effort);
//! - `owned.rs`: stream ownership mode's commands on an owned stream, each
//!   fenced by its lease; `leases.rs`: the leases and the assignment
//!   stream's commands; `expiry.rs`: expired-key events;
//! - `state.rs`: the plugins' immediate reads (`state` import), blocking;
//! - `admin.rs`: inspection and repair (info, listings, ranges, trim, reset,
//!   appends), what `commands/` (inspect, demo, bench, produce) use;
//! - `reader.rs` with `resp.rs`: the consumers' hot read, parsed by hand;
//!   `reply.rs`: every other reply, parsed from redis-rs values;
//! - `masked.rs` (URLs without passwords), `local.rs` (a redis-server of
//!   our own for `demo` and `bench`).
//!
//! May use the shared types only (`entry`, `effects`): nothing of `config`, `consumer`,
//! `commands` or `wasm`. Dead-letter records arrive as field/value pairs.

mod admin;
mod cluster;
mod commit;
pub mod events;
mod expiry;
mod group;
mod leases;
pub mod local;
pub mod masked;
mod owned;
mod reader;
mod reply;
mod resp;
mod scripts;
mod state;

pub use admin::Trim;
pub use commit::Committed;
pub use group::{is_missing_group, is_transient};
pub use owned::{Owned, is_disowned};
pub use reader::Reader;
pub use reply::{Batch, ConsumerInfo, GroupInfo, PendingEntry, StreamInfo};
pub use scripts::{DeadLetterMode, DeadLettered, Deleted};

use anyhow::{Context, Result, anyhow};
use cluster::Cluster;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, RedisFuture, RedisResult, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Field/value pairs as Redis stores them.
pub type Fields = [(Vec<u8>, Vec<u8>)];

/// How long to wait for a TCP connection before calling Redis unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack on top of a blocking read's own timeout before a reply is overdue:
/// generous, because a busy Redis may be slow, but finite so a dead peer is
/// noticed and the connection replaced.
const REPLY_SLACK: Duration = Duration::from_secs(10);

/// Where Redis is: a parsed URL that opens connections, to one server or
/// to a Redis Cluster (`redis+cluster://`, or found out on first connect).
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    /// The URL as given.
    url: String,
    /// The URL with any password masked, for messages.
    shown_url: String,
    /// `Some` on a cluster; decided by the URL's scheme, else on first connect.
    cluster: Arc<OnceCell<Option<Arc<Cluster>>>>,
}

impl Redis {
    /// Parses `url`; fails with a message naming it when it is not a Redis URL.
    pub fn open(url: &str) -> Result<Self> {
        let shown_url = masked::url(url);
        let explicit = match url.strip_prefix(cluster::SCHEME) {
            Some(rest) => {
                Some(cluster::split_nodes(rest).with_context(|| format!("invalid Redis Cluster URL {shown_url:?}"))?)
            }
            None => None,
        };
        let first = explicit.as_ref().map(|(first, _)| first.as_str());
        let client = redis::Client::open(first.unwrap_or(url)).map_err(|e| {
            anyhow!(
                "invalid Redis URL {shown_url:?}: {e} (expected redis://HOST:PORT[/DB] or \
                 redis+cluster://HOST:PORT[,HOST:PORT…])"
            )
        })?;
        let cluster = OnceCell::new();
        if let Some((_, more)) = explicit {
            let known = Cluster::new(client.get_connection_info().clone(), more)
                .with_context(|| format!("invalid Redis Cluster URL {shown_url:?}"))?;
            cluster.set(Some(Arc::new(known))).ok();
        }
        Ok(Redis { client, url: url.to_string(), shown_url, cluster: Arc::new(cluster) })
    }

    /// The URL as given (with any password): for handing on, never for printing.
    pub fn raw_url(&self) -> &str {
        &self.url
    }

    /// The URL, password masked.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Whether this is a Redis Cluster, asking the server the first time
    /// (`INFO cluster`) unless the URL said so.
    pub async fn is_cluster(&self) -> Result<bool> {
        Ok(self.cluster().await?.is_some())
    }

    /// The dead-letter key the consumers of `stream` use when `configured`
    /// is set: on a cluster, see [`crate::keys::cluster_dead_letter`].
    pub async fn dead_letter_of(&self, stream: &str, configured: &str) -> Result<String> {
        Ok(match self.is_cluster().await? {
            true => crate::keys::cluster_dead_letter(stream, configured),
            false => configured.to_string(),
        })
    }

    /// Whether this is known to be a cluster: `None` before the first connection.
    pub fn known_cluster(&self) -> Option<bool> {
        self.cluster.get().map(Option::is_some)
    }

    async fn cluster(&self) -> Result<Option<&Arc<Cluster>>> {
        let cluster = self
            .cluster
            .get_or_try_init(|| async {
                let mut conn = self.single(Duration::ZERO).await?;
                if !cluster::is_cluster(&mut conn).await? {
                    return Ok::<_, anyhow::Error>(None);
                }
                let known = Cluster::new(self.client.get_connection_info().clone(), Vec::new())
                    .with_context(|| format!("Redis at {} is a cluster node", self.shown_url))?;
                Ok(Some(Arc::new(known)))
            })
            .await?;
        Ok(cluster.as_ref())
    }

    async fn single(&self, block: Duration) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + REPLY_SLACK));
        self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| {
            anyhow!("cannot reach Redis at {}: {e} (is redis-server running? set --redis or REDIS_URL)", self.shown_url)
        })
    }

    /// Opens a dedicated connection (on a cluster: to every master it needs,
    /// routing each command by its key). `block` is the longest blocking
    /// read the connection will make, so replies may legitimately take that long.
    pub async fn connect(&self, block: Duration) -> Result<Connection> {
        let Some(cluster) = self.cluster().await? else {
            return Ok(Connection { conn: Conn::Single(self.single(block).await?) });
        };
        let client = redis::cluster::ClusterClientBuilder::new(cluster.seeds().await)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(block + REPLY_SLACK)
            // A failover takes a few seconds: a command waits through it
            // (slot map re-read between tries) rather than failing at once.
            .retries(6)
            .min_retry_wait(100)
            .max_retry_wait(1_000)
            .build()
            .map_err(|e| anyhow!("invalid Redis Cluster URL {}: {e}", self.shown_url))?;
        let conn = client.get_async_connection().await.map_err(|e| {
            anyhow!("cannot reach the Redis Cluster at {}: {e} (is every master up? CLUSTER INFO)", self.shown_url)
        })?;
        Ok(Connection { conn: Conn::Cluster(conn) })
    }

    /// What plugins' `state` calls read and record through: blocking
    /// connections, opened when first needed (to the cluster when this is
    /// one, as far as is known by then: call after a connect).
    pub fn state(&self) -> Arc<dyn crate::effects::StateStore> {
        let cluster = self.cluster.get().and_then(|c| c.clone());
        Arc::new(state::RedisState::new(self.client.clone(), cluster, self.shown_url.clone()))
    }

    /// Opens a connection for a consumer's reads of new entries on `stream`
    /// (the hot path: its replies skip redis-rs's parser, see [`Reader`]);
    /// on a cluster, to the master serving the stream's slot now.
    pub async fn reader(&self, stream: &str) -> Result<Reader> {
        match self.cluster().await? {
            None => Reader::open(self.client.get_connection_info(), &self.shown_url).await,
            Some(cluster) => {
                let (owner, asking) = cluster.owner(crate::keys::slot(stream), &self.shown_url).await?;
                Ok(Reader::open(&owner, &self.shown_url).await?.on_cluster(cluster.clone(), asking))
            }
        }
    }
}

/// Shows the URL masked: the raw one is never printed, not even by `{:?}`.
impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("url", &self.shown_url).finish_non_exhaustive()
    }
}

/// One connection to Redis. Blocking reads hold it, so each consumer has its own.
#[derive(Clone)]
pub struct Connection {
    conn: Conn,
}

/// A connection to one server, or redis-rs's cluster connection (which
/// routes each command by its key's slot and follows `MOVED`/`ASK`).
#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// The basics; the commands are in `group.rs`, `admin.rs` and `scripts.rs`.
impl Connection {
    /// `PING`: whether the server answers.
    pub async fn ping(&mut self) -> Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn).await.context("PING failed")?;
        Ok(())
    }

    /// Sends a command that answers with entries (XREADGROUP, XAUTOCLAIM,
    /// XRANGE) and returns its reply as parsed. Not `Cmd::query_async`: that
    /// first walks and rebuilds the whole reply looking for nested errors
    /// (`Value::extract_error`): ~9 values per entry moved for nothing, ~900
    /// instructions per entry by callgrind. These commands can only fail as a
    /// whole, with a top-level error.
    async fn entries_reply(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self.conn.req_packed_command(cmd).await? {
            Value::ServerError(error) => Err(error.into()),
            reply => Ok(reply),
        }
    }
}
