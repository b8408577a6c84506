//! Folder-mode settings: a plugin `NAME.wasm` is bound to its stream, group,
//! consumers and limits by a sidecar `NAME.toml` next to it, or by a
//! `[plugins.NAME]` table in `host.toml`. Parsed here into a
//! [`GroupSettings`], checked by the same `validate()` as `host run`'s flags.
//!
//! Whoever can write the plugin folder can write a sidecar, and so grant its
//! plugin any directory or environment variable the host can reach. A
//! `[grant_ceiling]` in `host.toml` bounds that: sidecars may only narrow it.

pub use super::ceiling::GrantCeiling;
use crate::settings::{Grants, GroupSettings, Ownership, mib, numbered, service_of, worker_id};
use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `host.toml`: process-wide settings and optional per-plugin tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// Redis URL (the `--redis` flag or `REDIS_URL` override it).
    pub redis: Option<String>,
    /// Settings per plugin name, used when the plugin has no sidecar.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSettings>,
    /// The most any plugin of the folder may be granted; `None`: no bound.
    pub grant_ceiling: Option<GrantCeiling>,
}

impl HostFile {
    /// Reads `path`; a missing file is an empty configuration. Relative
    /// directories in it are relative to its folder.
    pub fn read(path: &Path) -> Result<Self> {
        let mut file: HostFile = match std::fs::read_to_string(path) {
            Ok(text) => parse(&text, &format!("invalid {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HostFile::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        for settings in file.plugins.values_mut() {
            resolve(&mut settings.grant.dirs, path);
        }
        if let Some(ceiling) = &mut file.grant_ceiling {
            resolve(&mut ceiling.dirs, path);
        }
        Ok(file)
    }
}

/// Makes relative `dirs` relative to the folder of `file`, the file that
/// names them, instead of the host's working directory.
fn resolve(dirs: &mut [PathBuf], file: &Path) {
    let base = file.parent().unwrap_or(Path::new(""));
    for dir in dirs.iter_mut().filter(|d| d.is_relative()) {
        *dir = base.join(&*dir);
    }
}

/// Parses a settings file; the error quotes the line at fault, with any
/// Redis URL in it masked (a password must not reach the log).
fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{what}: {}", crate::streams::masked::urls_in(&e.to_string())))
}

/// How many consumers, or their names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Consumers {
    /// N consumers named HOSTNAME-PID-XXXX-PLUGIN-1..N.
    Count(u32),
    /// Exactly these consumers.
    Names(Vec<String>),
}

/// The settings of one plugin (a sidecar file, or a `[plugins.NAME]` table).
/// Everything but `stream` and `group` has the same default as `host run`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Stream key to consume (with `group`; or `assignments`).
    pub stream: Option<String>,
    /// Consumer group.
    pub group: Option<String>,
    /// Stream ownership mode: the assignment stream (`<service>-input`).
    pub assignments: Option<String>,
    /// Its service (default: `assignments` without `-input`).
    pub service: Option<String>,
    /// A data stream's lease without renewal, ms.
    pub lease_ttl_ms: Option<u64>,
    /// How often leases are renewed, ms.
    pub heartbeat_ms: Option<u64>,
    /// Data streams owned at once, at most.
    pub max_owned: Option<usize>,
    /// Plugin calls at once over all owned streams.
    pub parallel: Option<usize>,
    /// Consumer count or names (default 1).
    pub consumers: Option<Consumers>,
    /// Entries per read.
    pub count: Option<usize>,
    /// BLOCK of one read, ms.
    pub block_ms: Option<u64>,
    /// Where a newly created group starts.
    pub start_id: Option<String>,
    /// Per-call deadline, ms.
    pub call_deadline_ms: Option<u64>,
    /// Longest a call may run with `progress.extend`, ms.
    pub max_call_ms: Option<u64>,
    /// Idle time before reclaim, ms.
    pub min_idle_ms: Option<u64>,
    /// Reaper period, ms.
    pub reap_interval_ms: Option<u64>,
    /// Deliveries before dead-lettering.
    pub max_deliveries: Option<u32>,
    /// Longest retry delay a plugin may ask for, ms.
    pub max_retry_delay_ms: Option<u64>,
    /// Retry delays by delivery count when the plugin gives none (`["1s", "5s"]`).
    pub backoff: Option<Vec<String>>,
    /// Dead-letter stream (default STREAM:dlq).
    pub dead_letter: Option<String>,
    /// Hand pending entries over when the plugin is stopped.
    pub handover: Option<bool>,
    /// Consume the stream as N partitions, STREAM:{0} .. STREAM:{N-1}.
    pub partitions: Option<u32>,
    /// Memory cap per instance (all its linear memories and tables), MiB.
    pub max_memory_mb: Option<u64>,
    /// Longest error text a plugin may return, bytes.
    pub max_return_bytes: Option<usize>,
    /// Fuel per call (meters the plugin).
    pub max_fuel: Option<u64>,
    /// Longest outbound HTTP request, ms.
    pub http_timeout_ms: Option<u64>,
    /// Largest outbound HTTP response body, bytes.
    pub http_max_response_bytes: Option<usize>,
    /// What the plugin may reach (nothing by default).
    #[serde(default)]
    pub grant: GrantSettings,
}

/// The `[grant]` table of a sidecar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSettings {
    /// Host directories to preopen read-only (same path in the guest); a
    /// relative one is relative to the folder of the file naming it.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Names of host environment variables to pass through.
    #[serde(default)]
    pub env: Vec<String>,
    /// Values for the `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Keys (patterns, `*` matching anything) the `effects` and `state` imports may touch.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Streams (patterns) `effects.emit` may append to.
    #[serde(default)]
    pub streams: Vec<String>,
    /// Origins (`scheme://host[:port]`) outbound HTTP may reach.
    #[serde(default)]
    pub http: Vec<String>,
}

impl PluginSettings {
    /// Reads a sidecar file; relative directories in it are relative to its folder.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut settings: Self = parse(&text, &format!("invalid sidecar {}", path.display()))?;
        resolve(&mut settings.grant.dirs, path);
        Ok(settings)
    }

    /// The settings of plugin `name` under this file (or table), checked by
    /// [`GroupSettings::validate`] like `host run`'s flags: a value out of
    /// range is an error naming its key and `place` (where these settings
    /// were read), never a value quietly changed. Counted consumers are named
    /// `host_name`-`name`-1..N.
    pub fn to_settings(&self, name: &str, host_name: &str, place: &str) -> Result<GroupSettings> {
        let consumers = match &self.consumers {
            // One id per plugin: two ownership plugins of a folder never share one.
            None if self.assignments.is_some() => vec![format!("{}-{name}", worker_id())],
            None => numbered(&format!("{host_name}-{name}"), 1),
            Some(Consumers::Count(n)) => numbered(&format!("{host_name}-{name}"), *n),
            Some(Consumers::Names(names)) => names.clone(),
        };
        let ms = Duration::from_millis;
        let mut settings = match (&self.assignments, &self.stream, &self.group) {
            (Some(key), None, None) => {
                let service = self.service.clone().or_else(|| service_of(key).map(str::to_string));
                let service = service.ok_or_else(|| {
                    anyhow!("invalid service in {place}: assignments {key:?} does not end in -input: set service")
                })?;
                let mut settings = GroupSettings::new(key, &service, consumers);
                let mut own = Ownership::default();
                own.lease_ttl = self.lease_ttl_ms.map_or(own.lease_ttl, ms);
                own.heartbeat = self.heartbeat_ms.map_or(own.heartbeat, ms);
                own.max_owned = self.max_owned.unwrap_or(own.max_owned);
                own.parallel = self.parallel.unwrap_or(own.parallel);
                settings.ownership = Some(own);
                settings
            }
            (None, Some(stream), Some(group)) => {
                let own = [
                    ("service", self.service.is_some()),
                    ("lease_ttl_ms", self.lease_ttl_ms.is_some()),
                    ("heartbeat_ms", self.heartbeat_ms.is_some()),
                    ("max_owned", self.max_owned.is_some()),
                    ("parallel", self.parallel.is_some()),
                ];
                if let Some((key, _)) = own.iter().find(|(_, set)| *set) {
                    bail!("invalid {key} in {place}: it belongs to stream ownership mode; set assignments, not stream")
                }
                GroupSettings::new(stream, group, consumers)
            }
            (Some(_), _, _) => {
                bail!(
                    "invalid {place}: set stream and group (a consumer group) or assignments (stream ownership mode), not both"
                )
            }
            (None, None, _) => bail!("invalid {place}: missing stream (or assignments, for stream ownership mode)"),
            (None, Some(_), None) => bail!("invalid {place}: missing group"),
        };
        if let Some(n) = self.count {
            settings.count = n;
        }
        if let Some(v) = self.block_ms {
            settings.block = ms(v);
        }
        if let Some(v) = &self.start_id {
            settings.start_id = v.clone();
        }
        if let Some(v) = self.call_deadline_ms {
            settings.call_deadline = ms(v);
        }
        if let Some(v) = self.min_idle_ms {
            settings.min_idle = ms(v);
        }
        if let Some(v) = self.reap_interval_ms {
            settings.reap_interval = ms(v);
        }
        if let Some(v) = self.max_deliveries {
            settings.max_deliveries = v;
        }
        if let Some(v) = self.max_retry_delay_ms {
            settings.max_retry_delay = ms(v);
        }
        if let Some(list) = &self.backoff {
            let parsed: Result<Vec<_>, String> =
                list.iter().map(|d| crate::settings::backoff::parse_duration(d)).collect();
            settings.backoff = parsed.map_err(|problem| anyhow!("invalid backoff in {place}: {problem}"))?;
        }
        if let Some(v) = &self.dead_letter {
            settings.dead_letter = v.clone();
        }
        settings.handover = self.handover.unwrap_or(false);
        settings.partitions = self.partitions;
        if let Some(mb) = self.max_memory_mb {
            settings.limits.max_memory_bytes = mib(mb);
        }
        if let Some(bytes) = self.max_return_bytes {
            settings.limits.max_return_bytes = bytes;
        }
        settings.limits.max_fuel = self.max_fuel;
        settings.limits.max_call = self.max_call_ms.map(ms);
        if let Some(v) = self.http_timeout_ms {
            settings.limits.http_timeout = ms(v);
        }
        if let Some(bytes) = self.http_max_response_bytes {
            settings.limits.http_max_response_bytes = bytes;
        }
        let env = self.grant.env.iter().filter_map(|n| Some((n.clone(), std::env::var(n).ok()?))).collect();
        let g = &self.grant;
        settings.limits.grants = std::sync::Arc::new(Grants {
            dirs: g.dirs.clone(),
            env,
            config: g.config.clone(),
            keys: g.keys.clone(),
            streams: g.streams.clone(),
            http: g.http.clone(),
        });
        settings.validate().map_err(|invalid| anyhow!(invalid.in_file(place)))?;
        for dir in &self.grant.dirs {
            if !dir.is_dir() {
                bail!("invalid grant.dirs in {place}: {} is not a directory", dir.display());
            }
        }
        Ok(settings)
    }
}

/// The settings file next to plugin `NAME.wasm`: `NAME.toml`.
pub fn sidecar_of(plugin: &Path) -> PathBuf {
    plugin.with_extension("toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_parses_and_fills_defaults() {
        let s: PluginSettings =
            toml::from_str("stream = \"orders\"\ngroup = \"g\"\nconsumers = [\"a\", \"b\"]\nmax_deliveries = 3\n")
                .unwrap();
        let settings = s.to_settings("orders", "h", "/p/orders.toml").unwrap();
        assert_eq!(settings.consumers, vec!["a", "b"]);
        assert_eq!((settings.max_deliveries, settings.dead_letter.as_str()), (3, "orders:dlq"));
        let counted: PluginSettings = toml::from_str("stream = \"s\"\ngroup = \"g\"\nconsumers = 2\n").unwrap();
        let settings = counted.to_settings("orders", "h", "/p/orders.toml").unwrap();
        assert_eq!(settings.consumers, vec!["h-orders-1", "h-orders-2"]);
        let partitioned: PluginSettings = toml::from_str("stream = \"s\"\ngroup = \"g\"\npartitions = 4\n").unwrap();
        assert_eq!(partitioned.to_settings("orders", "h", "/p/orders.toml").unwrap().partitions, Some(4));
    }

    fn error_of(sidecar: &str) -> String {
        let s: PluginSettings = toml::from_str(&format!("stream = \"s\"\ngroup = \"g\"\n{sidecar}\n")).unwrap();
        format!("{:#}", s.to_settings("orders", "h", "/p/orders.toml").unwrap_err())
    }

    #[test]
    fn values_out_of_range_are_errors_naming_file_and_key() {
        assert_eq!(
            error_of("count = 0"),
            "invalid count in /p/orders.toml: 0 is outside 1..=100000 (entries per read)"
        );
        assert!(error_of("consumers = 0").starts_with("invalid consumers in /p/orders.toml: 0 is outside"));
        assert!(error_of("consumers = []").starts_with("invalid consumers in /p/orders.toml: 0 is outside"));
        assert!(error_of("consumers = [\"a\", \"a\"]").contains("\"a\" is listed twice"));
        assert!(error_of("max_memory_mb = 65537").starts_with("invalid max_memory_mb in /p/orders.toml"));
        assert!(error_of("max_retry_delay_ms = 86400001").starts_with("invalid max_retry_delay_ms in"));
        assert!(error_of("max_fuel = 0").starts_with("invalid max_fuel in /p/orders.toml"));
        assert!(error_of("start_id = \"abc\"").starts_with("invalid start_id in /p/orders.toml"));
    }

    /// A flag and a sidecar key with the same bad value: the same problem,
    /// each naming its own source.
    #[test]
    fn flags_and_sidecars_share_one_validation() {
        let run = ["host", "run", "--plugin", "p.wasm", "--stream", "s", "--group", "g"];
        for (flag, key, value) in [
            ("--count", "count", "0"),
            ("--min-idle-ms", "min_idle_ms", "9"),
            ("--max-deliveries", "max_deliveries", "0"),
            ("--max-memory-mb", "max_memory_mb", "70000"),
            ("--consumers", "consumers", "0"),
            ("--partitions", "partitions", "0"),
        ] {
            let flag_error = crate::cli::try_parse(run.iter().copied().chain([flag, value])).unwrap_err().to_string();
            let file_error = error_of(&format!("{key} = {value}"));
            let problem = file_error.strip_prefix(&format!("invalid {key} in /p/orders.toml: ")).expect(&file_error);
            assert!(flag_error.contains(&format!("invalid {flag}: {problem}")), "{flag_error} vs {file_error}");
        }
    }

    #[test]
    fn relative_dirs_are_relative_to_the_file_naming_them() {
        let dir = std::env::temp_dir().join(format!("host-sidecar-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sidecar = dir.join("p.toml");
        std::fs::write(&sidecar, "stream = \"s\"\ngroup = \"g\"\n[grant]\ndirs = [\"data\", \"/srv\"]\n").unwrap();
        let settings = PluginSettings::read(&sidecar).unwrap();
        assert_eq!(settings.grant.dirs, vec![dir.join("data"), PathBuf::from("/srv")]);
        let host = dir.join("host.toml");
        std::fs::write(
            &host,
            "[grant_ceiling]\ndirs = [\"shared\"]\n[plugins.p]\nstream = \"s\"\ngroup = \"g\"\ngrant.dirs = [\"x\"]\n",
        )
        .unwrap();
        let file = HostFile::read(&host).unwrap();
        assert_eq!(file.grant_ceiling.unwrap().dirs, vec![dir.join("shared")]);
        assert_eq!(file.plugins["p"].grant.dirs, vec![dir.join("x")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_assignments_sidecar_runs_in_stream_ownership_mode() {
        let s: PluginSettings =
            toml::from_str("assignments = \"sessions-input\"\nlease_ttl_ms = 900\nheartbeat_ms = 300\n").unwrap();
        let settings = s.to_settings("p", "h", "p.toml").unwrap();
        assert_eq!((settings.stream.as_str(), settings.group.as_str()), ("sessions-input", "sessions"));
        let own = settings.ownership.expect("ownership mode");
        assert_eq!((own.lease_ttl.as_millis(), own.heartbeat.as_millis()), (900, 300));
        let both: PluginSettings =
            toml::from_str("assignments = \"a-input\"\nstream = \"s\"\ngroup = \"g\"\n").unwrap();
        assert!(both.to_settings("p", "h", "p.toml").unwrap_err().to_string().contains("not both"));
        let stray: PluginSettings = toml::from_str("stream = \"s\"\ngroup = \"g\"\nmax_owned = 3\n").unwrap();
        let error = stray.to_settings("p", "h", "p.toml").unwrap_err().to_string();
        assert!(error.starts_with("invalid max_owned in p.toml: it belongs to stream ownership mode"), "{error}");
        let named = s.to_settings("orders", "h", "p.toml").unwrap();
        assert!(named.consumers[0].ends_with("-orders"), "one worker id per plugin: {:?}", named.consumers);
        let short: PluginSettings =
            toml::from_str("assignments = \"a-input\"\nlease_ttl_ms = 500\nheartbeat_ms = 300\n").unwrap();
        let error = short.to_settings("p", "h", "p.toml").unwrap_err().to_string();
        assert!(error.starts_with("invalid lease_ttl_ms in p.toml"), "{error}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<PluginSettings>("stream = \"s\"\ngroup = \"g\"\nconsumer = 2\n").is_err());
    }
}
