//! The retry policy's back-off list (`--backoff 1s,5s,30s,2m`, or `backoff
//! = ["1s", "5s"]` in a sidecar): how long an entry the plugin asked to
//! retry without a delay of its own waits, by delivery count — the first
//! retry the first delay, the second the second, then the last one again.
//! The plugin's own delay always wins. A delay longer than `--min-idle-ms`
//! is held as any long retry is (the consumer keeps the entry's lease fresh
//! until it is due, so the reapers leave it alone).

use super::invalid::range;
use super::{GroupSettings, Invalid, MAX_RETRY_DELAY_MS};
use std::time::Duration;

/// Delays in one list, at most.
const MAX_STEPS: usize = 100;

/// Parses a duration: `250ms`, `5s`, `2m`, `1h`, or a bare number of ms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 250ms, 5s, 2m, 1h)"))?;
    let ms = match unit {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("{text:?} has an unknown unit {unit:?} (use ms, s, m or h)")),
    };
    ms.map(Duration::from_millis).ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses a comma-separated list of durations (`--backoff 1s,5s,30s`).
pub fn parse_list(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',').filter(|s| !s.trim().is_empty()).map(parse_duration).collect()
}

impl GroupSettings {
    /// The delay of a retry on delivery `deliveries` (1 = first): the
    /// plugin's `hint`, else the back-off list's step, else none.
    pub fn retry_delay(&self, deliveries: u32, hint: Option<Duration>) -> Option<Duration> {
        if hint.is_some() || self.backoff.is_empty() {
            return hint;
        }
        let step = (deliveries.max(1) as usize - 1).min(self.backoff.len() - 1);
        Some(self.backoff[step])
    }

    pub(super) fn check_backoff(&self) -> Result<(), Invalid> {
        if self.backoff.len() > MAX_STEPS {
            return Err(Invalid::new("backoff", format!("{} delays: at most {MAX_STEPS}", self.backoff.len())));
        }
        for delay in &self.backoff {
            let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            if !MAX_RETRY_DELAY_MS.contains(&ms) {
                return Err(Invalid::new(
                    "backoff",
                    format!("{ms} ms is outside {} (ms, each retry delay, at most a day)", range(&MAX_RETRY_DELAY_MS)),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_lists_parse_and_bad_ones_say_why() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 days").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
        assert_eq!(parse_list("1s, 5s,30s").unwrap().len(), 3);
    }

    #[test]
    fn the_plugins_delay_wins_then_the_list_by_delivery() {
        let mut s = GroupSettings::new("s", "g", vec!["c".into()]);
        assert_eq!(s.retry_delay(3, None), None);
        s.backoff = parse_list("1s,5s").unwrap();
        assert_eq!(s.retry_delay(1, None), Some(Duration::from_secs(1)));
        assert_eq!(s.retry_delay(2, None), Some(Duration::from_secs(5)));
        assert_eq!(s.retry_delay(9, None), Some(Duration::from_secs(5)));
        assert_eq!(s.retry_delay(2, Some(Duration::from_millis(7))), Some(Duration::from_millis(7)));
        s.backoff = vec![Duration::from_secs(86_401)];
        assert_eq!(s.validate().unwrap_err().key, "backoff");
    }
}
