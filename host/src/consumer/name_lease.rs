//! Consumer-name leases: one live holder per consumer name of a group. Two
//! holders of one name (two processes started with the same `--consumer`, or
//! a demo consumer re-added while its old task still hands over) would each
//! drain the other's pending list at start, and a leaving one would delete
//! the other from the group (`DELCONSUMER` drops its pending list). So each
//! consumer task leases its name in Redis (a key with a short time to live,
//! holding a token naming host, pid and task), renews it from a task of its
//! own (a slow handler never lets it lapse), deletes its consumer from the
//! group only while it holds the lease, and gives it up when it stops.
//! A second holder waits for the lease to be released or to expire (its
//! holder may have crashed), then refuses with a clear error.

use crate::streams::{Connection, Redis, is_transient};
use anyhow::{Result, bail};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a lease outlives its last renewal: a crashed holder's name is
/// free again after this; a restart under the same name waits up to this.
pub const TTL: Duration = Duration::from_secs(10);
/// Renewals per TTL: three may fail in a row before the lease lapses.
const RENEW_EVERY: Duration = Duration::from_millis(2500);
/// How often a waiting consumer asks again.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// The lease key of `consumer` in `group` of `stream`: `STREAM:lease:GROUP:NAME`,
/// or on a cluster, for a stream without a hash tag, `{STREAM}:lease:GROUP:NAME`
/// (the handover script writes it with the stream: one slot).
pub fn key(stream: &str, group: &str, consumer: &str, cluster: bool) -> String {
    let suffix = format!("lease:{group}:{consumer}");
    if cluster { crate::keys::companion(stream, &suffix) } else { format!("{stream}:{suffix}") }
}

/// What every token of this process starts with: host, pid and the
/// process's start time (so a pid reused after a crash is another holder).
fn process_prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        let start =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        format!("host {host} pid {} start {start:x} task ", std::process::id())
    })
}

/// A token unique to this task: the process prefix and a sequence number.
fn token() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{}{}", process_prefix(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// A consumer name held by this task, renewed until dropped or released.
pub struct NameLease {
    /// The lease key.
    pub key: String,
    /// This holder's token.
    pub token: String,
    /// Set when a renewal found someone else holding the name.
    lost: Arc<Mutex<Option<String>>>,
    renewing: CancellationToken,
    /// The renewing task (awaited on release, so no renewal lands after it).
    renewer: Option<tokio::task::JoinHandle<()>>,
    redis: Redis,
}

impl NameLease {
    /// Leases `consumer`'s name, waiting up to [`TTL`] (plus a second) for
    /// another holder to release it or to expire — for ever when the holder
    /// is a task of this process (a consumer of the same name still
    /// stopping: it releases the name when done, or its lease expires).
    /// Connection errors are retried until `shutdown`. Fails when a live
    /// holder in another process keeps it, or Redis refuses the lease.
    pub async fn acquire(
        redis: &Redis,
        stream: &str,
        group: &str,
        consumer: &str,
        shutdown: &CancellationToken,
    ) -> Result<Self> {
        let key = key(stream, group, consumer, redis.known_cluster().unwrap_or(false));
        let token = token();
        let started = Instant::now();
        let (mut told, mut warned) = (false, false);
        let mut conn: Option<Connection> = None;
        loop {
            if shutdown.is_cancelled() {
                bail!("stopped while waiting for consumer name {consumer:?}");
            }
            let attempt = match &mut conn {
                Some(c) => c.acquire_name(&key, &token, TTL).await,
                None => match redis.connect(Duration::ZERO).await {
                    Ok(c) => c.clone().acquire_name(&key, &token, TTL).await.inspect(|_| conn = Some(c)),
                    Err(error) => Err(error),
                },
            };
            match attempt {
                Ok(None) => break,
                Ok(Some(holder))
                    if started.elapsed() > TTL + Duration::from_secs(1) && !holder.starts_with(process_prefix()) =>
                {
                    bail!(
                        "consumer name {consumer:?} of group {group:?} on stream {stream:?} is in use by a live \
                     holder ({holder}), which kept renewing it for {} s: two consumers with one name would take \
                     each other's pending entries. Give each process its own --consumer name (the default, \
                     HOSTNAME-PID-XXXX-N, is unique per process)",
                        TTL.as_secs()
                    )
                }
                Ok(Some(holder)) if !told => {
                    told = true;
                    tracing::warn!(%stream, %group, consumer,
                        "consumer name is leased by {holder}; waiting up to {} s for it to be released or to \
                         expire (its holder may have stopped or crashed)", TTL.as_secs());
                }
                Ok(Some(_)) => {}
                Err(error) if !is_transient(&error) => {
                    return Err(error.context(format!(
                        "cannot lease consumer name {consumer:?} (key {key:?}); the host needs EVAL, GET and SET \
                         on that key"
                    )));
                }
                Err(error) => {
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!(%stream, consumer, "cannot lease the consumer name yet (retrying): {error:#}");
                    }
                    conn = None;
                }
            }
            let pause = if conn.is_some() { RETRY_EVERY } else { RETRY_EVERY * 5 };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let renewing = CancellationToken::new();
        let mut lease = NameLease { key, token, lost: Arc::default(), renewing, renewer: None, redis: redis.clone() };
        lease.renewer = Some(lease.renew_in_background(conn, consumer.to_string()));
        Ok(lease)
    }

    /// Renews the lease every [`RENEW_EVERY`] until released; a renewal
    /// that finds another holder marks the lease lost.
    fn renew_in_background(&self, mut conn: Option<Connection>, consumer: String) -> tokio::task::JoinHandle<()> {
        let (key, token, lost, stop, redis) =
            (self.key.clone(), self.token.clone(), self.lost.clone(), self.renewing.clone(), self.redis.clone());
        tokio::spawn(async move {
            let warned = AtomicBool::new(false);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
                if conn.is_none() {
                    conn = redis.connect(Duration::ZERO).await.ok();
                }
                let Some(c) = &mut conn else { continue };
                match c.acquire_name(&key, &token, TTL).await {
                    Ok(None) => warned.store(false, Ordering::Relaxed),
                    Ok(Some(holder)) => {
                        tracing::error!(consumer, "consumer name lease {key} taken over by {holder}: stopping");
                        *lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(holder);
                        return;
                    }
                    Err(error) => {
                        if !warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!(consumer, "consumer name lease renewal failed (retrying): {error:#}");
                        }
                        conn = None;
                    }
                }
            }
        })
    }

    /// The other holder, when a renewal found the name taken over.
    pub fn lost_to(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops renewing and gives the name up (so a successor need not wait
    /// for it to expire).
    pub async fn release(mut self) {
        self.renewing.cancel();
        if let Some(renewer) = self.renewer.take() {
            // A renewal in flight lands before the release, not after it.
            let _ = renewer.await;
        }
        let released = match self.redis.connect(Duration::ZERO).await {
            Ok(mut conn) => conn.release_name(&self.key, &self.token).await,
            Err(error) => Err(error),
        };
        if let Err(error) = released {
            tracing::warn!(key = %self.key, "consumer name lease not released (it expires in {} s): {error:#}",
                TTL.as_secs());
        }
    }
}

impl Drop for NameLease {
    fn drop(&mut self) {
        self.renewing.cancel();
    }
}
