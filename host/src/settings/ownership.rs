//! Stream ownership mode's settings ([`Ownership`]): many small data
//! streams, each owned by one worker at a time under a lease, assigned
//! through an assignment stream. In this mode a [`GroupSettings`]' `stream`
//! is the assignment stream, `group` the service and its one consumer the
//! worker id; `count`, `min_idle` (the retry delay when the plugin gives
//! none), `max_deliveries`, `dead_letter` and the limits apply per data stream.

use super::invalid::{within, within_ms};
use super::{GroupSettings, Invalid};
use std::ops::RangeInclusive;
use std::time::Duration;

/// A lease lives 6 s without a renewal: a dead worker's streams are taken
/// over within ~6 s plus one heartbeat.
pub const DEFAULT_LEASE_TTL_MS: u64 = 6_000;
/// Renewals every 2 s: two may fail in a row before the lease lapses.
pub const DEFAULT_HEARTBEAT_MS: u64 = 2_000;
/// Streams owned per worker at most; past it, assignments are left to others.
pub const DEFAULT_MAX_OWNED: usize = 1_000;
/// The suffix of a load-balancer stream, `<service>-input`.
pub const INPUT_SUFFIX: &str = "-input";

const LEASE_TTL_MS: RangeInclusive<u64> = 100..=3_600_000;
const HEARTBEAT_MS: RangeInclusive<u64> = 10..=1_800_000;
const MAX_OWNED: RangeInclusive<u64> = 1..=100_000;
const PARALLEL: RangeInclusive<u64> = 1..=1_024;

/// How a worker owns data streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// How long a lease lives without a renewal.
    pub lease_ttl: Duration,
    /// How often a worker renews its leases (and scans for streams to take over).
    pub heartbeat: Duration,
    /// Data streams owned at once, at most.
    pub max_owned: usize,
    /// Plugin calls running at once (one instance each), over all owned streams.
    pub parallel: usize,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            lease_ttl: Duration::from_millis(DEFAULT_LEASE_TTL_MS),
            heartbeat: Duration::from_millis(DEFAULT_HEARTBEAT_MS),
            max_owned: DEFAULT_MAX_OWNED,
            parallel: std::thread::available_parallelism().map(usize::from).unwrap_or(2),
        }
    }
}

/// The service of assignment stream `key`: `KEY` without its `-input` suffix
/// (the seed library's naming), or none when it has no such suffix.
pub fn service_of(key: &str) -> Option<&str> {
    key.strip_suffix(INPUT_SUFFIX).filter(|s| !s.is_empty())
}

/// This worker's id: `POD_NAME`, else `POD_IP`, else the host name (the
/// seed library's order); `--consumer` overrides it.
pub fn worker_id() -> String {
    for var in ["POD_NAME", "POD_IP"] {
        if let Ok(value) = std::env::var(var)
            && !value.trim().is_empty()
        {
            return value.trim().to_string();
        }
    }
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    if host.is_empty() { "host".to_string() } else { host }
}

impl GroupSettings {
    pub(super) fn check_ownership(&self) -> Result<(), Invalid> {
        let Some(o) = &self.ownership else { return Ok(()) };
        within_ms("lease_ttl_ms", o.lease_ttl, LEASE_TTL_MS, "how long a lease lives without a renewal")?;
        within_ms("heartbeat_ms", o.heartbeat, HEARTBEAT_MS, "how often leases are renewed")?;
        if o.lease_ttl <= o.heartbeat * 2 {
            return Err(Invalid::new(
                "lease_ttl_ms",
                format!(
                    "{} must be more than twice the heartbeat ({} ms), or one late renewal loses the lease",
                    o.lease_ttl.as_millis(),
                    o.heartbeat.as_millis()
                ),
            ));
        }
        within("max_owned", o.max_owned as u64, MAX_OWNED, "streams owned at once")?;
        within("parallel", o.parallel as u64, PARALLEL, "plugin calls at once")?;
        if self.consumers.len() != 1 {
            return Err(Invalid::new("consumers", "stream ownership mode runs one worker, named by one consumer"));
        }
        if self.partitions.is_some() {
            return Err(Invalid::new("partitions", "stream ownership mode takes no partitions"));
        }
        if self.handover {
            return Err(Invalid::new(
                "handover",
                "stream ownership mode hands streams over by releasing their leases at shutdown: drop handover",
            ));
        }
        if self.start_id != super::DEFAULT_START_ID {
            return Err(Invalid::new("start_id", "stream ownership mode reads every data stream from its start (0)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned() -> GroupSettings {
        GroupSettings {
            ownership: Some(Ownership::default()),
            ..GroupSettings::new("svc-input", "svc", vec!["w".into()])
        }
    }

    #[test]
    fn the_lease_must_outlive_two_heartbeats() {
        assert_eq!(owned().validate(), Ok(()));
        let mut s = owned();
        s.ownership.as_mut().unwrap().lease_ttl = Duration::from_millis(4_000);
        let error = s.validate().unwrap_err();
        assert_eq!(error.key, "lease_ttl_ms");
        assert!(error.problem.contains("more than twice the heartbeat (2000 ms)"), "{error}");
        let mut s = owned();
        s.ownership.as_mut().unwrap().parallel = 0;
        assert_eq!(s.validate().unwrap_err().key, "parallel");
        let mut s = owned();
        s.consumers.push("x".into());
        assert_eq!(s.validate().unwrap_err().key, "consumers");
        let mut s = owned();
        s.handover = true;
        assert_eq!(s.validate().unwrap_err().key, "handover");
        let mut s = owned();
        s.start_id = "$".into();
        assert_eq!(s.validate().unwrap_err().key, "start_id");
    }

    #[test]
    fn the_service_comes_from_the_input_suffix() {
        assert_eq!(service_of("orders-input"), Some("orders"));
        assert_eq!(service_of("orders"), None);
        assert_eq!(service_of("-input"), None);
    }
}
