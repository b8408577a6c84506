//! Progress of a command a user waits on (`dlq requeue --all`, `host
//! bench`): a log line on stderr at most every [`EVERY`], saying how far it
//! got, how fast, and about how long the rest takes.

use std::time::{Duration, Instant};

/// At most one line this often.
pub const EVERY: Duration = Duration::from_secs(2);

/// How far one long step got.
pub struct Progress {
    /// What is counted, e.g. "dlq requeue --all" or "bench acked".
    what: &'static str,
    /// The count it ends at, when known.
    total: Option<u64>,
    started: Instant,
    next: Instant,
}

impl Progress {
    pub fn new(what: &'static str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress { what, total, started: now, next: now + EVERY }
    }

    /// Notes that `done` are done; logs a line if the last was [`EVERY`] ago.
    #[inline]
    pub fn update(&mut self, done: u64) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + EVERY;
        tracing::info!("{}", self.line(done, now - self.started));
    }

    fn line(&self, done: u64, elapsed: Duration) -> String {
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        match self.total {
            Some(total) if total > 0 => {
                let left = total.saturating_sub(done) as f64 / rate.max(1e-9);
                let left = if left.is_finite() && left < 1e7 { format!(", ~{left:.0} s to go") } else { String::new() };
                format!(
                    "{}: {done} of {total} ({:.0} %, {rate:.0}/s{left})",
                    self.what,
                    done as f64 * 100.0 / total as f64
                )
            }
            _ => format!("{}: {done} ({rate:.0}/s)", self.what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_far_how_fast_and_how_long() {
        let progress = Progress::new("dlq requeue --all", Some(1000));
        assert_eq!(
            progress.line(250, Duration::from_secs(5)),
            "dlq requeue --all: 250 of 1000 (25 %, 50/s, ~15 s to go)"
        );
        let progress = Progress::new("acked", None);
        assert_eq!(progress.line(300, Duration::from_secs(3)), "acked: 300 (100/s)");
        let progress = Progress::new("acked", Some(10));
        assert_eq!(progress.line(0, Duration::from_secs(3)), "acked: 0 of 10 (0 %, 0/s)");
    }
}
