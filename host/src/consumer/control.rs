//! The live view and the drills of one running consumer, shared between its
//! task and whoever watches it (the `host demo` dashboard): counters as they
//! change, the last error, and three requests the consumer carries out on its
//! own loop — drop its next N deliveries unacked ("crash"), claim idle
//! entries now, and leave the group handing its pending list over.

use crate::consumer::ConsumerStats;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::SystemTime;
use tokio::sync::oneshot;

/// The answer to a claim request: entries claimed, or why it failed.
pub type ClaimReply = Result<u64, String>;

/// The last entry a plugin did not handle Ok.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    /// Entry id.
    pub entry: String,
    /// The verdict, as logged ("retry: …", "reject: …", "fault: …").
    pub error: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// Where a consumer task is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "error")]
pub enum State {
    /// Reading and handling entries.
    Running,
    /// Stopped (shutdown or removal).
    Stopped,
    /// Ended by an error.
    Failed(String),
}

/// Shared between a consumer task and its observers; every method is cheap.
#[derive(Debug)]
pub struct Control {
    stats: Mutex<ConsumerStats>,
    last_error: Mutex<Option<LastError>>,
    state: Mutex<State>,
    crash_next: AtomicU32,
    removed: AtomicBool,
    peers: Mutex<Vec<String>>,
    claims: Mutex<Vec<oneshot::Sender<ClaimReply>>>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            stats: Mutex::default(),
            last_error: Mutex::default(),
            state: Mutex::new(State::Running),
            crash_next: AtomicU32::new(0),
            removed: AtomicBool::new(false),
            peers: Mutex::default(),
            claims: Mutex::default(),
        }
    }
}

/// Locks ignoring poison: every guarded value stays consistent on its own.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Control {
    /// The counters so far (since start or the last [`Self::reset_stats`]).
    pub fn stats(&self) -> ConsumerStats {
        *lock(&self.stats)
    }

    /// Adds what one step did.
    pub fn add(&self, delta: ConsumerStats) {
        *lock(&self.stats) += delta;
    }

    /// Zeroes the counters (the demo's reset).
    pub fn reset_stats(&self) {
        *lock(&self.stats) = ConsumerStats::default();
        *lock(&self.last_error) = None;
    }

    /// The last entry not handled Ok.
    pub fn last_error(&self) -> Option<LastError> {
        lock(&self.last_error).clone()
    }

    /// Records an entry not handled Ok.
    pub fn set_last_error(&self, entry: &str, error: &str) {
        let at_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        *lock(&self.last_error) = Some(LastError { entry: entry.to_string(), error: error.to_string(), at_ms });
    }

    /// Where the task is.
    pub fn state(&self) -> State {
        lock(&self.state).clone()
    }

    /// Set by the task as it ends.
    pub fn set_state(&self, state: State) {
        *lock(&self.state) = state;
    }

    /// Asks the consumer to drop its next `n` deliveries unacked (added to any still due).
    pub fn crash_next(&self, n: u32) {
        self.crash_next.fetch_add(n, Ordering::Relaxed);
    }

    /// Deliveries still to be dropped.
    pub fn crashes_due(&self) -> u32 {
        self.crash_next.load(Ordering::Relaxed)
    }

    /// Takes up to `available` of the deliveries due to be dropped.
    pub fn take_crashes(&self, available: usize) -> usize {
        let mut taken = 0;
        let _ = self.crash_next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |due| {
            taken = (due as usize).min(available);
            Some(due - taken as u32)
        });
        taken
    }

    /// Marks the consumer as leaving the group: as it stops it hands its
    /// pending list over, preferably to one of `peers` (known to be running).
    pub fn mark_removed(&self, peers: Vec<String>) {
        *lock(&self.peers) = peers;
        self.removed.store(true, Ordering::Relaxed);
    }

    /// The peers known to be running when the consumer was removed.
    pub fn peers(&self) -> Vec<String> {
        lock(&self.peers).clone()
    }

    /// Whether the consumer is leaving the group.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    /// Queues a claim request; the consumer answers it on its next step.
    pub fn request_claim(&self) -> oneshot::Receiver<ClaimReply> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.claims).push(sender);
        receiver
    }

    /// The claim requests waiting for an answer.
    pub fn take_claims(&self) -> Vec<oneshot::Sender<ClaimReply>> {
        std::mem::take(&mut *lock(&self.claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_are_taken_at_most_as_many_as_due() {
        let control = Control::default();
        control.crash_next(3);
        assert_eq!(control.take_crashes(2), 2);
        assert_eq!(control.take_crashes(5), 1);
        assert_eq!(control.take_crashes(5), 0);
        assert_eq!(control.crashes_due(), 0);
    }
}
