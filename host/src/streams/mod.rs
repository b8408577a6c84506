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
mod commit;
mod group;
pub mod local;
pub mod masked;
mod reader;
mod reply;
mod resp;
mod scripts;
mod state;

pub use admin::Trim;
pub use commit::Committed;
pub use group::{is_missing_group, is_transient};
pub use reader::Reader;
pub use reply::{Batch, ConsumerInfo, GroupInfo, PendingEntry, StreamInfo};
pub use scripts::{DeadLetterMode, DeadLettered, Deleted};

use anyhow::{Context, Result, anyhow};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, RedisResult, Value};
use std::time::Duration;

/// Field/value pairs as Redis stores them.
pub type Fields = [(Vec<u8>, Vec<u8>)];

/// How long to wait for a TCP connection before calling Redis unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack on top of a blocking read's own timeout before a reply is overdue:
/// generous, because a busy Redis may be slow, but finite so a dead peer is
/// noticed and the connection replaced.
const REPLY_SLACK: Duration = Duration::from_secs(10);

/// Where Redis is: a parsed URL that opens connections.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    /// The URL as given.
    url: String,
    /// The URL with any password masked, for messages.
    shown_url: String,
}

impl Redis {
    /// Parses `url`; fails with a message naming it when it is not a Redis URL.
    pub fn open(url: &str) -> Result<Self> {
        let shown_url = masked::url(url);
        let client = redis::Client::open(url)
            .map_err(|e| anyhow!("invalid Redis URL {shown_url:?}: {e} (expected redis://HOST:PORT[/DB])"))?;
        Ok(Redis { client, url: url.to_string(), shown_url })
    }

    /// The URL as given (with any password): for handing on, never for printing.
    pub fn raw_url(&self) -> &str {
        &self.url
    }

    /// The URL, password masked.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Opens a dedicated connection. `block` is the longest blocking read the
    /// connection will make, so replies may legitimately take that long.
    pub async fn connect(&self, block: Duration) -> Result<Connection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + REPLY_SLACK));
        let conn = self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| {
            anyhow!("cannot reach Redis at {}: {e} (is redis-server running? set --redis or REDIS_URL)", self.shown_url)
        })?;
        Ok(Connection { conn })
    }

    /// What plugins' `state` calls read and record through: blocking
    /// connections, opened when first needed.
    pub fn state(&self) -> std::sync::Arc<dyn crate::effects::StateStore> {
        std::sync::Arc::new(state::RedisState::new(self.client.clone(), self.shown_url.clone()))
    }

    /// Opens a connection for a consumer's reads of new entries (the hot
    /// path: its replies skip redis-rs's parser, see [`Reader`]).
    pub async fn reader(&self) -> Result<Reader> {
        Reader::open(self.client.get_connection_info(), &self.shown_url).await
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
    conn: MultiplexedConnection,
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
