//! One owned data stream, from taking it to finishing it: adopt it (the
//! previous owner's entries in hand become this worker's), then read its
//! entries in order and hand them to the plugin one at a time
//! (`handle.rs`). Every command goes through a script fenced by the lease
//! (`streams/owned.rs`); a `DISOWNED` answer stops the stream at once. A
//! Redis failure is retried where it happened (acks, commits and dead
//! letters are idempotent), so entries in hand are neither lost nor
//! counted as delivered again. Finished when the plugin says so, on the end
//! marker, or when the stream is deleted: then the assignment is acked and
//! the lease deleted, in one step.

use super::Shared;
use super::assignment::Assignment;
use crate::consumer::ConsumerStats;
use crate::entry::Entry;
use crate::handler::HandlerSource;
use crate::streams::{Owned, is_disowned};
use anyhow::Result;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Runs `$call` (an expression on connection `$c`, awaited) until Redis
/// answers: a failure is retried after a back-off (every call made this way
/// is idempotent), until the worker stops or the lease is found gone.
/// Evaluates to `Step<T>`. (A macro, not an async closure: the future must
/// stay `Send` for the worker's task set.)
macro_rules! retrying {
    ($self:ident, $doing:expr, |$c:ident| $call:expr) => {{
        let mut backoff = $crate::consumer::owned::stream::BACKOFF_MIN;
        loop {
            let result = match $self.shared.connection().await {
                Ok(mut $c) => $call.await,
                Err(error) => Err(error),
            };
            match result {
                Ok(value) => break Ok(value),
                Err(error) => {
                    if let Err(halt) = $self.retry_or_halt(&$doing, error, &mut backoff).await {
                        break Err(halt);
                    }
                }
            }
        }
    }};
}
pub(super) use retrying;

pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A dry stream reads again this often even if no wake-up came (a deleted
/// stream wakes nobody).
const RECHECK: Duration = Duration::from_secs(1);

/// How an owned stream ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Done (`plugin`, `end_marker`, `deleted`): assignment acked, lease deleted.
    Finished(&'static str),
    /// The lease is gone: Redis refused a command, or a renewal found it lost.
    Disowned(String),
    /// The worker is stopping: lease released for a peer to take over.
    Stopped,
    /// The stream cannot be consumed (its key is not a stream).
    Failed(String),
}

/// Why a step could not go on.
pub(super) enum Halt {
    /// Redis away or refusing: back off, then the same step again.
    Retry,
    /// The entries in hand were lost with a failed plugin call task: read
    /// the pending ones again.
    Reread,
    /// The stream ended.
    Done(Outcome),
}

pub(super) type Step<T = ()> = Result<T, Halt>;

/// One owned stream's state.
pub(super) struct OwnedStream<S: HandlerSource> {
    pub(super) shared: Arc<Shared<S>>,
    pub(super) assignment: Assignment,
    pub(super) lease: String,

    /// Entries read and not yet handled, in order (the head may be held back).
    pub(super) held: VecDeque<Entry>,
    /// Read the worker's own pending entries next (after adopting).
    history: bool,
    /// The head is held back for a retry until then.
    pub(super) retry_at: Option<Instant>,
    /// The head's last error, for its dead-letter record.
    pub(super) last_error: Option<String>,
    backoff: Duration,
    pub(super) stats: ConsumerStats,
    pub(super) stop: CancellationToken,
    pub(super) disowned: CancellationToken,
}

impl<S: HandlerSource> OwnedStream<S> {
    pub(super) fn new(
        shared: Arc<Shared<S>>,
        assignment: Assignment,
        lease: String,
        (stop, disowned): (CancellationToken, CancellationToken),
    ) -> Self {
        OwnedStream {
            shared,
            assignment,
            lease,
            held: VecDeque::new(),
            history: true,
            retry_at: None,
            last_error: None,
            backoff: BACKOFF_MIN,
            stats: ConsumerStats::default(),
            stop,
            disowned,
        }
    }

    /// The lease key and the value it must hold: every command's fence.
    pub(super) fn fence(&self) -> (String, String) {
        (self.lease.clone(), self.shared.holder.clone())
    }

    /// Runs the stream until it ends (the worker cancels `disowned` when a
    /// renewal finds the lease gone).
    pub(super) async fn run(mut self) -> (Assignment, Outcome, ConsumerStats) {
        let outcome = self.drive().await;
        self.shared.waiter.forget(&self.assignment.stream);
        if let Outcome::Stopped = outcome {
            let released = match self.shared.connection().await {
                Ok(mut conn) => conn.release_lease(&self.lease, &self.shared.holder).await,
                Err(error) => Err(error),
            };
            if let Err(error) = released {
                tracing::warn!(stream = %self.assignment.stream, "lease not released (it expires): {error:#}");
            }
        }
        (self.assignment, outcome, self.stats)
    }

    async fn drive(&mut self) -> Outcome {
        let mut adopted = false;
        loop {
            if self.disowned.is_cancelled() {
                return Outcome::Disowned("a lease renewal found the lease gone".into());
            }
            if self.stop.is_cancelled() {
                return Outcome::Stopped;
            }
            let step = if !adopted {
                self.adopt().await.map(|()| adopted = true)
            } else if self.retry_at.is_some() {
                self.redeliver().await
            } else if self.held.is_empty() {
                self.read().await
            } else {
                self.handle().await
            };
            match step {
                Ok(()) => self.backoff = BACKOFF_MIN,
                Err(Halt::Done(outcome)) => return outcome,
                Err(halt) => {
                    if let Halt::Reread = halt {
                        self.held.clear();
                        self.retry_at = None;
                        self.history = true;
                    }
                    self.nap(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Sleeps `pause` unless stopped or disowned first; true when it slept.
    pub(super) async fn nap(&self, pause: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = self.disowned.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
        }
    }

    /// Sorts a failed call: disowned (Redis refused it: the lease is gone),
    /// a problem with the key that waiting does not fix, or a retry.
    pub(super) fn failed(&mut self, doing: &str, error: anyhow::Error) -> Halt {
        let (stream, s) = (&self.assignment.stream, &self.shared.settings);
        if is_disowned(&error) {
            crate::metrics::global().fenced_refused(&s.stream, &s.group);
            tracing::warn!(%stream, worker = %self.shared.worker, "disowned: Redis refused {doing}: {error:#}");
            return Halt::Done(Outcome::Disowned(format!("Redis refused {doing}")));
        }
        let code = error.chain().find_map(|c| c.downcast_ref::<redis::RedisError>()).and_then(|e| e.code());
        if code == Some("WRONGTYPE") {
            return Halt::Done(Outcome::Failed(format!("{error:#}")));
        }
        self.shared.drop_connection();
        tracing::warn!(%stream, "redis error {doing}, retrying: {error:#}");
        Halt::Retry
    }

    /// After a failed call: `Err` when it ends the stream (disowned, a key
    /// of the wrong type, or stopped while waiting), else waits `backoff`
    /// (doubled for next time) before the caller tries again.
    pub(super) async fn retry_or_halt(&mut self, doing: &str, error: anyhow::Error, backoff: &mut Duration) -> Step {
        if let Halt::Done(outcome) = self.failed(doing, error) {
            return Err(Halt::Done(outcome));
        }
        if !self.nap(*backoff).await {
            let outcome = if self.stop.is_cancelled() {
                Outcome::Stopped
            } else {
                Outcome::Disowned("a lease renewal found the lease gone".into())
            };
            return Err(Halt::Done(outcome));
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
        Ok(())
    }

    async fn adopt(&mut self) -> Step {
        let ((lease, holder), stream) = (self.fence(), self.assignment.stream.clone());
        let (group, worker) = (self.shared.settings.group.clone(), self.shared.worker.clone());
        let adopted = retrying!(self, "adopting the stream", |c| c.adopt((&lease, &holder), &stream, &group, &worker))?;
        let trimmed = match &adopted {
            Owned::Read(batch) => batch.trimmed.clone(),
            Owned::Ended(trimmed) => trimmed.clone(),
            _ => Vec::new(),
        };
        self.audit_trimmed(&trimmed).await?;
        match adopted {
            Owned::Gone => Err(Halt::Done(self.finish("deleted", None).await)),
            Owned::Ended(_) => Err(Halt::Done(self.finish("end_marker", None).await)),
            _ => {
                self.history = true;
                Ok(())
            }
        }
    }

    /// Records pending entries whose payload was trimmed before they were
    /// handled (Redis dropped them from the pending list): the record is
    /// all that is left of them.
    async fn audit_trimmed(&mut self, ids: &[String]) -> Step {
        for id in ids {
            let gone = Entry { id: id.clone(), fields: Vec::new(), delivery_count: 0 };
            self.stats.trimmed += 1;
            let why = "payload trimmed from the stream before it was handled";
            self.dead_letter(&gone, crate::dead_letter::Reason::Trimmed, why, true).await?;
        }
        Ok(())
    }

    /// Reads the next entries: the worker's pending ones first, then new
    /// ones; waits (woken by the [`super::waiter::Waiter`]) when there are none.
    async fn read(&mut self) -> Step {
        let ((lease, holder), stream) = (self.fence(), self.assignment.stream.clone());
        let (s, worker) = (self.shared.settings.clone(), self.shared.worker.clone());
        let from = if self.history { "0" } else { ">" };
        let read = match self.shared.connection().await {
            Ok(mut c) => c.read_owned((&lease, &holder), &stream, &s.group, &worker, s.count, from).await,
            Err(error) => Err(error),
        };
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                // A `>` read whose reply was lost may have delivered entries
                // all the same: read the pending ones first.
                self.history = true;
                return Err(self.failed("a read", error));
            }
        };
        match read {
            Owned::Gone | Owned::Ended(_) => Err(Halt::Done(self.finish("deleted", None).await)),
            Owned::NoGroup => {
                tracing::warn!(%stream, "the stream's group is gone (the stream was deleted and made again): adopting it again");
                retrying!(self, "adopting the stream", |c| c.adopt((&lease, &holder), &stream, &s.group, &worker))
                    .map(|_| ())
            }
            Owned::Dry(newest) => {
                let woken = self.shared.waiter.wait(&stream, &newest);
                tokio::select! {
                    _ = self.stop.cancelled() => {}
                    _ = self.disowned.cancelled() => {}
                    _ = woken.notified() => {}
                    _ = tokio::time::sleep(RECHECK) => {}
                }
                self.shared.waiter.forget(&stream);
                Ok(())
            }
            Owned::Read(batch) => {
                self.audit_trimmed(&batch.trimmed).await?;
                if self.history && batch.entries.is_empty() && batch.trimmed.is_empty() {
                    self.history = false;
                }
                self.held.extend(batch.entries);
                Ok(())
            }
        }
    }

    /// Redelivers the held-back head once its delay is over.
    async fn redeliver(&mut self) -> Step {
        let at = self.retry_at.expect("called with a retry due");
        if !self.nap(at.saturating_duration_since(Instant::now())).await {
            return Ok(());
        }
        let ((lease, holder), stream) = (self.fence(), self.assignment.stream.clone());
        let (group, worker) = (self.shared.settings.group.clone(), self.shared.worker.clone());
        let head = self.held.front().expect("a held-back head").id.clone();
        let redelivered =
            retrying!(self, "a redelivery", |c| c.redeliver_owned((&lease, &holder), &stream, &group, &worker, &head))?;
        self.retry_at = None;
        match redelivered {
            Some(entry) => {
                self.held[0] = entry;
                Ok(())
            }
            None => {
                // Trimmed while held back: record it with the payload in hand.
                let entry = self.held.pop_front().expect("a held-back head");
                self.stats.trimmed += 1;
                let last = self.last_error.clone().unwrap_or_else(|| "last error unknown".into());
                let why = format!("payload trimmed from the stream while held back for a retry; {last}");
                self.dead_letter(&entry, crate::dead_letter::Reason::Trimmed, &why, true).await
            }
        }
    }

    /// Acks the assignment and deletes the lease, with the data stream's
    /// entry `last` if given (the end marker, or the entry the plugin
    /// finished with): one fenced step, retried while Redis is away.
    pub(super) async fn finish(&mut self, reason: &'static str, last: Option<&str>) -> Outcome {
        let ((lease, holder), s) = (self.fence(), self.shared.settings.clone());
        let (id, stream) = (self.assignment.id.clone(), self.assignment.stream.clone());
        let data = last.map(|id| (stream.as_str(), id));
        let marker = crate::keys::companion(&stream, "adopted");
        match retrying!(self, "finishing the assignment", |c| c.finish_assignment(
            &lease,
            &s.stream,
            &s.group,
            &id,
            &holder,
            (&marker, data)
        )) {
            Ok(()) => {
                if last.is_some() && reason == "plugin" {
                    self.count_acked(1);
                }
                Outcome::Finished(reason)
            }
            Err(Halt::Done(outcome)) => outcome,
            Err(_) => Outcome::Stopped,
        }
    }
}
