//! What to do with an entry once its verdict is in: ack it, dead-letter it,
//! or leave it pending (perhaps held back for a retry delay).

use crate::dead_letter::Reason;
use crate::verdict::Verdict;
use std::time::Duration;

/// The action a verdict calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// XACK.
    Ack,
    /// XADD to the dead-letter stream and XACK, atomically.
    DeadLetter {
        /// Why.
        reason: Reason,
        /// The last error text.
        error: String,
    },
    /// Leave pending: the reaper redelivers it after `--min-idle-ms`, or
    /// after `hold` when the plugin asked for a longer delay.
    Leave {
        /// The error text, kept in case a later delivery is the last.
        error: String,
        /// The plugin's retry delay, if any.
        hold: Option<Duration>,
    },
}

/// Decides the action for an entry delivered `deliveries` times (this
/// delivery included) that got `verdict`. A failure on the last allowed
/// delivery is dead-lettered at once rather than left to time out again.
pub fn decide(verdict: Verdict, deliveries: u32, max_deliveries: u32) -> Action {
    let (error, hold) = match verdict {
        Verdict::Ack => return Action::Ack,
        Verdict::Reject { reason } => return Action::DeadLetter { reason: Reason::Rejected, error: reason },
        Verdict::Retry { reason, delay } => (reason, delay),
        Verdict::Fault { reason } => (reason, None),
    };
    if deliveries >= max_deliveries {
        Action::DeadLetter { reason: Reason::MaxDeliveries, error }
    } else {
        Action::Leave { error, hold }
    }
}

/// The error text recorded for an entry that arrives already past its
/// delivery limit (the host that delivered it last may have died mid-call).
pub fn over_limit_error(deliveries: u32, max_deliveries: u32, last_error: Option<&str>) -> String {
    match last_error {
        Some(error) => error.to_string(),
        None => format!(
            "delivered {deliveries} times, more than --max-deliveries {max_deliveries}; \
             last error unknown (a previous handler may have crashed or timed out)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(delay: Option<u64>) -> Verdict {
        Verdict::Retry { reason: "busy".into(), delay: delay.map(Duration::from_millis) }
    }

    #[test]
    fn verdicts_become_actions() {
        assert_eq!(decide(Verdict::Ack, 5, 5), Action::Ack);
        assert_eq!(
            decide(Verdict::Reject { reason: "bad".into() }, 1, 5),
            Action::DeadLetter { reason: Reason::Rejected, error: "bad".into() }
        );
        assert_eq!(
            decide(retry(Some(9)), 4, 5),
            Action::Leave { error: "busy".into(), hold: Some(Duration::from_millis(9)) }
        );
        assert_eq!(
            decide(retry(None), 5, 5),
            Action::DeadLetter { reason: Reason::MaxDeliveries, error: "busy".into() }
        );
        assert_eq!(
            decide(Verdict::Fault { reason: "trap".into() }, 6, 5),
            Action::DeadLetter { reason: Reason::MaxDeliveries, error: "trap".into() }
        );
    }
}
