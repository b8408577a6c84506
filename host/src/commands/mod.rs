//! One module per command of the binary (`run`, `bench`, `demo`, `check`,
//! `new`, `produce`, the inspection commands, and stream ownership
//! mode's `assign` and `owners`). Commands use every layer
//! below; nothing below uses them.

pub mod bench;
pub mod check;
pub mod compare;
pub mod demo;
pub mod inspect;
pub mod ownership;
pub mod partitioned;
pub mod produce;
pub mod progress;
pub mod redrive;
pub mod run;
pub mod scaffold;
pub mod test;

/// The sandbox limits of the tools that run a plugin outside a consumer
/// (`host test`, `replay --through`, `dlq requeue --through`): `host run`'s
/// defaults with `grants`, and at most 30 s per call however often the
/// plugin calls `progress.extend` (a plugin looping on it must not hang a
/// test run for `host run`'s ten minutes).
pub fn tool_limits(grants: crate::settings::Grants) -> crate::settings::Limits {
    crate::settings::Limits {
        grants: std::sync::Arc::new(grants),
        max_call: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    }
}
