//! [`Invalid`]: a setting out of its range, and the range checks every
//! setting goes through, so flags and settings files say the same.

use std::ops::RangeInclusive;
use std::time::Duration;

/// A setting out of its range, or otherwise unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key}: {problem}")]
pub struct Invalid {
    /// The setting as settings files name it: `count`, `block_ms`.
    pub key: &'static str,
    /// What is wrong with it, the same text whatever the source:
    /// `0 is outside 1..=100000 (entries per read)`.
    pub problem: String,
}

impl Invalid {
    pub(super) fn new(key: &'static str, problem: impl Into<String>) -> Self {
        Invalid { key, problem: problem.into() }
    }

    /// The flag that sets it: `--count`, `--block-ms`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The message for a value given by flag: `invalid --count: 0 is outside …`.
    pub fn for_flag(&self) -> String {
        format!("invalid {}: {}", self.flag(), self.problem)
    }

    /// The message for a value read from `place` (a settings file, or a table
    /// of one): `invalid count in /plugins/orders.toml: 0 is outside …`.
    pub fn in_file(&self, place: &str) -> String {
        format!("invalid {} in {place}: {}", self.key, self.problem)
    }
}

pub(super) fn range(r: &RangeInclusive<u64>) -> String {
    format!("{}..={}", r.start(), r.end())
}

pub(super) fn within(key: &'static str, value: u64, r: RangeInclusive<u64>, what: &str) -> Result<(), Invalid> {
    if r.contains(&value) {
        return Ok(());
    }
    Err(Invalid::new(key, format!("{value} is outside {} ({what})", range(&r))))
}

/// [`within`] for a duration, in whole milliseconds.
pub(super) fn within_ms(key: &'static str, value: Duration, r: RangeInclusive<u64>, what: &str) -> Result<(), Invalid> {
    let ms = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
    within(key, ms, r, &format!("ms, {what}"))
}
