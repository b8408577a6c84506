//! One consumer of a group. Each step: on start-up drain its own pending list
//! once; when due, reap idle entries of the group (XAUTOCLAIM); otherwise read
//! new entries (XREADGROUP >). Every batch then goes the same way: invoke the
//! plugin per entry (leases kept fresh meanwhile) → settle each verdict (XACK,
//! dead-letter, or leave pending). Survives bad entries and Redis outages;
//! stops promptly on shutdown, optionally handing its pending entries over.
//! Its [`Control`] shows its counters live and carries drills in (crash,
//! claim now, leave) as [`Drill`] messages.
//!
//! Owns the consumer-group machinery. Uses the Wasm layer (instances), the
//! Redis layer (`streams`), metrics and the shared types; nothing of
//! `supervise` or `commands`.
//!
//! Where things happen: the step loop here; `read_ahead.rs` (the next batch
//! read during a backlog), `invoke.rs` (each batch's path: plugin calls,
//! leases kept fresh), `settle.rs` (verdict → ack, retry, dead letter),
//! `acks.rs` (XACK), `commit.rs` (effects applied with their acks),
//! `reaper.rs` (start-up drain, XAUTOCLAIM), `lease.rs` and `name_lease.rs`,
//! `leaving.rs` and `handover.rs` (the end of a run), `control.rs` (view and
//! drills), `stats.rs`.

mod acks;
mod commit;
pub mod control;
pub mod handover;
mod invoke;
pub mod lease;
mod leaving;
pub mod name_lease;
pub mod owned;
mod read_ahead;
pub mod reaper;
pub mod settle;
mod stats;

pub use stats::ConsumerStats;

pub use acks::AckObserver;
use acks::Acks;
use read_ahead::Ahead;
use settle::Unrecorded;

use crate::consumer::control::{ClaimReply, Control, Drill, Drills, State};
use crate::consumer::lease::{Holds, refresh_every};
use crate::consumer::name_lease::NameLease;
use crate::consumer::reaper::Reaper;
use crate::handler::{Delivery, HandlerSource};
use crate::settings::{AckMode, GroupSettings};
use crate::streams::{Connection, Reader, Redis, is_missing_group};
use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// First and longest pause after a Redis error; doubles in between. The
/// longest is short so a consumer comes back within a second of Redis (a
/// restarted server, a cluster's promoted replica): a failover takes a few
/// seconds, and a 5 s cap measured ~6 s from kill -9 to reading again.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Last-error texts remembered for pending entries (for dead-letter records);
/// bounded so a flood of failures cannot grow memory without limit.
const MAX_REMEMBERED_ERRORS: usize = 10_000;

/// Why a step failed, as far as the loop decides on it.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// The consumer group is gone (stream deleted, Redis restarted empty):
    /// re-create it and go on.
    #[error("{0:#}")]
    GroupGone(anyhow::Error),
    /// Redis refused or went away: back off, reconnect, go on.
    #[error("{0:#}")]
    Redis(anyhow::Error),
    /// A host bug (not a plugin or Redis problem): the consumer ends.
    #[error("{0:#}")]
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for StepError {
    /// A failed Redis call: the group gone, or Redis away. (Fatal errors are
    /// made explicitly, never by `?`.)
    fn from(error: anyhow::Error) -> Self {
        if is_missing_group(&error) { StepError::GroupGone(error) } else { StepError::Redis(error) }
    }
}

type Step<T = ()> = std::result::Result<T, StepError>;

/// One consumer's loop state; `S` is what its handlers come from (a loaded
/// plugin, or the benchmark's native handler).
pub struct Consumer<S: HandlerSource> {
    redis: Redis,
    settings: Arc<GroupSettings>,
    name: String,
    /// The current plugin version; a hot reload sends a new one.
    plugin: watch::Receiver<Arc<S>>,
    /// `None` while a batch is being handled on a blocking thread.
    instance: Option<S::Handler>,
    /// Where its entries are delivered (for new instances).
    delivery: Delivery,
    conn: Option<Connection>,
    /// The connection new entries are read on (XREADGROUP >), opened on first
    /// use; taken while a read is in flight, dropped when one fails.
    reader: Option<Reader>,
    /// Ids handled Ok whose XACK has not yet succeeded (e.g. Redis went away).
    unacked: Vec<String>,
    /// Their stamps, when an observer watches the acks.
    unacked_stamps: Vec<u64>,
    observer: Option<Arc<dyn AckObserver>>,
    /// `Some(after)` until the start-up drain of the own pending list is done.
    own_cursor: Option<String>,
    reap_cursor: String,
    next_reap: Instant,
    next_refresh: Instant,
    holds: Holds,
    last_errors: HashMap<String, String>,
    backoff: Duration,
    /// When the Redis errors now being backed off from began.
    failing_since: Option<Instant>,
    stats: ConsumerStats,
    /// The next batch, read while the current one is handled (backlog only),
    /// with the reader it was read on.
    read_ahead: Option<Ahead>,
    /// The acks sent in the same write as that read (the batch before).
    ahead_acks: Option<Arc<Acks>>,
    /// How long handling the last batch of new entries took.
    last_batch: Duration,
    /// Entries handed out (in hand or read ahead) whose payload Redis
    /// dropped from the pending list meanwhile (trimmed): a verdict other
    /// than ok records them as audits, with the payload the host still has.
    trimmed_in_hand: HashSet<String>,
    /// This task's lease of its consumer name (taken first thing in `run`).
    name_lease: Option<NameLease>,
    /// Audit records of trimmed entries that could not be written yet (Redis
    /// refused or went away): those entries are pending nowhere, so the
    /// record is all that is left of them. Written again at every step.
    unrecorded: Vec<Unrecorded>,
    /// The commit of the last batch's effects, while Redis runs it.
    committing: Option<commit::Committing>,
    /// Counters as last published to `control`.
    published: ConsumerStats,
    control: Arc<Control>,
    /// Drills sent through `control`, taken at the start of each step.
    drills: Drills,
    /// Deliveries still to drop (crash drill).
    crash_due: u32,
    /// Claim requests to answer on this step.
    claims: Vec<oneshot::Sender<ClaimReply>>,
    /// `Some(peers)` once told to leave the group.
    leaving: Option<Vec<String>>,
}

impl<S: HandlerSource> Consumer<S> {
    /// Instantiates the current plugin version for consumer `name`.
    pub fn new(
        redis: Redis,
        mut plugin: watch::Receiver<Arc<S>>,
        settings: Arc<GroupSettings>,
        name: String,
        control: Arc<Control>,
        drills: Drills,
        observer: Option<Arc<dyn AckObserver>>,
    ) -> Result<Self> {
        let delivery = Delivery {
            stream: settings.stream.clone(),
            group: settings.group.clone(),
            consumer: name.clone(),
            state: Some(redis.state()),
            http: None,
        };
        let current = plugin.borrow_and_update().clone();
        let instance = current.instantiate(&delivery, settings.call_deadline, &settings.limits)?;
        let now = Instant::now();
        Ok(Consumer {
            redis,
            name,
            plugin,
            instance: Some(instance),
            delivery,
            conn: None,
            reader: None,
            unacked: Vec::new(),
            unacked_stamps: Vec::new(),
            observer,
            own_cursor: Some("0".into()),
            reap_cursor: "0-0".into(),
            next_reap: now,
            next_refresh: now + refresh_every(settings.min_idle),
            holds: Holds::new(refresh_every(settings.min_idle)),
            last_errors: HashMap::new(),
            backoff: BACKOFF_MIN,
            failing_since: None,
            stats: ConsumerStats::default(),
            published: ConsumerStats::default(),
            read_ahead: None,
            ahead_acks: None,
            trimmed_in_hand: HashSet::new(),
            name_lease: None,
            unrecorded: Vec::new(),
            committing: None,
            last_batch: Duration::MAX,
            control,
            drills,
            crash_due: 0,
            claims: Vec::new(),
            leaving: None,
            settings,
        })
    }

    /// Runs until `shutdown`; the entry in hand is finished and settled, the
    /// rest of its batch stays pending (or is handed over with `--handover`).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<ConsumerStats> {
        let s = self.settings.clone();
        match NameLease::acquire(&self.redis, &s.stream, &s.group, &self.name, &shutdown).await {
            Ok(lease) => self.name_lease = Some(lease),
            Err(_) if shutdown.is_cancelled() => {
                self.control.set_state(State::Stopped);
                return Ok(self.stats);
            }
            Err(error) => {
                self.control.set_state(State::Failed(format!("{error:#}")));
                return Err(error);
            }
        }
        let mut lost = None;
        while !shutdown.is_cancelled() {
            if let Some(holder) = self.name_lease.as_ref().and_then(NameLease::lost_to) {
                lost = Some(holder);
                break;
            }
            self.take_drills();
            let step = self.step(&shutdown).await;
            self.publish();
            match step {
                Ok(()) => {
                    self.backoff = BACKOFF_MIN;
                    if let Some(since) = self.failing_since.take() {
                        tracing::info!(consumer = %self.name, stream = %self.settings.stream,
                            "redis answers again: consuming after {} ms of errors", since.elapsed().as_millis());
                    }
                }
                Err(StepError::Fatal(error)) => {
                    // The last batch's commit ran (or runs) in Redis: take its results.
                    self.finish_commit().await;
                    self.control.set_state(State::Failed(format!("{error:#}")));
                    return Err(error);
                }
                Err(StepError::GroupGone(error)) => self.recreate_group(&error, &shutdown).await,
                Err(StepError::Redis(error)) => self.redis_failed(&error, &shutdown).await,
            }
        }
        self.leave(lost).await
    }

    /// Takes the drills that came in since the last step.
    fn take_drills(&mut self) {
        while let Ok(drill) = self.drills.try_recv() {
            match drill {
                Drill::Crash(n) => self.crash_due = self.crash_due.saturating_add(n),
                Drill::ClaimNow(reply) => self.claims.push(reply),
                Drill::Leave(peers) => self.leaving = Some(peers),
            }
        }
    }

    /// One step: connect if needed, re-send failed acks, then drain the own
    /// pending list (start-up only), reap if due, or read new entries.
    async fn step(&mut self, shutdown: &CancellationToken) -> Step {
        if self.read_ahead.is_none() {
            // Not straight on to the next batch: take the last commit's results
            // now (before a reap, a claim, or a read that may block).
            self.finish_commit().await;
        }
        let conn = self.connection().await?;
        if !self.unrecorded.is_empty() {
            self.record_unrecorded().await;
        }
        let (settings, name) = (self.settings.clone(), self.name.clone());
        let reaper =
            Reaper { stream: &settings.stream, group: &settings.group, consumer: &name, count: settings.count };
        if let Some(after) = self.own_cursor.clone() {
            self.flush_acks().await?;
            let (batch, next) = reaper.own_pending(&mut conn.clone(), &after).await?;
            self.own_cursor = if batch.is_empty() { None } else { Some(next) };
            return self.process(batch, shutdown).await;
        }
        // Claims, lease refreshes and reaping come before the batch read
        // ahead: during a backlog there always is one, and they would wait
        // until the backlog is drained (under sustained load, for ever).
        let claims = std::mem::take(&mut self.claims);
        if !claims.is_empty() {
            self.flush_acks().await?;
            let claimed = self.claim_now(&reaper, &conn, shutdown).await;
            let reply = claimed.as_ref().map(|n| *n).map_err(|e| e.to_string());
            for claim in claims {
                let _ = claim.send(reply.clone());
            }
            return claimed.map(|_| ());
        }
        let now = Instant::now();
        if now >= self.next_refresh {
            let leased = self.leased(&[]);
            self.lease(&leased).await?;
            self.next_refresh = now + refresh_every(self.settings.min_idle);
        }
        if now >= self.next_reap {
            self.flush_acks().await?;
            self.next_reap = now + self.settings.reap_interval;
            let mut cursor = std::mem::take(&mut self.reap_cursor);
            let reaped = self.claim_pages(&reaper, &conn, &mut cursor, shutdown).await;
            self.reap_cursor = cursor;
            return reaped.map(|_| ());
        }
        if self.read_ahead.is_some() {
            return self.read_ahead_step(shutdown).await;
        }
        // Block no longer than until the next reap (or lease refresh), so
        // those run on time without abandoning a read in flight.
        let mut until = self.next_reap;
        if !self.holds.is_empty() {
            until = until.min(self.next_refresh);
        }
        let block = until.saturating_duration_since(now).min(self.settings.block).max(Duration::from_millis(1));
        let mut reader = match self.reader.take() {
            Some(reader) => reader,
            None => self.redis.reader(&settings.stream).await?,
        };
        let read = reader.read_new(&[], &settings.stream, &settings.group, &name, settings.count, block);
        // The last batch's XACK goes out on the other connection while this
        // read is in flight (one round trip for both). Acks still unsent when
        // shutdown cuts in stay in `unacked` and are sent on the way out.
        if self.settings.ack == AckMode::EachBeforeRead {
            // The guides' loop: every XACK answered before the next read.
            self.flush_acks().await?;
        }
        let (acked, batch) = tokio::select! {
            // The read in flight is abandoned, and its reader with it.
            _ = shutdown.cancelled() => return Ok(()),
            both = async { tokio::join!(self.flush_acks(), read) } => both,
        };
        let batch = batch?;
        self.reader = Some(reader);
        acked?;
        self.process_read(batch, shutdown).await
    }

    /// Hands what the counters gained since the last call to the control.
    fn publish(&mut self) {
        if self.stats != self.published {
            self.control.add(self.stats.since(&self.published));
            self.published = self.stats;
        }
    }

    /// The consumer's connection (a cheap handle), opened if needed.
    async fn connection(&mut self) -> Result<Connection> {
        if self.conn.is_none() {
            self.conn = Some(self.redis.connect(self.settings.block).await?);
        }
        Ok(self.conn.clone().expect("connected above"))
    }

    /// The group vanished under us (stream key deleted, or Redis restarted
    /// without persistence). Re-create it from the start of the stream, so
    /// nothing written since is skipped, and go on.
    async fn recreate_group(&mut self, error: &anyhow::Error, shutdown: &CancellationToken) {
        let (stream, group) = (self.settings.stream.clone(), self.settings.group.clone());
        tracing::warn!(consumer = %self.name, %stream, %group, "consumer group is gone ({error:#}); re-creating it at 0");
        let result = match self.connection().await {
            Ok(mut conn) => conn.ensure_group(&stream, &group, "0").await.map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            self.redis_failed(&error, shutdown).await;
        }
    }

    /// Logs a Redis failure, drops the connection and backs off before retrying.
    async fn redis_failed(&mut self, error: &anyhow::Error, shutdown: &CancellationToken) {
        self.failing_since.get_or_insert_with(Instant::now);
        tracing::warn!(consumer = %self.name, stream = %self.settings.stream,
            "redis error, retrying in {} ms: {error:#}", self.backoff.as_millis());
        self.conn = None;
        self.reader = None;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(self.backoff) => {}
        }
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}
