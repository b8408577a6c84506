//! How a Wasm call's result becomes a [`Verdict`]. Two error layers meet
//! here: the outer wasmtime error (a trap, the call deadline, a host fault)
//! and the plugin's own `result<_, error>`; both map into one verdict.

use crate::verdict::Verdict;
use crate::wasm::bindings::WitError;
use crate::wasm::blocking_calls::BlockedPastDeadline;
use crate::wasm::clock::CallClock;
use std::time::Duration;
use wasmtime::Trap;

impl Verdict {
    /// Maps the two error layers of a `handle` call into one verdict;
    /// `clock` timed the call.
    #[inline]
    pub fn from_call(result: wasmtime::Result<Result<(), WitError>>, clock: &CallClock, fuel: Option<u64>) -> Self {
        match result {
            Ok(Ok(())) => Verdict::Ack,
            Ok(Err(WitError::Retry(retry))) => {
                Verdict::Retry { reason: retry.reason, delay: retry.delay_ms.map(Duration::from_millis) }
            }
            Ok(Err(WitError::Reject(reason))) => Verdict::Reject { reason },
            Err(error) => Verdict::Fault {
                reason: match error.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => clock.overrun(None),
                    Some(Trap::OutOfFuel) => {
                        format!("call used up its fuel ({} units per call)", fuel.unwrap_or_default())
                    }
                    Some(trap) => format!("plugin trapped: {trap}: {error:#}"),
                    None => match error.downcast_ref::<BlockedPastDeadline>() {
                        Some(BlockedPastDeadline(call)) => clock.overrun(Some(call)),
                        None => format!("plugin call failed: {error:#}"),
                    },
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::bindings::Retry;

    /// A call of 5 s, not extended.
    fn deadline() -> CallClock {
        CallClock::start(Duration::from_secs(5), Duration::from_secs(5))
    }

    #[test]
    fn plugin_results_map_to_verdicts() {
        assert_eq!(Verdict::from_call(Ok(Ok(())), &deadline(), None), Verdict::Ack);
        let retry = WitError::Retry(Retry { reason: "busy".into(), delay_ms: Some(250) });
        assert_eq!(
            Verdict::from_call(Ok(Err(retry)), &deadline(), None),
            Verdict::Retry { reason: "busy".into(), delay: Some(Duration::from_millis(250)) }
        );
        let reject = WitError::Reject("bad".into());
        assert_eq!(Verdict::from_call(Ok(Err(reject)), &deadline(), None), Verdict::Reject { reason: "bad".into() });
    }

    #[test]
    fn deadline_trap_is_a_fault_that_names_the_deadline() {
        let verdict = Verdict::from_call(Err(wasmtime::Error::from(Trap::Interrupt)), &deadline(), None);
        assert!(verdict.poisons_instance());
        assert!(verdict.to_string().contains("deadline of 5000 ms"), "{verdict}");
    }

    #[test]
    fn host_call_past_the_deadline_is_a_fault_that_names_the_call() {
        let blocked = wasmtime::Error::new(BlockedPastDeadline("wasi:io/poll.poll")).context("wasm backtrace");
        let verdict = Verdict::from_call(Err(blocked), &deadline(), None);
        assert!(verdict.poisons_instance());
        let text = verdict.to_string();
        assert!(text.contains("deadline of 5000 ms in a blocking host call (wasi:io/poll.poll)"), "{text}");
    }

    #[test]
    fn fuel_trap_is_a_fault_that_names_the_budget() {
        let verdict = Verdict::from_call(Err(wasmtime::Error::from(Trap::OutOfFuel)), &deadline(), Some(1000));
        assert!(verdict.poisons_instance());
        assert!(verdict.to_string().contains("fuel (1000 units per call)"), "{verdict}");
    }
}
