//! The time one call may take: a call has `call_deadline_ms` from its
//! start, and each `progress.extend` gives it that much again from the
//! moment of the call, never more than `max_call_ms` from its start.

use std::time::{Duration, Instant};

/// The time budget of the call in progress.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    started: Instant,
    /// What a call gets from its start, and again from each progress call.
    each: Duration,
    /// What a call gets from its start at most, progress calls included.
    longest: Duration,
    /// When the call must be over.
    pub(crate) deadline: Instant,
    /// Whether a progress call moved the deadline.
    extended: bool,
}

impl CallClock {
    /// A call starting now with `each` to run, extensible up to `longest`.
    pub fn start(each: Duration, longest: Duration) -> Self {
        Self::at(Instant::now(), each, longest)
    }

    /// A call that started at `started`.
    pub fn at(started: Instant, each: Duration, longest: Duration) -> Self {
        let longest = longest.max(each);
        CallClock { started, each, longest, deadline: started + each, extended: false }
    }

    /// A progress call at `now`: the deadline moves to `now + each`, capped
    /// at `started + longest`, and never back. Returns the time left.
    pub fn extend(&mut self, now: Instant) -> Duration {
        let target = (now + self.each).min(self.started + self.longest);
        if target > self.deadline {
            self.deadline = target;
            self.extended = true;
        }
        self.deadline.saturating_duration_since(now)
    }

    /// Why a call that ran past this clock's deadline was stopped, naming
    /// the blocking host call it was in, if any.
    pub fn overrun(&self, blocking_call: Option<&str>) -> String {
        let ms = |d: Duration| d.as_millis();
        let mut text = if !self.extended {
            format!("call exceeded its deadline of {} ms", ms(self.each))
        } else if self.deadline >= self.started + self.longest {
            format!(
                "call exceeded its longest allowed time of {} ms (max_call_ms), which progress calls cannot extend",
                ms(self.longest)
            )
        } else {
            format!(
                "call exceeded its deadline of {} ms after its last progress call ({} ms in all)",
                ms(self.each),
                ms(self.deadline - self.started)
            )
        };
        if let Some(call) = blocking_call {
            text.push_str(&format!(" in a blocking host call ({call})"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn progress_moves_the_deadline_up_to_the_longest_time() {
        let t0 = Instant::now();
        let mut clock = CallClock::at(t0, 100 * MS, 250 * MS);
        assert_eq!(clock.deadline, t0 + 100 * MS);
        assert_eq!(clock.extend(t0 + 50 * MS), 100 * MS);
        assert_eq!(clock.deadline, t0 + 150 * MS);
        // Capped at the longest time; what is left shrinks from then on.
        assert_eq!(clock.extend(t0 + 200 * MS), 50 * MS);
        assert_eq!(clock.extend(t0 + 240 * MS), 10 * MS);
        assert_eq!(clock.deadline, t0 + 250 * MS);
        assert_eq!(clock.extend(t0 + 300 * MS), Duration::ZERO);
    }

    #[test]
    fn a_late_progress_call_never_moves_the_deadline_back() {
        let t0 = Instant::now();
        // A longest time below the deadline counts as the deadline.
        let mut clock = CallClock::at(t0, 100 * MS, 10 * MS);
        assert_eq!(clock.extend(t0), 100 * MS);
        assert_eq!(clock.deadline, t0 + 100 * MS);
        assert!(clock.overrun(None).contains("deadline of 100 ms"), "{}", clock.overrun(None));
    }

    #[test]
    fn the_overrun_says_which_limit_stopped_the_call() {
        let t0 = Instant::now();
        let mut clock = CallClock::at(t0, 100 * MS, 1000 * MS);
        assert_eq!(clock.overrun(None), "call exceeded its deadline of 100 ms");
        clock.extend(t0 + 400 * MS);
        assert_eq!(
            clock.overrun(None),
            "call exceeded its deadline of 100 ms after its last progress call (500 ms in all)"
        );
        clock.extend(t0 + 950 * MS);
        let text = clock.overrun(Some("wasi:io/poll.poll"));
        assert!(text.starts_with("call exceeded its longest allowed time of 1000 ms (max_call_ms)"), "{text}");
        assert!(text.ends_with("in a blocking host call (wasi:io/poll.poll)"), "{text}");
    }
}
