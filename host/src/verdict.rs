//! What became of one entry: the [`Verdict`] a handler gives, which the
//! consumer settles. (How a Wasm call's result becomes one is the Wasm
//! layer's business: `wasm/verdicts.rs`.)

use std::fmt;
use std::time::Duration;

/// The outcome of handling one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled: acknowledge (XACK).
    Ack,
    /// Transient failure reported by the plugin: leave pending for redelivery.
    Retry {
        /// The plugin's reason.
        reason: String,
        /// Do not redeliver before this delay (a hint the reaper honours).
        delay: Option<Duration>,
    },
    /// Permanent failure: the entry can never be handled.
    Reject {
        /// Why, from the plugin or from the host (e.g. a non-UTF-8 field name).
        reason: String,
    },
    /// The call itself failed (trap, deadline, host error): leave pending; the
    /// instance is recycled before the next call.
    Fault {
        /// What went wrong, for the log.
        reason: String,
    },
}

impl Verdict {
    /// A plugin that returned more than `max_bytes` of error text broke its
    /// sandbox limit: that is a fault (the text is not kept).
    #[inline]
    pub fn capped(self, max_bytes: usize) -> Self {
        let returned = match &self {
            Verdict::Retry { reason, .. } | Verdict::Reject { reason } => reason.len(),
            _ => return self,
        };
        if returned <= max_bytes {
            return self;
        }
        Verdict::Fault {
            reason: format!("plugin returned {returned} bytes of error text, more than the {max_bytes}-byte limit"),
        }
    }

    /// True when the entry must be acknowledged.
    #[inline]
    pub fn is_ack(&self) -> bool {
        matches!(self, Verdict::Ack)
    }

    /// True when the plugin instance must be dropped and instantiated again.
    #[inline]
    pub fn poisons_instance(&self) -> bool {
        matches!(self, Verdict::Fault { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Ack => f.write_str("ack"),
            Verdict::Retry { reason, delay: Some(d) } => {
                write!(f, "retry after {} ms: {reason}", d.as_millis())
            }
            Verdict::Retry { reason, delay: None } => write!(f, "retry: {reason}"),
            Verdict::Reject { reason } => write!(f, "reject: {reason}"),
            Verdict::Fault { reason } => write!(f, "fault: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_error_text_is_a_fault() {
        let big = Verdict::Reject { reason: "x".repeat(100) };
        assert!(big.clone().capped(100).to_string().starts_with("reject"));
        assert!(big.capped(99).poisons_instance());
    }
}
