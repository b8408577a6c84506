//! What became of one entry, and how the consumer settles it.
//!
//! Two error layers meet here: the outer wasmtime error (a trap, the call
//! deadline, a host fault) and the plugin's own `result<_, error>`. Both are
//! mapped into one [`Verdict`] in [`Verdict::from_call`].

use crate::wasm::bindings::WitError;
use crate::wasm::blocking_calls::BlockedPastDeadline;
use std::fmt;
use std::time::Duration;
use wasmtime::Trap;

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
    /// Maps the two error layers of a `handle` call into one verdict.
    pub fn from_call(result: wasmtime::Result<Result<(), WitError>>, deadline: Duration, fuel: Option<u64>) -> Self {
        match result {
            Ok(Ok(())) => Verdict::Ack,
            Ok(Err(WitError::Retry(retry))) => {
                Verdict::Retry { reason: retry.reason, delay: retry.delay_ms.map(Duration::from_millis) }
            }
            Ok(Err(WitError::Reject(reason))) => Verdict::Reject { reason },
            Err(error) => Verdict::Fault {
                reason: match error.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => {
                        format!("call exceeded its deadline of {} ms", deadline.as_millis())
                    }
                    Some(Trap::OutOfFuel) => {
                        format!("call used up its fuel ({} units per call)", fuel.unwrap_or_default())
                    }
                    Some(trap) => format!("plugin trapped: {trap}: {error:#}"),
                    None => match error.downcast_ref::<BlockedPastDeadline>() {
                        Some(BlockedPastDeadline(call)) => format!(
                            "call exceeded its deadline of {} ms in a blocking host call ({call})",
                            deadline.as_millis()
                        ),
                        None => format!("plugin call failed: {error:#}"),
                    },
                },
            },
        }
    }

    /// A plugin that returned more than `max_bytes` of error text broke its
    /// sandbox limit: that is a fault (the text is not kept).
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
    pub fn is_ack(&self) -> bool {
        matches!(self, Verdict::Ack)
    }

    /// True when the plugin instance must be dropped and instantiated again.
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
    use crate::wasm::bindings::Retry;

    const DEADLINE: Duration = Duration::from_secs(5);

    #[test]
    fn plugin_results_map_to_verdicts() {
        assert_eq!(Verdict::from_call(Ok(Ok(())), DEADLINE, None), Verdict::Ack);
        let retry = WitError::Retry(Retry { reason: "busy".into(), delay_ms: Some(250) });
        assert_eq!(
            Verdict::from_call(Ok(Err(retry)), DEADLINE, None),
            Verdict::Retry { reason: "busy".into(), delay: Some(Duration::from_millis(250)) }
        );
        let reject = WitError::Reject("bad".into());
        assert_eq!(Verdict::from_call(Ok(Err(reject)), DEADLINE, None), Verdict::Reject { reason: "bad".into() });
    }

    #[test]
    fn oversized_error_text_is_a_fault() {
        let big = Verdict::Reject { reason: "x".repeat(100) };
        assert!(big.clone().capped(100).to_string().starts_with("reject"));
        assert!(big.capped(99).poisons_instance());
    }

    #[test]
    fn deadline_trap_is_a_fault_that_names_the_deadline() {
        let verdict = Verdict::from_call(Err(wasmtime::Error::from(Trap::Interrupt)), DEADLINE, None);
        assert!(verdict.poisons_instance());
        assert!(verdict.to_string().contains("deadline of 5000 ms"), "{verdict}");
    }

    #[test]
    fn host_call_past_the_deadline_is_a_fault_that_names_the_call() {
        let blocked = wasmtime::Error::new(BlockedPastDeadline("wasi:io/poll.poll")).context("wasm backtrace");
        let verdict = Verdict::from_call(Err(blocked), DEADLINE, None);
        assert!(verdict.poisons_instance());
        let text = verdict.to_string();
        assert!(text.contains("deadline of 5000 ms in a blocking host call (wasi:io/poll.poll)"), "{text}");
    }

    #[test]
    fn fuel_trap_is_a_fault_that_names_the_budget() {
        let verdict = Verdict::from_call(Err(wasmtime::Error::from(Trap::OutOfFuel)), DEADLINE, Some(1000));
        assert!(verdict.poisons_instance());
        assert!(verdict.to_string().contains("fuel (1000 units per call)"), "{verdict}");
    }
}
