//! One owned data stream, from taking it to finishing it: adopt it (the
//! previous owner's entries in hand become this worker's), then read its
//! entries in order and hand them to the plugin one at a time — ok acks, a
//! reject (or a failure on the last allowed delivery) dead-letters and goes
//! on, a retry holds the entry and everything after it back until its delay
//! is over. Every write goes through a script fenced by the lease
//! (`streams/owned.rs`); a `DISOWNED` answer stops the stream at once.
//! Finished when the plugin says so, on the end marker, or when the stream
//! is deleted: then the assignment is acked and the lease deleted, in one step.

use super::Shared;
use super::assignment::{Assignment, is_end};
use crate::consumer::ConsumerStats;
use crate::consumer::settle::{Action, decide};
use crate::dead_letter::{self, Origin, Reason};
use crate::effects::{Effect, Effects};
use crate::entry::Entry;
use crate::handler::{Handler, HandlerSource};
use crate::streams::{Committed, Connection, DeadLetterMode, DeadLettered, Owned, is_disowned, is_transient};
use crate::verdict::Verdict;
use crate::wasm::log_budget::one_line;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A dry stream reads again this often even if no wake-up came (a deleted
/// stream wakes nobody).
const RECHECK: Duration = Duration::from_secs(1);

/// How an owned stream ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Done (`plugin`, `end_marker`, `deleted`): assignment acked, lease deleted.
    Finished(&'static str),
    /// The lease is gone: Redis refused a write, or a renewal found it lost.
    Disowned(String),
    /// The worker is stopping: lease released for a peer to take over.
    Stopped,
    /// The stream cannot be consumed (its key is not a stream).
    Failed(String),
}

/// What handling one entry came to, in the blocking loop.
enum Handled {
    Verdict(Verdict, bool),
    End,
}

/// Why a step could not go on.
enum Halt {
    /// Redis away or refusing: back off and retry from the pending list.
    Retry,
    /// The stream ended.
    Done(Outcome),
}

type Step<T = ()> = Result<T, Halt>;

/// One owned stream's state.
pub(super) struct OwnedStream<S: HandlerSource> {
    shared: Arc<Shared<S>>,
    assignment: Assignment,
    lease: String,
    conn: Option<Connection>,
    /// Entries read and not yet handled, in order (the head may be held back).
    held: VecDeque<Entry>,
    /// Read the worker's own pending entries next (after adopting or a failure).
    history: bool,
    /// The head is held back for a retry until then.
    retry_at: Option<Instant>,
    /// The head's last error, for its dead-letter record.
    last_error: Option<String>,
    backoff: Duration,
    stats: ConsumerStats,
}

impl<S: HandlerSource> OwnedStream<S> {
    pub(super) fn new(shared: Arc<Shared<S>>, assignment: Assignment, lease: String) -> Self {
        OwnedStream {
            shared,
            assignment,
            lease,
            conn: None,
            held: VecDeque::new(),
            history: true,
            retry_at: None,
            last_error: None,
            backoff: BACKOFF_MIN,
            stats: ConsumerStats::default(),
        }
    }

    /// Runs the stream until it ends; `disowned` is cancelled by the worker
    /// when a renewal finds the lease gone.
    pub(super) async fn run(
        mut self,
        stop: CancellationToken,
        disowned: CancellationToken,
    ) -> (Assignment, Outcome, ConsumerStats) {
        let outcome = self.drive(&stop, &disowned).await;
        self.shared.waiter.forget(&self.assignment.stream);
        if let Outcome::Stopped = outcome {
            let w = &self.shared.worker;
            if let Ok(mut conn) = self.shared.redis.connect(Duration::ZERO).await
                && let Err(error) = conn.release_lease(&self.lease, w).await
            {
                tracing::warn!(stream = %self.assignment.stream, "lease not released (it expires): {error:#}");
            }
        }
        (self.assignment, outcome, self.stats)
    }

    async fn drive(&mut self, stop: &CancellationToken, disowned: &CancellationToken) -> Outcome {
        let mut adopted = false;
        loop {
            if disowned.is_cancelled() {
                return Outcome::Disowned("a lease renewal found the lease gone".into());
            }
            if stop.is_cancelled() {
                return Outcome::Stopped;
            }
            let step = if !adopted {
                self.adopt().await.map(|()| adopted = true)
            } else if self.retry_at.is_some() {
                self.redeliver(stop, disowned).await
            } else if self.held.is_empty() {
                self.read(stop, disowned).await
            } else {
                self.handle(stop, disowned).await
            };
            match step {
                Ok(()) => self.backoff = BACKOFF_MIN,
                Err(Halt::Done(outcome)) => return outcome,
                Err(Halt::Retry) => {
                    // Whatever was in hand is pending in Redis: read it again.
                    self.conn = None;
                    self.held.clear();
                    self.retry_at = None;
                    self.history = true;
                    self.nap(self.backoff, stop, disowned).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Sleeps `pause` unless stopped or disowned first; true when it slept.
    async fn nap(&self, pause: Duration, stop: &CancellationToken, disowned: &CancellationToken) -> bool {
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = disowned.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
        }
    }

    async fn connection(&mut self) -> Step<Connection> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        match self.shared.redis.connect(Duration::ZERO).await {
            Ok(conn) => Ok(self.conn.insert(conn).clone()),
            Err(error) => Err(self.failed("connecting", error)),
        }
    }

    /// Sorts a failed call: disowned (Redis refused it: the lease is gone),
    /// a problem with the key that waiting does not fix, or a retry.
    fn failed(&mut self, doing: &str, error: anyhow::Error) -> Halt {
        let (stream, s) = (&self.assignment.stream, &self.shared.settings);
        if is_disowned(&error) {
            crate::metrics::global().fenced_refused(&s.stream, &s.group);
            tracing::warn!(%stream, worker = %self.shared.worker, "disowned: Redis refused {doing}: {error:#}");
            return Halt::Done(Outcome::Disowned(format!("Redis refused {doing}")));
        }
        if !is_transient(&error) && error.to_string().contains("WRONGTYPE") {
            return Halt::Done(Outcome::Failed(format!("{error:#}")));
        }
        tracing::warn!(%stream, "redis error {doing}, retrying: {error:#}");
        Halt::Retry
    }

    async fn adopt(&mut self) -> Step {
        let mut conn = self.connection().await?;
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        match conn.adopt(&self.lease, &self.assignment.stream, &s.group, &w).await {
            Ok(Owned::Gone) => Err(Halt::Done(self.finish("deleted", None).await)),
            Ok(_) => {
                self.history = true;
                Ok(())
            }
            Err(error) if error.to_string().contains("holds a") => {
                Err(Halt::Done(Outcome::Failed(format!("{error:#}"))))
            }
            Err(error) => Err(self.failed("adopting the stream", error)),
        }
    }

    /// Reads the next entries: the worker's pending ones first, then new
    /// ones; waits (woken by the [`super::waiter::Waiter`]) when there are none.
    async fn read(&mut self, stop: &CancellationToken, disowned: &CancellationToken) -> Step {
        let mut conn = self.connection().await?;
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        let from = if self.history { "0" } else { ">" };
        let stream = self.assignment.stream.clone();
        match conn.read_owned(&self.lease, &stream, &s.group, &w, s.count, from).await {
            Ok(Owned::Gone) => Err(Halt::Done(self.finish("deleted", None).await)),
            Ok(Owned::NoGroup) => {
                tracing::warn!(%stream, "the stream's group is gone (the stream was deleted and made again): adopting it again");
                match conn.adopt(&self.lease, &stream, &s.group, &w).await {
                    Ok(_) => Ok(()),
                    Err(error) => Err(self.failed("adopting the stream", error)),
                }
            }
            Ok(Owned::Dry(newest)) => {
                let woken = self.shared.waiter.wait(&stream, &newest);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = disowned.cancelled() => {}
                    _ = woken.notified() => {}
                    _ = tokio::time::sleep(RECHECK) => {}
                }
                self.shared.waiter.forget(&stream);
                Ok(())
            }
            Ok(Owned::Read(batch)) => {
                if !batch.trimmed.is_empty() {
                    tracing::warn!(%stream, ids = ?batch.trimmed, "pending entries whose payload was trimmed before they \
                        were handled: acked (nothing is left of them)");
                    if let Err(error) = conn.ack_owned(&self.lease, &stream, &s.group, &w, &batch.trimmed).await {
                        return Err(self.failed("acking trimmed entries", error));
                    }
                }
                if self.history && batch.entries.is_empty() && batch.trimmed.is_empty() {
                    self.history = false;
                }
                self.held.extend(batch.entries);
                Ok(())
            }
            Err(error) => Err(self.failed("a read", error)),
        }
    }

    /// Redelivers the held-back head once its delay is over.
    async fn redeliver(&mut self, stop: &CancellationToken, disowned: &CancellationToken) -> Step {
        let at = self.retry_at.expect("called with a retry due");
        if !self.nap(at.saturating_duration_since(Instant::now()), stop, disowned).await {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        let head = self.held.front().expect("a held-back head").id.clone();
        match conn.redeliver_owned(&self.lease, &self.assignment.stream, &s.group, &w, &head).await {
            Ok(Some(entry)) => {
                self.held[0] = entry;
                self.retry_at = None;
                Ok(())
            }
            Ok(None) => {
                // Trimmed while held back: record it with the payload in hand.
                let entry = self.held.pop_front().expect("a held-back head");
                self.retry_at = None;
                self.stats.trimmed += 1;
                let why = format!("payload trimmed from the stream while held back for a retry; {}", self.error_text());
                self.dead_letter(&entry, Reason::Trimmed, &why, DeadLetterMode::Audit).await
            }
            Err(error) => Err(self.failed("a redelivery", error)),
        }
    }

    fn error_text(&self) -> String {
        self.last_error.clone().unwrap_or_else(|| "last error unknown".into())
    }

    /// Hands the held entries to the plugin in order, up to the first that
    /// is to be retried (or ends the stream), and settles each verdict.
    async fn handle(&mut self, stop: &CancellationToken, disowned: &CancellationToken) -> Step {
        let mut lent = tokio::select! {
            lent = self.shared.pool.lend() => lent,
            _ = stop.cancelled() => return Ok(()),
            _ = disowned.cancelled() => return Ok(()),
        };
        let mut held = std::mem::take(&mut self.held);
        let (shared, stream, info) =
            (self.shared.clone(), self.assignment.stream.clone(), self.assignment.info.clone());
        let max = shared.settings.max_deliveries;
        let (halt, halted) = (stop.clone(), disowned.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let mut outcomes = Vec::new();
            let handler = match lent.handler(&shared.pool) {
                Ok(handler) => handler,
                Err(error) => return (lent, held, Err(error), Effects::default()),
            };
            handler.assign(&stream, &info);
            let mut effects = Effects::default();
            while let Some(mut entry) = held.pop_front() {
                if halt.is_cancelled() || halted.is_cancelled() {
                    held.push_front(entry);
                    break;
                }
                if is_end(&entry) {
                    outcomes.push((entry, Handled::End));
                    break;
                }
                let verdict = handler.handle(&mut entry);
                let finished = handler.take_finished().is_some();
                let held_back = matches!(decide(verdict.clone(), entry.delivery_count, max), Action::Leave { .. });
                // Effects are committed before the next entry is handled, so
                // it reads (through `state`) what the one before it wrote.
                let recorded = handler.take_effects();
                let wrote = !recorded.is_empty();
                effects.append(recorded);
                outcomes.push((entry, Handled::Verdict(verdict, finished)));
                if finished || held_back || wrote {
                    break;
                }
            }
            (lent, held, Ok(outcomes), effects)
        })
        .await;
        let (lent, held, outcomes, effects) = match joined {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(stream = %self.assignment.stream, "plugin call task failed: {error}");
                return Err(Halt::Retry);
            }
        };
        self.shared.pool.give_back(lent);
        self.held = held;
        match outcomes {
            Ok(outcomes) => self.settle(outcomes, effects).await,
            Err(error) => {
                tracing::error!(stream = %self.assignment.stream, "cannot instantiate the plugin: {error:#}");
                Err(Halt::Retry)
            }
        }
    }

    async fn settle(&mut self, outcomes: Vec<(Entry, Handled)>, mut effects: Effects) -> Step {
        let s = self.shared.settings.clone();
        let mut oks: Vec<(Entry, Vec<Effect>)> = Vec::new();
        let mut rest = outcomes.into_iter();
        while let Some((entry, handled)) = rest.next() {
            let (verdict, finished) = match handled {
                Handled::End => {
                    if self.flushed(&mut oks, Some(entry.clone()), &mut rest).await? {
                        return Ok(());
                    }
                    return Err(Halt::Done(self.finish("end_marker", Some(&entry.id)).await));
                }
                Handled::Verdict(verdict, finished) => (verdict, finished),
            };
            self.stats.handled += 1;
            match &verdict {
                Verdict::Retry { .. } => self.stats.retried += 1,
                Verdict::Fault { .. } => self.stats.faulted += 1,
                Verdict::Reject { .. } => self.stats.rejected += 1,
                Verdict::Ack => {}
            }
            let text = if verdict.is_ack() { String::new() } else { verdict.to_string() };
            match decide(verdict, entry.delivery_count, s.max_deliveries) {
                Action::Ack if finished => {
                    let fx = effects.take(&entry.id).unwrap_or_default();
                    // Without effects, its ack goes with the assignment's (one step).
                    let last = if fx.is_empty() { Some(entry.id.clone()) } else { None };
                    if last.is_none() {
                        oks.push((entry, fx));
                    } else {
                        self.stats.acked += 1;
                    }
                    if self.flushed(&mut oks, None, &mut rest).await? {
                        return Ok(());
                    }
                    return Err(Halt::Done(self.finish("plugin", last.as_deref()).await));
                }
                Action::Ack => {
                    let fx = effects.take(&entry.id).unwrap_or_default();
                    oks.push((entry, fx));
                }
                Action::DeadLetter { reason, error } => {
                    if self.flushed(&mut oks, Some(entry.clone()), &mut rest).await? {
                        return Ok(());
                    }
                    self.dead_letter(&entry, reason, &error, DeadLetterMode::Settle).await?;
                }
                Action::Leave { error, hold } => {
                    if self.flushed(&mut oks, Some(entry.clone()), &mut rest).await? {
                        return Ok(());
                    }
                    tracing::warn!(stream = %self.assignment.stream, entry = %entry.id, deliveries = entry.delivery_count,
                        "held back for a retry (the entries after it wait): {}", one_line(&text));
                    self.hold_back(entry, hold, error);
                }
            }
        }
        self.flushed(&mut oks, None, &mut rest).await.map(|_| ())
    }

    /// Holds `entry` (and so the ones after it) back for a retry.
    fn hold_back(&mut self, entry: Entry, hold: Option<Duration>, error: String) {
        let s = &self.shared.settings;
        let delay = hold.unwrap_or(s.min_idle).min(s.max_retry_delay);
        self.retry_at = Some(Instant::now() + delay);
        self.last_error = Some(error);
        self.held.push_front(entry);
    }

    /// Flushes `oks` before `next` (the entry being settled, if not among
    /// them) is acted on. When Redis refused an entry's effects, that entry
    /// and every one after it (`next`, the rest of the pass) go back in
    /// front of the held entries, to be handled again in order: returns true.
    async fn flushed(
        &mut self,
        oks: &mut Vec<(Entry, Vec<Effect>)>,
        next: Option<Entry>,
        rest: &mut impl Iterator<Item = (Entry, Handled)>,
    ) -> Step<bool> {
        let back = self.flush(std::mem::take(oks)).await?;
        if back.is_empty() {
            return Ok(false);
        }
        let again: Vec<Entry> = back.into_iter().chain(next).chain(rest.map(|(entry, _)| entry)).collect();
        for entry in again.into_iter().rev() {
            self.held.push_front(entry);
        }
        self.retry_at = Some(Instant::now() + self.shared.settings.min_idle);
        Ok(true)
    }

    /// Acks the entries handled ok, committing their effects with them.
    /// Returns the entries to handle again: the first whose effects Redis
    /// refused and every one after it (the fenced commit applies nothing
    /// past a refusal, so the order holds); on its last delivery that first
    /// one is dead-lettered instead.
    async fn flush(&mut self, oks: Vec<(Entry, Vec<Effect>)>) -> Step<Vec<Entry>> {
        if oks.is_empty() {
            return Ok(Vec::new());
        }
        if oks.iter().all(|(_, fx)| fx.is_empty()) {
            let ids = oks.into_iter().map(|(e, _)| e.id).collect();
            self.last_error = None;
            return self.ack(ids).await.map(|()| Vec::new());
        }
        let mut conn = self.connection().await?;
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        let refs: Vec<(&str, &[Effect])> = oks.iter().map(|(e, fx)| (e.id.as_str(), fx.as_slice())).collect();
        let results = conn.commit_fenced(&self.assignment.stream, &s.group, &w, &refs, Some(&self.lease)).await;
        drop(refs);
        let results = results.map_err(|error| self.failed("an effects commit", error))?;
        let (mut back, mut applied) = (Vec::new(), 0);
        for ((entry, _), result) in oks.into_iter().zip(results) {
            match result {
                Committed::Applied => applied += 1,
                Committed::NotOwned(owner) => {
                    tracing::warn!(stream = %self.assignment.stream, entry = %entry.id,
                        "effects not applied: the entry is pending for {owner:?}, not this worker");
                }
                Committed::Refused(error) if back.is_empty() && entry.delivery_count >= s.max_deliveries => {
                    let error = format!("effects refused by Redis, nothing applied: {error}");
                    self.dead_letter(&entry, Reason::MaxDeliveries, &error, DeadLetterMode::Settle).await?;
                }
                Committed::Refused(error) => {
                    if back.is_empty() {
                        tracing::warn!(stream = %self.assignment.stream, entry = %entry.id,
                            "effects refused by Redis, nothing applied; held back for a retry: {}", one_line(&error));
                        self.last_error = Some(error);
                    }
                    back.push(entry);
                }
            }
        }
        self.count_acked(applied);
        Ok(back)
    }

    fn count_acked(&mut self, n: u64) {
        if n > 0 {
            self.stats.acked += n;
            let s = &self.shared.settings;
            crate::metrics::global().acked(&s.stream, &s.group, n);
        }
    }

    async fn ack(&mut self, ids: Vec<String>) -> Step {
        let mut conn = self.connection().await?;
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        match conn.ack_owned(&self.lease, &self.assignment.stream, &s.group, &w, &ids).await {
            Ok(n) => {
                self.count_acked(n);
                Ok(())
            }
            Err(error) => Err(self.failed(&format!("the ack of {} entries", ids.len()), error)),
        }
    }

    /// Records `entry` in the dead-letter stream and acks it, fenced.
    async fn dead_letter(&mut self, entry: &Entry, reason: Reason, error: &str, mode: DeadLetterMode) -> Step {
        let mut conn = self.connection().await?;
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        let tag = self.shared.pool.current().tag().clone();
        let stream = &self.assignment.stream;
        let origin = Origin { stream, group: &s.group, consumer: &w, plugin: &tag.name, version: &tag.version };
        let record = dead_letter::record(&origin, &entry.id, &entry.fields, entry.delivery_count, reason, error);
        let lease = Some(self.lease.as_str());
        match conn.dead_letter(stream, &s.group, &w, &entry.id, &s.dead_letter, mode, &record, lease).await {
            Ok(DeadLettered::Written(dead_id)) => {
                self.stats.dead_lettered += 1;
                self.last_error = None;
                crate::metrics::global().dead_lettered(&s.stream, &s.group, &tag, reason.as_str());
                tracing::warn!(%stream, entry = %entry.id, dead_letter = %s.dead_letter, %dead_id,
                    deliveries = entry.delivery_count, reason = reason.as_str(), "dead-lettered: {}", one_line(error));
                Ok(())
            }
            Ok(DeadLettered::NotOwned(owner)) => {
                tracing::warn!(%stream, entry = %entry.id, "not dead-lettered: the entry is pending for {owner:?}");
                Ok(())
            }
            Err(failure) => Err(self.failed("a dead letter", failure)),
        }
    }

    /// Acks the assignment and deletes the lease, with the data stream's
    /// entry `last` if given (the end marker, or the entry the plugin
    /// finished with): one fenced step. Retries while Redis is away.
    async fn finish(&mut self, reason: &'static str, last: Option<&str>) -> Outcome {
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        loop {
            let attempt = match self.connection().await {
                Ok(mut conn) => {
                    let a = &self.assignment;
                    let data = last.map(|id| (a.stream.as_str(), id));
                    conn.finish_assignment(&self.lease, &s.stream, &s.group, &a.id, &w, data).await
                }
                Err(Halt::Done(outcome)) => return outcome,
                Err(Halt::Retry) => Err(anyhow::anyhow!("Redis is away")),
            };
            match attempt {
                Ok(()) => return Outcome::Finished(reason),
                Err(error) => match self.failed("finishing the assignment", error) {
                    Halt::Done(outcome) => return outcome,
                    Halt::Retry => {
                        self.conn = None;
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    }
                },
            }
        }
    }
}
