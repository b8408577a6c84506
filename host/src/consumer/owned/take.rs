//! Taking assignments: reading new ones (one per read, so a burst is
//! shared), refusing those that are malformed or name the host's own keys
//! (dead-lettered), taking a stream's lease and starting its task, and
//! dropping the assignments of streams that cannot be consumed.

use super::assignment::{self, Assignment};
use super::stream::OwnedStream;
use super::{Held, Worker, lease_key, worker_of};
use crate::consumer::settle::dead_letter_event;
use crate::dead_letter::{self, Origin, Reason};
use crate::entry::Entry;
use crate::handler::HandlerSource;
use crate::streams::{Connection, DeadLetterMode, DeadLettered};
use anyhow::Result;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl<S: HandlerSource> Worker<S> {
    /// Reads a new assignment, waiting up to `block`. One per read, so the
    /// workers waiting on the group share a burst of assignments between
    /// them rather than the first one taking them all. Returns whether one
    /// was read.
    pub(super) async fn read_assignments(&mut self, block: Duration) -> Result<bool> {
        let s = self.shared.settings.clone();
        let mut conn = self.connection().await?;
        let batch = conn.read_assignments(&s.stream, &s.group, &self.shared.worker, 1, block).await?;
        let read = !batch.entries.is_empty();
        for entry in batch.entries {
            match assignment::parse(&entry) {
                Ok(assignment) => self.take(&mut conn, assignment, false).await?,
                Err(problem) => self.reject(&mut conn, &entry, &problem).await?,
            }
        }
        Ok(read)
    }

    /// Records a malformed assignment message in the dead-letter stream (and acks it).
    pub(super) async fn reject(&mut self, conn: &mut Connection, entry: &Entry, problem: &str) -> Result<()> {
        let (s, w) = (&self.shared.settings, &self.shared.worker);
        if !conn.claim_assignment(&s.stream, &s.group, w, &entry.id).await? {
            return Ok(()); // Acked meanwhile.
        }
        let tag = self.shared.pool.current().tag().clone();
        let origin =
            Origin { stream: &s.stream, group: &s.group, consumer: w, plugin: &tag.name, version: &tag.version };
        let record = dead_letter::record(&origin, &entry.id, &entry.fields, 1, Reason::Rejected, problem);
        let mode = DeadLetterMode::Settle;
        let written = conn.dead_letter(&s.stream, &s.group, w, &entry.id, &s.dead_letter, mode, &record, None).await?;
        if let DeadLettered::Written(dead_id) = written {
            dead_letter_event(&origin, &entry.id, 1, Reason::Rejected, problem, &s.dead_letter, &dead_id);
            tracing::warn!(assignments = %s.stream, entry = %entry.id, dead_letter = %s.dead_letter,
                "not an assignment, dead-lettered: {problem}");
        }
        Ok(())
    }

    /// What is wrong with assigning `stream`, a key the host itself uses.
    pub(super) fn forbidden(&self, stream: &str) -> Option<String> {
        let s = &self.shared.settings;
        let what = if stream == s.stream {
            "the assignment stream itself"
        } else if stream == s.dead_letter {
            "the dead-letter stream"
        } else if stream.ends_with(":owner") {
            "a lease key (…:owner)"
        } else {
            return None;
        };
        Some(format!("DataStreamName {stream:?} names {what}, not a data stream"))
    }

    /// Takes the lease of `assignment`'s stream and starts owning it; a
    /// stream leased by another worker is left (its assignment stays
    /// pending: the scan takes it once that lease is gone). `claim`: found
    /// by the scan (pending for another worker, or left earlier); claimed
    /// once the lease is ours, and given up if it was acked meanwhile.
    pub(super) async fn take(&mut self, conn: &mut Connection, assignment: Assignment, claim: bool) -> Result<()> {
        let (s, w) = (self.shared.settings.clone(), self.shared.worker.clone());
        if self.is_owned(&assignment.stream) {
            return Ok(());
        }
        if let Some(problem) = self.forbidden(&assignment.stream) {
            if let Some(entry) = conn.range(&s.stream, &assignment.id, &assignment.id, Some(1)).await?.pop() {
                self.reject(conn, &entry, &problem).await?;
            }
            return Ok(());
        }
        let lease = lease_key(&assignment.stream);
        let sharing =
            self.owned.lock().expect("owned lock").iter().find(|(_, h)| h.lease == lease).map(|(s, _)| s.clone());
        if let Some(other) = sharing {
            // `S` and `{S}` share one lease key: one at a time.
            tracing::warn!(stream = %assignment.stream, %other, "its lease key is another owned stream's: left for later");
            return Ok(());
        }
        let holder = conn.take_lease(&lease, &self.shared.holder, self.own.lease_ttl).await?;
        if holder != self.shared.holder {
            tracing::info!(stream = %assignment.stream, holder = %worker_of(&holder),
                "stream owned by another worker: assignment left for later");
            return Ok(());
        }
        if claim {
            if !conn.claim_assignment(&s.stream, &s.group, &w, &assignment.id).await? {
                conn.release_lease(&lease, &self.shared.holder).await?;
                return Ok(());
            }
            crate::metrics::global().ownership_claim(&s.stream, &s.group);
            tracing::info!(stream = %assignment.stream, assignment = %assignment.id, "took over the stream");
        } else {
            tracing::info!(stream = %assignment.stream, assignment = %assignment.id, "owning the stream");
        }
        let disowned = CancellationToken::new();
        let held = Held { assignment_id: assignment.id.clone(), lease: lease.clone(), disowned: disowned.clone() };
        self.owned.lock().expect("owned lock").insert(assignment.stream.clone(), held);
        let stream = assignment.stream.clone();
        let task = OwnedStream::new(self.shared.clone(), assignment, lease, (self.stop.clone(), disowned));
        let handle = self.tasks.spawn(task.run());
        self.task_streams.insert(handle.id(), stream);
        Ok(())
    }

    /// Dead-letters the assignments of streams that cannot be consumed and
    /// releases their leases (else a peer would take them over, forever).
    pub(super) async fn drop_failed(&mut self) -> Result<()> {
        let mut conn = self.connection().await?;
        let s = self.shared.settings.clone();
        while let Some((assignment, problem)) = self.failed.pop() {
            let lease = lease_key(&assignment.stream);
            let held = conn.lease_holders(std::slice::from_ref(&lease)).await?.pop().and_then(|(h, _)| h);
            if held.as_deref() != Some(self.shared.holder.as_str()) {
                continue; // No longer ours: its new owner decides.
            }
            let Some(entry) = conn.range(&s.stream, &assignment.id, &assignment.id, Some(1)).await?.pop() else {
                continue;
            };
            let problem = format!("cannot consume data stream {:?}: {problem}", assignment.stream);
            if let Err(error) = self.reject(&mut conn, &entry, &problem).await {
                self.failed.push((assignment, problem));
                return Err(error);
            }
            conn.release_lease(&lease, &self.shared.holder).await?;
        }
        Ok(())
    }
}
