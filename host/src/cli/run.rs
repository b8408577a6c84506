//! `host run`'s flags: `--plugin FILE` with the settings of its group's
//! consumers (checked by `GroupSettings::validate`, as sidecars are), or
//! `--plugins DIR`, whose settings come from the folder's files.

use super::RedisArgs;
use crate::config::{Command, FolderConfig, RunConfig};
use crate::settings::{self, GroupSettings, Limits};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["plugin", "plugins"])))]
pub(super) struct RunArgs {
    /// Plugin component (.wasm) exporting `handle`; watched and hot-reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    plugin: Option<PathBuf>,
    /// Folder of plugins: each NAME.wasm runs with the settings of NAME.toml (or
    /// [plugins.NAME] in host.toml); files are watched and hot-reloaded.
    /// Per-plugin settings come from those files, so their flags conflict with it.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "stream", "group", "consumer", "consumers", "count", "block_ms", "start_id", "call_deadline_ms", "max_call_ms",
                "min_idle_ms", "reap_interval_ms", "max_deliveries", "max_retry_delay_ms", "backoff", "dead_letter", "handover",
        "max_memory_mb",
        "max_return_bytes", "max_fuel", "grant_key", "grant_stream", "grant_http",
        "http_timeout_ms", "http_max_response_bytes", "partitions", "assignments", "service", "lease_ttl_ms",
        "heartbeat_ms", "max_owned", "parallel",
    ])]
    plugins: Option<PathBuf>,
    /// Host settings for folder mode [default: DIR/host.toml].
    #[arg(long, value_name = "FILE", requires = "plugins")]
    config: Option<PathBuf>,
    /// Stream key to consume.
    #[arg(long, value_name = "KEY", required_unless_present_any = ["plugins", "assignments"])]
    stream: Option<String>,
    /// Consumer group (created with MKSTREAM if missing).
    #[arg(long, value_name = "NAME", required_unless_present_any = ["plugins", "assignments"])]
    group: Option<String>,
    /// Stream ownership mode: own the data streams assigned through this
    /// load-balancer stream (`<service>-input`), one worker per stream, in order.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["stream", "group", "consumers", "partitions", "handover"])]
    assignments: Option<String>,
    /// The service: the group on the assignment stream and on every data stream
    /// [default: KEY without its -input suffix].
    #[arg(long, value_name = "NAME", requires = "assignments")]
    service: Option<String>,
    /// How long a data stream's lease lives without a renewal (ms); more than twice --heartbeat-ms.
    #[arg(long, value_name = "MS", default_value_t = settings::ownership::DEFAULT_LEASE_TTL_MS, requires = "assignments")]
    lease_ttl_ms: u64,
    /// How often leases are renewed, and assignments scanned for dead owners (ms).
    #[arg(long, value_name = "MS", default_value_t = settings::ownership::DEFAULT_HEARTBEAT_MS, requires = "assignments")]
    heartbeat_ms: u64,
    /// Data streams owned at once, at most; past it assignments are left to other workers.
    #[arg(long, value_name = "N", default_value_t = settings::ownership::DEFAULT_MAX_OWNED, requires = "assignments")]
    max_owned: usize,
    /// Plugin calls at once over all owned streams (one instance each) [default: CPU count].
    #[arg(long, value_name = "N", requires = "assignments")]
    parallel: Option<usize>,
    /// Name of the single consumer [default: HOSTNAME-PID-XXXX-1, unique per process;
    /// with --assignments, the worker id: POD_NAME, else POD_IP, else the host name].
    #[arg(long, value_name = "NAME", conflicts_with = "consumers")]
    consumer: Option<String>,
    /// Number of consumers in this process, named HOSTNAME-PID-XXXX-1..N.
    #[arg(long, value_name = "N")]
    consumers: Option<u32>,
    #[command(flatten)]
    redis: RedisArgs,
    /// Entries per XREADGROUP.
    #[arg(long, value_name = "N", default_value_t = settings::DEFAULT_COUNT)]
    count: usize,
    /// Milliseconds one XREADGROUP blocks waiting for entries.
    #[arg(long, value_name = "MS", default_value_t = settings::DEFAULT_BLOCK_MS)]
    block_ms: u64,
    /// Where a newly created group starts: 0 = the whole stream, $ = only new entries.
    #[arg(long, value_name = "ID", default_value = settings::DEFAULT_START_ID)]
    start_id: String,
    /// Wall-clock limit of one `handle` call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = settings::DEFAULT_CALL_DEADLINE_MS)]
    call_deadline_ms: u64,
    /// Longest one call may run when the plugin keeps calling `progress.extend`
    /// (each call gives it --call-deadline-ms more) [default: 600000, or
    /// --call-deadline-ms when longer].
    #[arg(long, value_name = "MS")]
    max_call_ms: Option<u64>,
    /// Pending entries idle this long (ms) are reclaimed by the group's reapers.
    #[arg(long, value_name = "MS", default_value_t = settings::DEFAULT_MIN_IDLE_MS)]
    min_idle_ms: u64,
    /// How often each consumer reaps idle entries (ms).
    #[arg(long, value_name = "MS", default_value_t = settings::DEFAULT_REAP_INTERVAL_MS)]
    reap_interval_ms: u64,
    /// Deliveries allowed before an entry goes to the dead-letter stream.
    #[arg(long, value_name = "N", default_value_t = settings::DEFAULT_MAX_DELIVERIES)]
    max_deliveries: u32,
    /// Longest retry delay a plugin may ask for (ms); longer ones are cut to it.
    #[arg(long, value_name = "MS", default_value_t = settings::DEFAULT_MAX_RETRY_DELAY_MS)]
    max_retry_delay_ms: u64,
    /// Retry delays by delivery count when the plugin's retry gives none, e.g.
    /// 1s,5s,30s,2m (the last repeats) [default: none, back after --min-idle-ms].
    #[arg(long, value_name = "LIST")]
    backoff: Option<String>,
    /// Consume STREAM as N partitions, STREAM:{0} .. STREAM:{N-1} (each read by one
    /// consumer of this process; dead letters in DEAD_LETTER:{p}).
    #[arg(long, value_name = "N")]
    partitions: Option<u32>,
    /// Dead-letter stream [default: STREAM:dlq; on a cluster, {STREAM}:dlq
    /// unless STREAM has a hash tag].
    #[arg(long, value_name = "KEY")]
    dead_letter: Option<String>,
    /// On shutdown, hand pending entries to a live peer and delete the consumers.
    #[arg(long)]
    handover: bool,
    /// Memory cap per plugin instance, MiB: all its linear memories and tables
    /// together (a failed grow traps).
    #[arg(long, value_name = "MIB", default_value_t = settings::DEFAULT_MAX_MEMORY_MB as u64)]
    max_memory_mb: u64,
    /// Longest error text a plugin may return, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = settings::DEFAULT_MAX_RETURN_BYTES)]
    max_return_bytes: usize,
    /// Fuel per call (about one unit per Wasm instruction); meters the plugin,
    /// which costs it ~10-30 % speed [default: not metered].
    #[arg(long, value_name = "UNITS")]
    max_fuel: Option<u64>,
    /// A key (or pattern, `*` matching anything) the plugin's effects and
    /// state calls may touch; repeat for more [default: none].
    #[arg(long, value_name = "PATTERN")]
    grant_key: Vec<String>,
    /// A stream (or pattern) the plugin's effects may append to; repeatable [default: none].
    #[arg(long, value_name = "PATTERN")]
    grant_stream: Vec<String>,
    /// An origin (scheme://host[:port]) the plugin's outbound HTTP may reach;
    /// repeatable [default: none].
    #[arg(long, value_name = "ORIGIN")]
    grant_http: Vec<String>,
    /// Longest one outbound HTTP request may take (ms), never past the call's deadline.
    #[arg(long, value_name = "MS", default_value_t = settings::DEFAULT_HTTP_TIMEOUT_MS)]
    http_timeout_ms: u64,
    /// Largest outbound HTTP response body (bytes).
    #[arg(long, value_name = "BYTES", default_value_t = settings::DEFAULT_HTTP_MAX_RESPONSE_BYTES)]
    http_max_response_bytes: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

impl RunArgs {
    /// The command these flags ask for; a setting out of range is an error
    /// naming its flag (`invalid --count: …`).
    pub(super) fn command(self) -> Result<Command, String> {
        if let Some(dir) = self.plugins {
            return Ok(Command::Serve(FolderConfig {
                redis_url: self.redis.url,
                metrics: self.metrics,
                host_file: self.config.unwrap_or_else(|| dir.join("host.toml")),
                dir,
            }));
        }
        let ms = Duration::from_millis;
        let (stream, group, ownership, consumers) = match self.assignments {
            Some(key) => {
                let service = match self.service.or_else(|| settings::service_of(&key).map(str::to_string)) {
                    Some(service) => service,
                    None => {
                        return Err(format!(
                            "--assignments {key:?} does not end in -input: name the service with --service"
                        ));
                    }
                };
                let ownership = settings::Ownership {
                    lease_ttl: ms(self.lease_ttl_ms),
                    heartbeat: ms(self.heartbeat_ms),
                    max_owned: self.max_owned,
                    parallel: self.parallel.unwrap_or(settings::Ownership::default().parallel),
                };
                (key, service, Some(ownership), vec![self.consumer.unwrap_or_else(settings::worker_id)])
            }
            None => {
                let stream = self.stream.expect("clap requires --stream with --plugin");
                let group = self.group.expect("clap requires --group with --plugin");
                (stream, group, None, consumer_names(self.consumer, self.consumers))
            }
        };
        let settings = GroupSettings {
            consumers,
            ownership,
            count: self.count,
            block: ms(self.block_ms),
            start_id: self.start_id,
            call_deadline: ms(self.call_deadline_ms),
            min_idle: ms(self.min_idle_ms),
            reap_interval: ms(self.reap_interval_ms),
            max_deliveries: self.max_deliveries,
            max_retry_delay: ms(self.max_retry_delay_ms),
            backoff: match &self.backoff {
                Some(list) => {
                    settings::backoff::parse_list(list).map_err(|problem| format!("invalid --backoff: {problem}"))?
                }
                None => Vec::new(),
            },
            dead_letter: self.dead_letter.unwrap_or_else(|| settings::dead_letter_key(&stream)),
            handover: self.handover,
            partitions: self.partitions,
            limits: Limits {
                max_memory_bytes: settings::mib(self.max_memory_mb),
                max_return_bytes: self.max_return_bytes,
                max_fuel: self.max_fuel,
                http_timeout: ms(self.http_timeout_ms),
                http_max_response_bytes: self.http_max_response_bytes,
                effects_slot: None,
                max_call: self.max_call_ms.map(ms),
                grants: std::sync::Arc::new(settings::Grants {
                    keys: self.grant_key,
                    streams: self.grant_stream,
                    http: self.grant_http,
                    ..Default::default()
                }),
            },
            ..GroupSettings::new(&stream, &group, Vec::new())
        };
        settings.validate().map_err(|invalid| invalid.for_flag())?;
        Ok(Command::Run(RunConfig {
            redis_url: self.redis.url(),
            plugin: self.plugin.expect("clap requires --plugin or --plugins"),
            metrics: self.metrics,
            settings,
        }))
    }
}

/// `--consumer NAME` → [NAME]; otherwise HOSTNAME-PID-XXXX-1..N: unique per
/// process, so two processes on one machine never share a name (a process
/// that wants its own pending entries back after a restart names its
/// consumer; one that restarts under a new name leaves them to the reapers).
fn consumer_names(single: Option<String>, count: Option<u32>) -> Vec<String> {
    match single {
        Some(name) => vec![name],
        None => settings::numbered(&settings::process_name(), count.unwrap_or(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::try_parse;

    #[test]
    fn run_flags_become_a_config() {
        let Command::Run(c) = try_parse([
            "host",
            "run",
            "--plugin",
            "p.wasm",
            "--stream",
            "s",
            "--group",
            "g",
            "--consumer",
            "c",
            "--count",
            "10",
            "--redis",
            "redis://x:1",
        ])
        .unwrap() else {
            panic!("expected run")
        };
        let s = &c.settings;
        assert_eq!((&s.consumers, s.count, c.redis_url.as_str()), (&vec!["c".to_string()], 10, "redis://x:1"));
        assert_eq!((s.dead_letter.as_str(), s.limits.max_memory_bytes), ("s:dlq", 256 << 20));
    }

    #[test]
    fn consumers_are_numbered() {
        let names = consumer_names(None, Some(3));
        assert_eq!(names.len(), 3);
        assert!(names[2].ends_with("-3"));
    }

    #[test]
    fn bad_flags_are_rejected() {
        let run = ["host", "run", "--plugin", "p", "--stream", "s", "--group", "g"];
        let error = |extra: &[&str]| try_parse(run.iter().chain(extra)).unwrap_err().to_string();
        assert!(error(&["--count", "0"]).contains("invalid --count: 0 is outside 1..=100000"));
        assert!(error(&["--start-id", "abc"]).contains("invalid --start-id: \"abc\" is not a stream id"));
        assert!(error(&["--consumers", "1025"]).contains("invalid --consumers: more than 1024 is outside 1..=1024"));
        assert!(error(&["--max-fuel", "0"]).contains("invalid --max-fuel"));
        assert!(try_parse(run.iter().copied().chain(["--consumer", "a", "--consumers", "2"])).is_err());
        // Folder mode takes per-plugin settings from sidecars only.
        assert!(try_parse(["host", "run", "--plugins", "dir", "--max-fuel", "5"]).is_err());
        assert!(try_parse(["host", "run", "--plugins", "dir", "--min-idle-ms", "50"]).is_err());
        assert!(try_parse(["host", "run", "--plugins", "dir", "--metrics", "127.0.0.1:9464"]).is_ok());
    }
}
