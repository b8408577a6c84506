//! Stream ownership mode: one worker per process takes assignments from the
//! service's group on the assignment stream (`<service>-input`), each naming
//! a data stream, and owns each stream under a lease (`{STREAM}:owner`,
//! value = worker id, TTL renewed every heartbeat) while a task of its own
//! feeds the stream's entries in order to the plugin (`stream.rs`). Every
//! write for an owned stream is fenced by the lease in Redis
//! (`streams/owned.rs`).
//!
//! Failover: a lease that expires (its worker died or stalled) is noticed
//! through expired-key events and, since pub/sub can drop them, by a scan of
//! the assignment group's pending list every heartbeat; a worker below its
//! cap takes the lease (`SET NX`: one winner), claims the assignment and
//! adopts the stream, going on from its last acked entry. A worker whose
//! renewal finds its lease gone is disowned and stops that stream at once.
//!
//! Where things happen: the worker loop here; `stream.rs` (one owned
//! stream) and `handle.rs` (its entries through the plugin, verdicts
//! settled), `take.rs` (taking assignments), `renew.rs` (lease renewals),
//! `scan.rs` (takeovers), `pool.rs`
//! (plugin instances shared by the streams), `waiter.rs` (waking dry
//! streams), `assignment.rs` (the message format).

pub mod assignment;
mod handle;
mod pool;
mod renew;
mod scan;
mod stream;
mod take;
mod waiter;

use crate::consumer::ConsumerStats;
use crate::consumer::name_lease::NameLease;
use crate::handler::{Delivery, HandlerSource};
use crate::settings::{GroupSettings, Ownership};
use crate::streams::{Connection, Redis};
use anyhow::Result;
use assignment::Assignment;
use pool::Pool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stream::Outcome;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use waiter::Waiter;

/// The lease key of data stream `stream`.
pub fn lease_key(stream: &str) -> String {
    crate::keys::companion(stream, "owner")
}

/// The worker id in a lease's value (`WORKER@RUN`, see [`Shared::holder`]).
pub fn worker_of(holder: &str) -> &str {
    holder.rsplit_once('@').map_or(holder, |(worker, _)| worker)
}

/// What the worker and its stream tasks share.
struct Shared<S: HandlerSource> {
    redis: Redis,
    /// `stream`: the assignment stream; `group`: the service; per data stream: the rest.
    settings: Arc<GroupSettings>,
    /// The worker id: the consumer name in every group.
    worker: String,
    /// What this run's leases hold, `WORKER@RUN` (RUN drawn at start): a
    /// process started again under the same worker id (a pod replaced
    /// while the old one was cut off) holds other leases, so the old one's
    /// commands are refused too.
    holder: String,
    pool: Pool<S>,
    waiter: Arc<Waiter>,
    /// One multiplexed connection for every stream task (none blocks on it).
    conn: Mutex<Option<Connection>>,
}

impl<S: HandlerSource> Shared<S> {
    async fn connection(&self) -> Result<Connection> {
        if let Some(conn) = self.conn.lock().expect("connection lock").as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.redis.connect(Duration::ZERO).await?;
        *self.conn.lock().expect("connection lock") = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the shared connection after a failure: the next call opens another.
    fn drop_connection(&self) {
        *self.conn.lock().expect("connection lock") = None;
    }
}

/// A stream this worker owns.
struct Held {
    assignment_id: String,
    lease: String,
    disowned: CancellationToken,
}

/// The streams owned, shared with the renewing task.
type Owned = Arc<Mutex<HashMap<String, Held>>>;

/// The worker of one service.
pub struct Worker<S: HandlerSource> {
    shared: Arc<Shared<S>>,
    own: Ownership,
    owned: Owned,
    tasks: JoinSet<(Assignment, Outcome, ConsumerStats)>,
    /// The stream of each task (a task that panics is known by its id only).
    task_streams: HashMap<tokio::task::Id, String>,
    stats: ConsumerStats,
    conn: Option<Connection>,
    /// Warned that the cap is reached (until below it again).
    at_cap: bool,
    /// The worker's stop, which every stream task watches.
    stop: CancellationToken,
    /// Streams that cannot be consumed, whose assignments are still to be dead-lettered.
    failed: Vec<(Assignment, String)>,
    scan: scan::Scan,
}

impl<S: HandlerSource> Worker<S> {
    /// A worker for `settings` (stream ownership mode), calling `plugin`'s
    /// current version.
    pub fn new(redis: Redis, plugin: watch::Receiver<Arc<S>>, settings: Arc<GroupSettings>) -> Self {
        let own = settings.ownership.clone().expect("a worker runs in stream ownership mode");
        let worker = settings.consumers[0].clone();
        let delivery = Delivery {
            state: Some(redis.state()),
            http: None,
            stream: settings.stream.clone(),
            group: settings.group.clone(),
            consumer: worker.clone(),
        };
        let pool = Pool::new(plugin, delivery, settings.clone(), own.parallel);
        let holder = format!("{worker}@{:016x}", fastrand::u64(..));
        let waiter = Arc::default();
        let shared = Arc::new(Shared { redis, settings, worker, holder, pool, waiter, conn: Mutex::default() });
        Worker {
            shared,
            own,
            owned: Owned::default(),
            tasks: JoinSet::new(),
            task_streams: HashMap::new(),
            stats: ConsumerStats::default(),
            conn: None,
            at_cap: false,
            stop: CancellationToken::new(),
            failed: Vec::new(),
            scan: scan::Scan::default(),
        }
    }

    /// Runs until `stop`: then stops every owned stream (each finishes the
    /// entry in hand) and releases their leases for peers to take over.
    pub async fn run(mut self, stop: CancellationToken) -> Result<ConsumerStats> {
        let s = self.shared.settings.clone();
        let (redis, worker) = (self.shared.redis.clone(), self.shared.worker.clone());
        anyhow::ensure!(
            !redis.is_cluster().await?,
            "stream ownership mode does not run on a Redis Cluster yet: use one Redis server"
        );
        // A second live process with this worker id is refused here.
        let name = NameLease::acquire(&redis, &s.stream, &s.group, &worker, &stop).await?;
        let mut conn = redis.connect(s.block).await?;
        conn.expect_stream_or_none(&s.stream, "assignment").await?;
        conn.expect_stream_or_none(&s.dead_letter, "dead-letter").await?;
        conn.ensure_group(&s.stream, &s.group, "0").await?;
        // The helper tasks stop with the worker, even when it is dropped
        // mid-run (aborted: the demo's kill).
        let helpers = stop.child_token();
        let _helpers = helpers.clone().drop_guard();
        self.stop = helpers.clone();
        let events = self.subscribe(&mut conn, &helpers).await;
        self.conn = Some(conn);
        tokio::spawn(self.shared.waiter.clone().run(redis.clone(), helpers.clone()));
        // Renewals go on until every stream task has ended (each finishes the
        // entry in hand and acks it under its lease), or the worker is dropped.
        let renewing = CancellationToken::new();
        let _renewing = renewing.clone().drop_guard();
        let timing = (self.shared.holder.clone(), self.own.heartbeat, self.own.lease_ttl);
        let labels = (s.stream.clone(), s.group.clone());
        tokio::spawn(renew::renew_leases(redis.clone(), self.owned.clone(), timing, labels, renewing.clone()));
        tracing::info!(assignments = %s.stream, service = %s.group, %worker, max_owned = self.own.max_owned,
            lease_ttl_ms = self.own.lease_ttl.as_millis() as u64, heartbeat_ms = self.own.heartbeat.as_millis() as u64,
            "owning streams");
        let result = self.serve(events, &helpers, &name).await;
        helpers.cancel();
        while let Some(joined) = self.tasks.join_next_with_id().await {
            self.ended(joined);
        }
        renewing.cancel();
        self.publish();
        name.release().await;
        result.map(|()| self.stats)
    }

    /// Turns expired-key events on (or says why not) and subscribes to them.
    async fn subscribe(&self, conn: &mut Connection, stop: &CancellationToken) -> Option<mpsc::Receiver<String>> {
        let scan = self.own.heartbeat.as_millis();
        match conn.enable_expiry_events().await {
            Ok(true) => {}
            Ok(false) => tracing::info!("turned on keyspace notifications of expired keys (notify-keyspace-events Ex)"),
            Err(error) => tracing::warn!(
                "keyspace notifications are off and cannot be turned on ({error:#}): a dead worker's streams are \
                 found by the scan every {scan} ms instead. Set notify-keyspace-events Ex in redis.conf for faster failover"
            ),
        }
        match self.shared.redis.expired_keys(stop.clone()).await {
            Ok(events) => Some(events),
            Err(error) => {
                tracing::warn!("cannot subscribe to expired-key events ({error:#}): failover relies on the scan");
                None
            }
        }
    }

    async fn serve(
        &mut self,
        mut events: Option<mpsc::Receiver<String>>,
        stop: &CancellationToken,
        name: &NameLease,
    ) -> Result<()> {
        let s = self.shared.settings.clone();
        let block = s.block.min(self.own.heartbeat / 2).max(Duration::from_millis(10));
        let mut next_scan = Instant::now();
        let mut scan_now = true;
        let mut took = false;
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            if let Some(holder) = name.lost_to() {
                anyhow::bail!("worker id {:?} was taken over by {holder}: stopping", self.shared.worker);
            }
            while let Some(joined) = self.tasks.try_join_next_with_id() {
                self.ended(joined);
            }
            if !self.failed.is_empty()
                && let Err(error) = self.drop_failed().await
            {
                tracing::warn!("recording assignments of streams that cannot be consumed failed: {error:#}");
                self.conn = None;
            }
            if let Some(receiver) = &mut events {
                loop {
                    match receiver.try_recv() {
                        Ok(key) if key.ends_with(":owner") => {
                            crate::metrics::global().lease_expired(&s.stream, &s.group);
                            scan_now = true;
                        }
                        Ok(_) => {}
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            tracing::warn!("expired-key events stopped: resubscribing");
                            events = self.shared.redis.expired_keys(stop.clone()).await.ok();
                            break;
                        }
                    }
                }
            }
            if scan_now || Instant::now() >= next_scan {
                next_scan = Instant::now() + self.own.heartbeat;
                scan_now = false;
                if let Err(error) = self.scan().await {
                    tracing::warn!("scanning for streams to take over failed: {error:#}");
                    self.conn = None;
                }
            }
            self.publish();
            let pause = next_scan.saturating_duration_since(Instant::now()).min(block);
            if !self.full() {
                if took {
                    // A backlog of assignments: let the workers owning fewer
                    // streams take the next ones first (a burst is shared,
                    // not taken by whoever started first).
                    let owned = self.owned_count().min(50) as u32;
                    tokio::time::sleep(Duration::from_millis(2) * owned).await;
                }
                match self.read_assignments(pause).await {
                    Ok(read) => {
                        took = read;
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(assignments = %s.stream, "reading assignments failed (retrying): {error:#}");
                        self.conn = None;
                        took = false;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
                Some(joined) = self.tasks.join_next_with_id() => self.ended(joined),
            }
        }
    }

    async fn connection(&mut self) -> Result<Connection> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let conn = self.shared.redis.connect(self.shared.settings.block).await?;
        Ok(self.conn.insert(conn).clone())
    }

    fn owned_count(&self) -> usize {
        self.owned.lock().expect("owned lock").len()
    }

    fn is_owned(&self, stream: &str) -> bool {
        self.owned.lock().expect("owned lock").contains_key(stream)
    }

    fn running_assignments(&self) -> HashSet<String> {
        self.owned.lock().expect("owned lock").values().map(|held| held.assignment_id.clone()).collect()
    }

    /// Whether the cap is reached (said once, until below it again).
    fn full(&mut self) -> bool {
        let full = self.owned_count() >= self.own.max_owned;
        if full && !std::mem::replace(&mut self.at_cap, true) {
            tracing::warn!(
                max_owned = self.own.max_owned,
                "owning as many streams as allowed: leaving the other assignments to other workers"
            );
        }
        if !full {
            self.at_cap = false;
        }
        full
    }

    /// A stream task ended: forget the stream and count what it did.
    fn ended(
        &mut self,
        joined: Result<(tokio::task::Id, (Assignment, Outcome, ConsumerStats)), tokio::task::JoinError>,
    ) {
        let (id, (assignment, outcome, stats)) = match joined {
            Ok(done) => done,
            Err(error) => {
                // A host bug: forget the stream; its lease, no longer renewed,
                // expires and a worker takes it over.
                if let Some(stream) = self.task_streams.remove(&error.id()) {
                    self.owned.lock().expect("owned lock").remove(&stream);
                    tracing::error!(%stream, "an owned stream's task panicked: {error}");
                }
                return;
            }
        };
        self.task_streams.remove(&id);
        self.stats += stats;
        self.owned.lock().expect("owned lock").remove(&assignment.stream);
        let (s, stream) = (&self.shared.settings, &assignment.stream);
        match outcome {
            Outcome::Finished(reason) => {
                crate::metrics::global().stream_finished(&s.stream, &s.group, reason);
                tracing::info!(%stream, assignment = %assignment.id, reason, "stream finished: assignment acked, lease released");
            }
            Outcome::Disowned(why) => {
                crate::metrics::global().disowned(&s.stream, &s.group);
                crate::streams::events::record(
                    "disowned",
                    &[
                        ("stream", stream),
                        ("group", &s.group),
                        ("consumer", &self.shared.worker),
                        ("assignments", &s.stream),
                        ("assignment", &assignment.id),
                        ("error", &why),
                    ],
                );
                tracing::warn!(%stream, worker = %self.shared.worker, "disowned ({why}): stopped the stream; its new owner goes on");
            }
            Outcome::Stopped => {}
            Outcome::Failed(problem) => {
                tracing::error!(%stream, assignment = %assignment.id, "cannot consume the stream: {problem}");
                self.failed.push((assignment, problem));
            }
        }
    }

    fn publish(&self) {
        let s = &self.shared.settings;
        crate::metrics::global().owned_streams(&s.stream, &s.group, self.owned_count());
    }
}
