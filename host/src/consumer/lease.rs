//! Leases: keeping the idle clock of entries this consumer still owns fresh
//! (`XCLAIM … JUSTID`, which does not count a delivery), so the group's
//! reapers do not steal them. Two kinds are held: entries whose handler is
//! still running, and retries whose delay outlasts `--min-idle-ms`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a lease is refreshed, as a fraction of `--min-idle-ms`: three
/// refreshes per idle window leave room for one to be late or fail.
pub const REFRESHES_PER_IDLE_WINDOW: u32 = 3;

/// The refresh period for a given `min_idle`.
pub fn refresh_every(min_idle: Duration) -> Duration {
    (min_idle / REFRESHES_PER_IDLE_WINDOW).max(Duration::from_millis(10))
}

/// Retries held at most at once: a plugin retrying every entry with a long
/// delay must not grow memory without bound, and each refresh checks every
/// held id in Redis (~4 ms of Redis time per 1,000, every --min-idle-ms/3).
/// Past it, a retry is not held and comes back after `--min-idle-ms`,
/// sooner than asked (logged).
pub const MAX_HOLDS: usize = 10_000;

/// Retries held back until their delay has (nearly) passed.
#[derive(Debug)]
pub struct Holds {
    /// Entry id → the time of the last refresh it needs (the reaper takes it
    /// `min_idle` after that).
    until: HashMap<String, Instant>,
    /// How often holds are refreshed.
    period: Duration,
}

impl Holds {
    /// No holds yet; they will be refreshed every `period`.
    pub fn new(period: Duration) -> Self {
        Holds { until: HashMap::new(), period }
    }

    /// Holds `id` so that it is not reclaimed before `delay` from now: the
    /// lease ends `min_idle` before that, and the reaper waits `min_idle`.
    /// A delay the reaper already covers needs no hold. Returns false when
    /// [`MAX_HOLDS`] are held already (and this one is not).
    pub fn hold(&mut self, id: String, delay: Duration, min_idle: Duration) -> bool {
        if delay <= min_idle {
            return true;
        }
        if self.until.len() >= MAX_HOLDS && !self.until.contains_key(&id) {
            return false;
        }
        self.until.insert(id, Instant::now() + (delay - min_idle));
        true
    }

    /// Forgets expired holds; returns the ids to refresh now. A hold stays
    /// one period past its end, so that its last refresh lands at or after
    /// the end (periodic refreshes otherwise stop up to a period early).
    pub fn current(&mut self) -> Vec<String> {
        let now = Instant::now();
        let period = self.period;
        self.until.retain(|_, until| *until + period > now);
        self.until.keys().cloned().collect()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Stops holding `id` (it was acked, dead-lettered or taken away);
    /// returns whether it was held.
    pub fn release(&mut self, id: &str) -> bool {
        self.until.remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_delays_need_no_hold_and_long_ones_expire() {
        let mut holds = Holds::new(Duration::from_millis(10));
        holds.hold("a".into(), Duration::from_millis(100), Duration::from_secs(1));
        assert!(holds.is_empty());
        holds.hold("b".into(), Duration::from_millis(1030), Duration::from_secs(1));
        assert_eq!(holds.current(), vec!["b".to_string()]);
        std::thread::sleep(Duration::from_millis(50));
        assert!(holds.current().is_empty());
    }
}
