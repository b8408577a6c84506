//! The sandbox settings of a plugin: what its instances may reach
//! ([`Grants`]) and how much they may take ([`Limits`]), with their checks
//! (part of [`super::GroupSettings::validate`]).

use super::invalid::{range, within, within_ms};
use super::{Invalid, Origin};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// 256 MiB: ample for handlers (a 15 MB Python runtime included), small
/// enough that a runaway plugin cannot take the machine down.
pub const DEFAULT_MAX_MEMORY_MB: usize = 256;
/// 64 KiB of error text is plenty for a log line and a dead-letter record.
pub const DEFAULT_MAX_RETURN_BYTES: usize = 64 * 1024;
/// One outbound HTTP request, connect to last byte: a webhook that has not
/// answered in 10 s is down for practical purposes. The call's deadline cuts
/// it shorter when less is left of the call.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 10_000;
/// Largest HTTP response body a plugin may receive: 1 MiB is far more than a
/// webhook's answer, small enough that a hostile endpoint cannot fill memory.
pub const DEFAULT_HTTP_MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Longest a call may run by calling `progress.extend` (long handlers):
/// ten minutes, or the call deadline when that is longer. Past it a call is
/// stopped whatever it says, so a handler looping on `extend` cannot hold its
/// entries for ever.
pub const DEFAULT_MAX_CALL_MS: u64 = 600_000;

const MAX_MEMORY_MB: RangeInclusive<u64> = 1..=65_536;
const HTTP_TIMEOUT_MS: RangeInclusive<u64> = 1..=3_600_000;
const HTTP_MAX_RESPONSE_BYTES: RangeInclusive<u64> = 0..=(1 << 30);
/// A day: the longest a call may be extended to.
const MAX_CALL_MS: RangeInclusive<u64> = 1..=86_400_000;

/// What a plugin may reach beyond its entries. Nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host directories preopened read-only, at the same path in the guest.
    pub dirs: Vec<PathBuf>,
    /// Environment variables (name, value) the plugin sees.
    pub env: Vec<(String, String)>,
    /// Values the plugin reads through the `config` import.
    pub config: std::collections::BTreeMap<String, String>,
    /// Keys the `effects` and `state` imports may touch: patterns where `*`
    /// matches any run of characters.
    pub keys: Vec<String>,
    /// Streams `effects.emit` may append to (patterns, as `keys`).
    pub streams: Vec<String>,
    /// Origins (`scheme://host[:port]`) outbound HTTP may reach: scheme,
    /// host and port must all match (see [`Origin`]).
    pub http: Vec<String>,
}

/// Limits and grants applied to every instance of a plugin (enforced by
/// `wasm::limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// What the plugin may reach beyond its entries (nothing by default).
    pub grants: Arc<Grants>,
    /// All linear memories and tables of an instance together, bytes.
    pub max_memory_bytes: usize,
    /// Longest error text a plugin may return, bytes.
    pub max_return_bytes: usize,
    /// Fuel per `handle` call (about one unit per Wasm instruction); `None`:
    /// not metered, the wall-clock deadline alone bounds a call.
    pub max_fuel: Option<u64>,
    /// Longest one outbound HTTP request may take (and never past the call's deadline).
    pub http_timeout: Duration,
    /// Largest outbound HTTP response body, bytes.
    pub http_max_response_bytes: usize,
    /// On a Redis Cluster, the slot of the stream read: every key and stream
    /// an effect writes must be in it (written with the stream's ack in one
    /// script). Set by the deployment, never by a user.
    pub effects_slot: Option<u16>,
    /// Longest a call may run by calling `progress.extend`; `None`:
    /// [`DEFAULT_MAX_CALL_MS`] (see [`Limits::longest_call`]).
    pub max_call: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            grants: Default::default(),
            max_memory_bytes: DEFAULT_MAX_MEMORY_MB << 20,
            max_return_bytes: DEFAULT_MAX_RETURN_BYTES,
            max_fuel: None,
            http_timeout: Duration::from_millis(DEFAULT_HTTP_TIMEOUT_MS),
            http_max_response_bytes: DEFAULT_HTTP_MAX_RESPONSE_BYTES,
            effects_slot: None,
            max_call: None,
        }
    }
}

impl Limits {
    /// Longest a call may run with progress calls, given the call deadline `each`.
    pub fn longest_call(&self, each: Duration) -> Duration {
        self.max_call.unwrap_or(Duration::from_millis(DEFAULT_MAX_CALL_MS)).max(each)
    }

    /// Checks the limits; `call_deadline` is the group's.
    pub(super) fn check(&self, call_deadline: Duration) -> Result<(), Invalid> {
        self.check_memory()?;
        if self.max_fuel == Some(0) {
            return Err(Invalid::new("max_fuel", "0 is outside 1.. (fuel units per call)"));
        }
        if let Some(max) = self.max_call {
            within_ms("max_call_ms", max, MAX_CALL_MS, "longest a call may run, progress calls included")?;
            if max < call_deadline {
                return Err(Invalid::new(
                    "max_call_ms",
                    format!(
                        "{} is below call_deadline_ms ({}): every call may run its deadline; \
                         raise max_call_ms or lower call_deadline_ms",
                        max.as_millis(),
                        call_deadline.as_millis()
                    ),
                ));
            }
        }
        self.check_http()
    }

    fn check_http(&self) -> Result<(), Invalid> {
        let limits = self;
        within_ms("http_timeout_ms", limits.http_timeout, HTTP_TIMEOUT_MS, "longest outbound HTTP request")?;
        let bytes = u64::try_from(limits.http_max_response_bytes).unwrap_or(u64::MAX);
        within("http_max_response_bytes", bytes, HTTP_MAX_RESPONSE_BYTES, "largest HTTP response body")?;
        for origin in &limits.grants.http {
            Origin::parse(origin).map_err(|problem| Invalid::new("grant_http", problem))?;
        }
        Ok(())
    }

    fn check_memory(&self) -> Result<(), Invalid> {
        let bytes = self.max_memory_bytes;
        let mb = (bytes >> 20) as u64;
        if MAX_MEMORY_MB.contains(&mb) && bytes >= 1 << 20 {
            return Ok(());
        }
        let shown = if bytes == usize::MAX { format!("more than {mb}") } else { mb.to_string() };
        Err(Invalid::new("max_memory_mb", format!("{shown} is outside {} (MiB per instance)", range(&MAX_MEMORY_MB))))
    }
}
