//! What one consumer did: counters it publishes as it goes and reports
//! when it stops.

/// What one consumer did, reported when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Entries the plugin was called for (or rejected by the host before the call).
    pub handled: u64,
    /// Entries acknowledged.
    pub acked: u64,
    /// Entries left pending for a retry (plugin asked to retry).
    pub retried: u64,
    /// Entries whose call trapped or ran past its deadline.
    pub faulted: u64,
    /// Entries the plugin (or host) rejected.
    pub rejected: u64,
    /// Records written to the dead-letter stream (including trimmed audits).
    pub dead_lettered: u64,
    /// Entries taken over by this consumer's reaper (XAUTOCLAIM).
    pub claimed: u64,
    /// Pending ids found without payload (trimmed), recorded as audits.
    pub trimmed: u64,
}

impl ConsumerStats {
    /// What was done since `earlier` (a snapshot of the same counters).
    pub fn since(&self, earlier: &Self) -> Self {
        ConsumerStats {
            handled: self.handled - earlier.handled,
            acked: self.acked - earlier.acked,
            retried: self.retried - earlier.retried,
            faulted: self.faulted - earlier.faulted,
            rejected: self.rejected - earlier.rejected,
            dead_lettered: self.dead_lettered - earlier.dead_lettered,
            claimed: self.claimed - earlier.claimed,
            trimmed: self.trimmed - earlier.trimmed,
        }
    }
}

impl std::ops::AddAssign for ConsumerStats {
    fn add_assign(&mut self, o: Self) {
        self.handled += o.handled;
        self.acked += o.acked;
        self.retried += o.retried;
        self.faulted += o.faulted;
        self.rejected += o.rejected;
        self.dead_lettered += o.dead_lettered;
        self.claimed += o.claimed;
        self.trimmed += o.trimmed;
    }
}
