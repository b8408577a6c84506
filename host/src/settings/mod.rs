//! The settings of one group's consumers, whatever they come from: `host
//! run`'s flags, a folder's sidecar `NAME.toml`, or a `[plugins.NAME]` table
//! in `host.toml`. Every source fills one [`GroupSettings`] and checks it with
//! [`GroupSettings::validate`]: one set of ranges and one error text, which
//! the source prefixes with where the value came from (`--count`, or
//! `count in /plugins/orders.toml`).
//!
//! A shared type: it uses nothing of the host but plain data, and the
//! consumer, the Wasm layer and the commands all read it.

pub mod backoff;
mod invalid;
pub mod ownership;
mod partitions;
mod sandbox;

pub use crate::origin::Origin;
pub use invalid::Invalid;
use invalid::{within, within_ms};
pub use ownership::{Ownership, service_of, worker_id};
pub use sandbox::*;
use std::ops::RangeInclusive;
use std::time::Duration;

/// Entries per read: large enough to amortise the round trip and the
/// per-batch work (`make bench`: a backlog drains ~35 % faster at 500 than at
/// 100, and only a few % faster at 1000), small enough that a batch in hand
/// is little to redeliver after a crash.
pub const DEFAULT_COUNT: usize = 500;
/// A blocked read is abandoned on shutdown at once, so this only bounds how
/// often an idle consumer polls.
pub const DEFAULT_BLOCK_MS: u64 = 2_000;
/// A new group sees the whole stream: nothing already written is skipped.
pub const DEFAULT_START_ID: &str = "0";
/// Per-call wall-clock limit.
pub const DEFAULT_CALL_DEADLINE_MS: u64 = 5_000;
/// An entry idle this long is presumed abandoned (its consumer died) and is
/// reclaimed; longer than any healthy batch takes, short enough to recover fast.
pub const DEFAULT_MIN_IDLE_MS: u64 = 5_000;
/// Reaping at a fifth of the idle window bounds recovery at ~1.2× min-idle.
pub const DEFAULT_REAP_INTERVAL_MS: u64 = 1_000;
/// Five tries ride out transient failures; a poison entry stops after that.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// A retry delay past this is cut to it: a plugin asking for `u64::MAX` ms
/// would otherwise park its entry for ever (never redelivered, never
/// dead-lettered). An hour covers back-off on any outage worth waiting out.
pub const DEFAULT_MAX_RETRY_DELAY_MS: u64 = 3_600_000;

/// Consumers of one group in one process, at most.
pub const MAX_CONSUMERS: usize = 1024;
const COUNT: RangeInclusive<u64> = 1..=100_000;
const BLOCK_MS: RangeInclusive<u64> = 1..=3_600_000;
const CALL_DEADLINE_MS: RangeInclusive<u64> = 1..=3_600_000;
const MIN_IDLE_MS: RangeInclusive<u64> = 10..=86_400_000;
const REAP_INTERVAL_MS: RangeInclusive<u64> = 10..=86_400_000;
const MAX_DELIVERIES: RangeInclusive<u64> = 1..=1_000_000;
/// A day: the longest a plugin may ask an entry to wait.
pub(crate) const MAX_RETRY_DELAY_MS: RangeInclusive<u64> = 1..=86_400_000;

/// The default dead-letter stream of `stream`.
pub fn dead_letter_key(stream: &str) -> String {
    format!("{stream}:dlq")
}

/// HOSTNAME-PID-XXXX (XXXX: four hex digits drawn at start): the prefix of
/// this process's default consumer names, unique per process (two processes
/// sharing a consumer name would take each other's pending entries, and
/// `name_lease` refuses the second one). The pid alone is not enough:
/// containers sharing the host's name (host networking) all run as pid 1.
pub fn process_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let host = if host.is_empty() { "host".to_string() } else { host };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        // The clock's nanoseconds mixed with the pid: different for processes
        // started together (host networking, one image) in practice.
        let pid = u64::from(std::process::id());
        let mix = (now.as_nanos() as u64 ^ pid.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!("{host}-{pid}-{:04x}", mix >> 48)
    })
    .clone()
}

/// `n` consumer names PREFIX-1..N. Past [`MAX_CONSUMERS`] only one more is
/// made: enough for [`GroupSettings::validate`] to refuse them, without
/// making billions of names first.
pub fn numbered(prefix: &str, n: u32) -> Vec<String> {
    let n = (n as usize).min(MAX_CONSUMERS + 1);
    (1..=n).map(|i| format!("{prefix}-{i}")).collect()
}

/// MiB as bytes; a count past what `usize` holds becomes `usize::MAX` (which
/// [`GroupSettings::validate`] refuses).
pub fn mib(mb: u64) -> usize {
    usize::try_from(mb).ok().and_then(|mb| mb.checked_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// How a consumer acks the entries its plugin handled Ok.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckMode {
    /// One XACK per batch, sent with the next read (and a read ahead during a backlog).
    #[default]
    Batched,
    /// The redis.io guides' loop shape: one XACK per entry, all answered
    /// before the next read, no read-ahead (`host bench --guide-shape`).
    EachBeforeRead,
}

/// The settings of one group's consumers in this process: what a deployment
/// and each of its consumers run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// Stream key to consume.
    pub stream: String,
    /// Consumer group name.
    pub group: String,
    /// Consumer names, one task (and one connection) each; every consumer of
    /// this process (never a handover target).
    pub consumers: Vec<String>,
    /// Entries per `XREADGROUP` (COUNT), and per claim page.
    pub count: usize,
    /// How long one `XREADGROUP` blocks waiting for entries (BLOCK).
    pub block: Duration,
    /// Where a newly created group starts reading (`0` = whole stream, `$` = only new).
    pub start_id: String,
    /// Wall-clock limit of one `handle` call.
    pub call_deadline: Duration,
    /// Pending entries idle this long may be reclaimed by any consumer.
    pub min_idle: Duration,
    /// How often each consumer reaps idle entries.
    pub reap_interval: Duration,
    /// Deliveries allowed before an entry is dead-lettered.
    pub max_deliveries: u32,
    /// The longest retry delay a plugin may ask for; longer ones are cut to it.
    pub max_retry_delay: Duration,
    /// The retry delay by delivery count when the plugin gives none
    /// (`settings/backoff.rs`); empty: none (the entry comes back after `min_idle`).
    pub backoff: Vec<Duration>,
    /// Dead-letter stream key.
    pub dead_letter: String,
    /// On shutdown, hand pending entries to a live peer and delete the consumers.
    pub handover: bool,
    /// Sandbox limits of each plugin instance.
    pub limits: Limits,
    /// How handled entries are acked.
    pub ack: AckMode,
    /// `Some(n)`: `stream` is the base name of n partitions, `STREAM:{0}` …
    /// (and `dead_letter` that of theirs), each read by one consumer of
    /// this process ([`GroupSettings::per_partition`]). `None`: one stream.
    pub partitions: Option<u32>,
    /// `Some`: stream ownership mode (see `settings/ownership.rs`): `stream`
    /// is the assignment stream, `group` the service, the one consumer the
    /// worker id. `None`: a consumer group on `stream`.
    pub ownership: Option<Ownership>,
}

impl GroupSettings {
    /// The defaults of `host run` for `consumers` of `group` on `stream`.
    pub fn new(stream: &str, group: &str, consumers: Vec<String>) -> Self {
        GroupSettings {
            stream: stream.to_string(),
            group: group.to_string(),
            consumers,
            count: DEFAULT_COUNT,
            block: Duration::from_millis(DEFAULT_BLOCK_MS),
            start_id: DEFAULT_START_ID.to_string(),
            call_deadline: Duration::from_millis(DEFAULT_CALL_DEADLINE_MS),
            min_idle: Duration::from_millis(DEFAULT_MIN_IDLE_MS),
            reap_interval: Duration::from_millis(DEFAULT_REAP_INTERVAL_MS),
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            max_retry_delay: Duration::from_millis(DEFAULT_MAX_RETRY_DELAY_MS),
            backoff: Vec::new(),
            dead_letter: dead_letter_key(stream),
            handover: false,
            limits: Limits::default(),
            ack: AckMode::Batched,
            partitions: None,
            ownership: None,
        }
    }

    /// Checks every setting against its range: the one set of rules for
    /// flags, sidecars and `host.toml` alike. The error names the first
    /// setting at fault by its key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.check_consumers()?;
        within("count", self.count as u64, COUNT, "entries per read")?;
        within_ms("block_ms", self.block, BLOCK_MS, "how long one read blocks")?;
        check_start_id(&self.start_id)?;
        within_ms("call_deadline_ms", self.call_deadline, CALL_DEADLINE_MS, "wall-clock limit of one call")?;
        within_ms("min_idle_ms", self.min_idle, MIN_IDLE_MS, "idle time before an entry is reclaimed")?;
        within_ms("reap_interval_ms", self.reap_interval, REAP_INTERVAL_MS, "time between reaps")?;
        within("max_deliveries", u64::from(self.max_deliveries), MAX_DELIVERIES, "deliveries before dead-lettering")?;
        within_ms(
            "max_retry_delay_ms",
            self.max_retry_delay,
            MAX_RETRY_DELAY_MS,
            "longest retry delay, at most a day",
        )?;
        self.check_partitions()?;
        self.check_ownership()?;
        self.check_backoff()?;
        self.limits.check(self.call_deadline)
    }

    fn check_consumers(&self) -> Result<(), Invalid> {
        let names = &self.consumers;
        if names.is_empty() || names.len() > MAX_CONSUMERS {
            let shown = if names.is_empty() { "0".to_string() } else { format!("more than {MAX_CONSUMERS}") };
            return Err(Invalid::new(
                "consumers",
                format!("{shown} is outside 1..={MAX_CONSUMERS} (consumers of the group in this process)"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        match names.iter().find(|n| !seen.insert(*n)) {
            Some(twice) => {
                Err(Invalid::new("consumers", format!("{twice:?} is listed twice (each consumer needs its own name)")))
            }
            None => Ok(()),
        }
    }
}

fn check_start_id(id: &str) -> Result<(), Invalid> {
    let valid_id = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok()
    };
    if id == "$" || valid_id(id) {
        return Ok(());
    }
    Err(Invalid::new("start_id", format!("{id:?} is not a stream id: use 0, $ or MS-SEQ (e.g. 1700000000000-0)")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn settings() -> GroupSettings {
        GroupSettings::new("s", "g", vec!["c".into()])
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(settings().validate(), Ok(()));
    }

    #[test]
    fn each_range_is_checked_with_its_key() {
        let bad = |change: fn(&mut GroupSettings)| {
            let mut s = settings();
            change(&mut s);
            s.validate().unwrap_err().key
        };
        assert_eq!(bad(|s| s.consumers.clear()), "consumers");
        assert_eq!(bad(|s| s.consumers = numbered("h", 5000)), "consumers");
        assert_eq!(bad(|s| s.consumers = vec!["a".into(), "a".into()]), "consumers");
        assert_eq!(bad(|s| s.count = 0), "count");
        assert_eq!(bad(|s| s.count = 100_001), "count");
        assert_eq!(bad(|s| s.block = Duration::ZERO), "block_ms");
        assert_eq!(bad(|s| s.start_id = "abc".into()), "start_id");
        assert_eq!(bad(|s| s.call_deadline = Duration::from_secs(3601)), "call_deadline_ms");
        assert_eq!(bad(|s| s.limits.max_call = Some(Duration::from_secs(86_401))), "max_call_ms");
        assert_eq!(bad(|s| s.limits.max_call = Some(Duration::from_secs(4))), "max_call_ms");
        assert_eq!(bad(|s| s.min_idle = Duration::from_millis(9)), "min_idle_ms");
        assert_eq!(bad(|s| s.reap_interval = Duration::from_millis(9)), "reap_interval_ms");
        assert_eq!(bad(|s| s.max_deliveries = 0), "max_deliveries");
        assert_eq!(bad(|s| s.max_retry_delay = Duration::from_secs(86_401)), "max_retry_delay_ms");
        assert_eq!(bad(|s| s.limits.max_memory_bytes = mib(65_537)), "max_memory_mb");
        assert_eq!(bad(|s| s.limits.max_memory_bytes = mib(0)), "max_memory_mb");
        assert_eq!(bad(|s| s.limits.max_fuel = Some(0)), "max_fuel");
        assert_eq!(bad(|s| s.limits.http_timeout = Duration::ZERO), "http_timeout_ms");
        assert_eq!(bad(|s| s.limits.http_max_response_bytes = (1 << 30) + 1), "http_max_response_bytes");
        assert_eq!(bad(|s| Arc::make_mut(&mut s.limits.grants).http = vec!["ftp://x".into()]), "grant_http");
    }

    #[test]
    fn the_problem_reads_the_same_from_every_source() {
        let mut s = settings();
        s.count = 0;
        let error = s.validate().unwrap_err();
        assert_eq!(error.for_flag(), "invalid --count: 0 is outside 1..=100000 (entries per read)");
        assert_eq!(
            error.in_file("/p/x.toml"),
            "invalid count in /p/x.toml: 0 is outside 1..=100000 (entries per read)"
        );
        let mut s = settings();
        s.limits.max_memory_bytes = mib(u64::MAX);
        let error = s.validate().unwrap_err();
        assert_eq!(error.flag(), "--max-memory-mb");
        assert!(error.problem.starts_with("more than "), "{error}");
    }

    #[test]
    fn numbering_stops_past_the_limit() {
        assert_eq!(numbered("h", 2), ["h-1", "h-2"]);
        assert_eq!(numbered("h", u32::MAX).len(), MAX_CONSUMERS + 1);
    }
}
