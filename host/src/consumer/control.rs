//! The live view and the drills of one running consumer, shared between its
//! task and whoever watches it (the `host demo` dashboard): counters as they
//! change, the last error, and three requests ([`Drill`]) that reach the
//! consumer through one channel and that it carries out on its own loop —
//! drop its next N deliveries unacked ("crash"), claim idle entries now, and
//! leave the group handing its pending list over.

use crate::consumer::ConsumerStats;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};

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

/// A request carried out by a consumer on its own loop: the one typed input
/// through which the demo's drills reach it.
#[derive(Debug)]
pub enum Drill {
    /// Drop the next N deliveries unacked (they stay pending until claimed).
    Crash(u32),
    /// Claim every entry of the group idle past min-idle now; answer how many.
    ClaimNow(oneshot::Sender<ClaimReply>),
    /// Leave the group on stopping: hand the pending list over, preferably
    /// to one of these peers (known to be running).
    Leave(Vec<String>),
}

/// The consumer's end of its drills.
pub type Drills = mpsc::UnboundedReceiver<Drill>;

/// Shared between a consumer task and its observers: what the consumer
/// shows (counters, last error, state, drops still due) and the sender of
/// its [`Drill`]s. Every method is cheap.
#[derive(Debug)]
pub struct Control {
    stats: Mutex<ConsumerStats>,
    last_error: Mutex<Option<LastError>>,
    state: Mutex<State>,
    /// Drops asked for and not yet carried out (shown; the consumer counts its own).
    crash_due: AtomicU32,
    drills: mpsc::UnboundedSender<Drill>,
}

/// Locks ignoring poison: every guarded value stays consistent on its own.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Control {
    /// A control and the drill inbox its consumer reads.
    pub fn new() -> (Self, Drills) {
        let (drills, inbox) = mpsc::unbounded_channel();
        let control = Control {
            stats: Mutex::default(),
            last_error: Mutex::default(),
            state: Mutex::new(State::Running),
            crash_due: AtomicU32::new(0),
            drills,
        };
        (control, inbox)
    }

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
        self.crash_due.fetch_add(n, Ordering::Relaxed);
        let _ = self.drills.send(Drill::Crash(n));
    }

    /// Deliveries still to be dropped.
    pub fn crashes_due(&self) -> u32 {
        self.crash_due.load(Ordering::Relaxed)
    }

    /// Told by the consumer: it dropped `n` of the deliveries due.
    pub fn crashed(&self, n: u32) {
        let _ = self.crash_due.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |due| Some(due.saturating_sub(n)));
    }

    /// Marks the consumer as leaving the group: as it stops it hands its
    /// pending list over, preferably to one of `peers` (known to be running).
    pub fn mark_removed(&self, peers: Vec<String>) {
        let _ = self.drills.send(Drill::Leave(peers));
    }

    /// Asks the consumer to claim idle entries now; it answers on its next step
    /// (or with an error when it stops first).
    pub fn request_claim(&self) -> oneshot::Receiver<ClaimReply> {
        let (sender, receiver) = oneshot::channel();
        if let Err(mpsc::error::SendError(Drill::ClaimNow(sender))) = self.drills.send(Drill::ClaimNow(sender)) {
            let _ = sender.send(Err("the consumer has stopped".into()));
        }
        receiver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drills_arrive_in_order_and_drops_due_are_shown() {
        let (control, mut inbox) = Control::new();
        control.crash_next(3);
        let _claim = control.request_claim();
        control.mark_removed(vec!["b".into()]);
        assert!(matches!(inbox.try_recv(), Ok(Drill::Crash(3))));
        assert!(matches!(inbox.try_recv(), Ok(Drill::ClaimNow(_))));
        assert!(matches!(inbox.try_recv(), Ok(Drill::Leave(peers)) if peers == ["b"]));
        assert_eq!(control.crashes_due(), 3);
        control.crashed(2);
        control.crashed(5);
        assert_eq!(control.crashes_due(), 0);
    }

    #[test]
    fn a_claim_to_a_stopped_consumer_is_answered() {
        let (control, inbox) = Control::new();
        drop(inbox);
        let mut reply = control.request_claim();
        assert_eq!(reply.try_recv().unwrap(), Err("the consumer has stopped".to_string()));
    }
}
