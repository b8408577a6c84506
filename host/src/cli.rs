//! Command-line flags (clap). The only module that knows about clap: it turns
//! flags into a validated [`Command`].

use crate::config::{
    self, BenchConfig, Command, DemoConfig, FolderConfig, InspectConfig, Lang, NewConfig, ProduceConfig, Production,
    ReplayConfig, RequeueConfig, RunConfig, StreamConfig, Trim, TrimConfig,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "host", version, about = "Run WebAssembly consumer plugins on Redis Streams")]
struct Cli {
    #[command(subcommand)]
    command: Sub,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormatArg,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process; boxing buys nothing")]
enum Sub {
    /// Consume a stream through a consumer group, calling the plugin's `handle` per entry.
    Run(RunArgs),
    /// The redis.io streaming demo with Wasm handlers and a live web dashboard.
    Demo(DemoArgs),
    /// Measure throughput and produce-to-ack latency on a fresh stream; prints one JSON line.
    Bench(BenchArgs),
    /// Check that a plugin would run (a component of the plugin world) and describe it.
    Check {
        /// The plugin component (.wasm).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Describe a stream, its groups and their consumers (XINFO).
    Info(StreamArgs),
    /// Print entries as they are added, like `tail -f` (touches no group).
    Tail(StreamArgs),
    /// Print a range of entries (XRANGE).
    Replay(ReplayArgs),
    /// Trim a stream (XTRIM MAXLEN or MINID).
    Trim(TrimArgs),
    /// Create a plugin project (build it with `make`): the "cargo new" of plugins.
    New {
        /// The plugin's language.
        #[arg(long, value_enum)]
        lang: LangArg,
        /// Folder in which the project folder NAME is created.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Plugin name (lowercase letters, digits, '-'); also the project folder.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Append one entry to a stream (XADD), printing its id.
    Produce(ProduceArgs),
    /// Show a group's pending entries: per consumer, then each with idle time and deliveries.
    Pending(PendingArgs),
    /// Inspect or requeue dead letters.
    #[command(subcommand)]
    Dlq(DlqSub),
}

/// Values of `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormatArg {
    Text,
    Json,
}

/// Languages of `host new --lang`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LangArg {
    Rust,
    Python,
    Js,
    C,
    Zig,
}

#[derive(Subcommand, Debug)]
enum DlqSub {
    /// List dead letters with their metadata and original fields.
    List(DlqListArgs),
    /// Move dead letters back onto their origin stream (atomically off the dead-letter stream).
    Requeue(DlqRequeueArgs),
}

#[derive(Args, Debug)]
struct PendingArgs {
    /// Stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// Consumer group.
    #[arg(long, value_name = "NAME")]
    group: String,
    /// List at most N entries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    count: usize,
    #[command(flatten)]
    redis: RedisArgs,
}

#[derive(Args, Debug)]
struct StreamArgs {
    /// Stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    redis: RedisArgs,
}

impl StreamArgs {
    fn config(self) -> StreamConfig {
        StreamConfig { redis_url: self.redis.url(), stream: self.stream, json: self.json }
    }
}

#[derive(Args, Debug)]
struct ReplayArgs {
    #[command(flatten)]
    target: StreamArgs,
    /// First id (inclusive; `(ID` exclusive) [default: the oldest].
    #[arg(long, value_name = "ID", default_value = "-")]
    from: String,
    /// Last id (inclusive) [default: the newest].
    #[arg(long, value_name = "ID", default_value = "+")]
    to: String,
    /// At most N entries.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["maxlen", "minid"])))]
struct TrimArgs {
    #[command(flatten)]
    target: StreamArgs,
    /// Keep about N newest entries (exactly N with --exact).
    #[arg(long, value_name = "N")]
    maxlen: Option<u64>,
    /// Drop entries with ids below ID.
    #[arg(long, value_name = "ID")]
    minid: Option<String>,
    /// Trim exactly (`=`) instead of whole nodes only (`~`, cheaper).
    #[arg(long)]
    exact: bool,
}

#[derive(Args, Debug)]
struct DlqListArgs {
    /// Origin stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// Dead-letter stream [default: STREAM:dlq].
    #[arg(long, value_name = "KEY")]
    dead_letter: Option<String>,
    /// List at most N dead letters.
    #[arg(long, value_name = "N", default_value_t = 100)]
    count: usize,
    #[command(flatten)]
    redis: RedisArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
struct DlqRequeueArgs {
    /// Origin stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// Dead-letter stream [default: STREAM:dlq].
    #[arg(long, value_name = "KEY")]
    dead_letter: Option<String>,
    /// Dead-letter entry ids to requeue.
    #[arg(long, value_name = "ID", num_args = 1..)]
    id: Vec<String>,
    /// Requeue every dead letter.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    redis: RedisArgs,
}

#[derive(Args, Debug)]
struct RedisArgs {
    /// Redis server URL [default: redis://127.0.0.1:6379, or host.toml's `redis` in folder mode].
    #[arg(long = "redis", env = "REDIS_URL", value_name = "URL")]
    url: Option<String>,
}

impl RedisArgs {
    fn url(self) -> String {
        self.url.unwrap_or_else(|| config::DEFAULT_REDIS_URL.to_string())
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["plugin", "plugins"])))]
struct RunArgs {
    /// Plugin component (.wasm) exporting `handle`; watched and hot-reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    plugin: Option<PathBuf>,
    /// Folder of plugins: each NAME.wasm runs with the settings of NAME.toml (or
    /// [plugins.NAME] in host.toml); files are watched and hot-reloaded.
    /// Per-plugin settings come from those files, so their flags conflict with it.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "stream", "group", "consumer", "consumers", "count", "block_ms", "start_id", "call_deadline_ms",
        "min_idle_ms", "reap_interval_ms", "max_deliveries", "max_retry_delay_ms", "dead_letter", "handover",
        "max_memory_mb",
        "max_return_bytes", "max_fuel",
    ])]
    plugins: Option<PathBuf>,
    /// Host settings for folder mode [default: DIR/host.toml].
    #[arg(long, value_name = "FILE", requires = "plugins")]
    config: Option<PathBuf>,
    /// Stream key to consume.
    #[arg(long, value_name = "KEY", required_unless_present = "plugins")]
    stream: Option<String>,
    /// Consumer group (created with MKSTREAM if missing).
    #[arg(long, value_name = "NAME", required_unless_present = "plugins")]
    group: Option<String>,
    /// Name of the single consumer [default: HOSTNAME-PID-XXXX-1, unique per process].
    #[arg(long, value_name = "NAME", conflicts_with = "consumers")]
    consumer: Option<String>,
    /// Number of consumers in this process, named HOSTNAME-PID-XXXX-1..N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    consumers: Option<u32>,
    #[command(flatten)]
    redis: RedisArgs,
    /// Entries per XREADGROUP.
    #[arg(long, value_name = "N", default_value_t = config::DEFAULT_COUNT as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    count: u64,
    /// Milliseconds one XREADGROUP blocks waiting for entries.
    #[arg(long, value_name = "MS", default_value_t = config::DEFAULT_BLOCK_MS,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    block_ms: u64,
    /// Where a newly created group starts: 0 = the whole stream, $ = only new entries.
    #[arg(long, value_name = "ID", default_value = config::DEFAULT_START_ID, value_parser = parse_start_id)]
    start_id: String,
    /// Wall-clock limit of one `handle` call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = config::DEFAULT_CALL_DEADLINE_MS,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    call_deadline_ms: u64,
    /// Pending entries idle this long (ms) are reclaimed by the group's reapers.
    #[arg(long, value_name = "MS", default_value_t = config::DEFAULT_MIN_IDLE_MS,
          value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    min_idle_ms: u64,
    /// How often each consumer reaps idle entries (ms).
    #[arg(long, value_name = "MS", default_value_t = config::DEFAULT_REAP_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    reap_interval_ms: u64,
    /// Deliveries allowed before an entry goes to the dead-letter stream.
    #[arg(long, value_name = "N", default_value_t = config::DEFAULT_MAX_DELIVERIES,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_deliveries: u32,
    /// Longest retry delay a plugin may ask for (ms); longer ones are cut to it.
    #[arg(long, value_name = "MS", default_value_t = config::DEFAULT_MAX_RETRY_DELAY_MS,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    max_retry_delay_ms: u64,
    /// Dead-letter stream [default: STREAM:dlq].
    #[arg(long, value_name = "KEY")]
    dead_letter: Option<String>,
    /// On shutdown, hand pending entries to a live peer and delete the consumers.
    #[arg(long)]
    handover: bool,
    /// Memory cap per plugin instance, MiB: all its linear memories and tables
    /// together (a failed grow traps).
    #[arg(long, value_name = "MIB", default_value_t = crate::wasm::limits::DEFAULT_MAX_MEMORY_MB as u64,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_memory_mb: u64,
    /// Longest error text a plugin may return, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::wasm::limits::DEFAULT_MAX_RETURN_BYTES)]
    max_return_bytes: usize,
    /// Fuel per call (about one unit per Wasm instruction); meters the plugin,
    /// which costs it ~10-30 % speed [default: not metered].
    #[arg(long, value_name = "UNITS", value_parser = clap::value_parser!(u64).range(1..))]
    max_fuel: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Redis server URL [default: 127.0.0.1:6379 if a Redis answers there, else
    /// a redis-server started for the demo on a free port and stopped on exit].
    #[arg(long = "redis", env = "REDIS_URL", value_name = "URL")]
    redis: Option<String>,
    /// Redis host (instead of --redis).
    #[arg(long, value_name = "HOST", conflicts_with = "redis")]
    redis_host: Option<String>,
    /// Redis port (instead of --redis) [default with --redis-host: 6379].
    #[arg(long, value_name = "PORT", conflicts_with = "redis")]
    redis_port: Option<u16>,
    /// Where to look for a running Redis when none is given (tests point it at a closed port).
    #[arg(long, value_name = "URL", default_value = config::DEFAULT_REDIS_URL, hide = true)]
    probe_redis: String,
    /// Stream key.
    #[arg(long, value_name = "KEY", default_value = "demo:events:orders")]
    stream_key: String,
    /// Keep the stream and its dead letters (by default both are deleted at start).
    #[arg(long)]
    no_reset: bool,
    /// Cap produced entries at about N (XADD MAXLEN ~ N).
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    maxlen: u64,
    /// Dashboard port (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 8788)]
    port: u16,
    /// Dashboard address to listen on.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Write the dashboard's per-run API token to FILE (mode 0600, removed on
    /// exit): scripts send it as the X-Host-Token header of POST and DELETE calls.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Pending entries idle this long (ms) may be claimed, by the claim button or the reapers.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    claim_idle_ms: u64,
    /// How often each consumer's reaper claims idle entries by itself (ms).
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    reap_interval_ms: u64,
    /// Plugin of the `notifications` group.
    #[arg(long, value_name = "FILE", default_value = "plugins/dist/orders.wasm")]
    notifications_plugin: PathBuf,
    /// Plugin of the `analytics` group.
    #[arg(long, value_name = "FILE", default_value = "plugins/dist/c-orders.wasm")]
    analytics_plugin: PathBuf,
    /// Sample orders produced at start (one malformed, one with payment pending).
    #[arg(long, value_name = "N", default_value_t = 20)]
    seed: u32,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("handler_choice").required(true).args(["plugin", "handler"])))]
struct BenchArgs {
    /// Plugin component (.wasm) to call per entry.
    #[arg(long, value_name = "FILE")]
    plugin: Option<PathBuf>,
    /// A built-in handler instead of a plugin: `native` acks every entry
    /// without Wasm; `loop` is a minimal hand-written redis-rs consumer loop
    /// without the host's machinery (the reference to compare with).
    #[arg(long, value_enum)]
    handler: Option<HandlerArg>,
    /// Entries to produce and consume.
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    entries: u64,
    /// Consumers in the group (each its own task, connection and instance).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    consumers: u32,
    /// Entries per XREADGROUP.
    #[arg(long, value_name = "N", default_value_t = config::DEFAULT_COUNT as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000), conflicts_with = "guide_shape")]
    count: u64,
    /// The loop shape of the redis.io guides: COUNT 10 and one XACK per entry.
    #[arg(long)]
    guide_shape: bool,
    /// Produce at R entries/s alongside the consumers (latency at a fixed load)
    /// instead of consuming a backlog produced first.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "alongside")]
    rate: Option<u64>,
    /// Produce as fast as pipelining allows alongside the consumers: the
    /// maximum rate of producing and consuming together, with Redis serving both.
    #[arg(long)]
    alongside: bool,
    /// Redis server URL [default: 127.0.0.1:6379 if a Redis answers there, else a redis-server child].
    #[arg(long = "redis", env = "REDIS_URL", value_name = "URL")]
    redis: Option<String>,
}

/// Values of `host bench --handler`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum HandlerArg {
    Native,
    Loop,
}

impl BenchArgs {
    fn config(self) -> BenchConfig {
        BenchConfig {
            redis_url: self.redis,
            probe_url: config::DEFAULT_REDIS_URL.to_string(),
            plugin: self.plugin,
            minimal_loop: matches!(self.handler, Some(HandlerArg::Loop)),
            entries: self.entries,
            consumers: self.consumers,
            count: if self.guide_shape { 10 } else { self.count as usize },
            ack_each: self.guide_shape,
            production: match (self.rate, self.alongside) {
                (Some(rate), _) => Production::Paced(rate),
                (None, true) => Production::Alongside,
                (None, false) => Production::Backlog,
            },
        }
    }
}

impl DemoArgs {
    fn config(self) -> DemoConfig {
        let redis_url = match (self.redis_host, self.redis_port) {
            (None, None) => self.redis,
            (host, port) => {
                Some(format!("redis://{}:{}", host.as_deref().unwrap_or("127.0.0.1"), port.unwrap_or(6379)))
            }
        };
        DemoConfig {
            redis_url,
            probe_url: self.probe_redis,
            stream: self.stream_key,
            reset: !self.no_reset,
            maxlen: self.maxlen,
            listen: std::net::SocketAddr::new(self.bind, self.port),
            token_file: self.token_file,
            claim_idle: Duration::from_millis(self.claim_idle_ms),
            reap_interval: Duration::from_millis(self.reap_interval_ms),
            notifications_plugin: self.notifications_plugin,
            analytics_plugin: self.analytics_plugin,
            seed: self.seed,
        }
    }
}

#[derive(Args, Debug)]
struct ProduceArgs {
    /// Stream key to append to.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// Keep the stream at about N entries (XADD MAXLEN ~ N).
    #[arg(long, value_name = "N")]
    maxlen: Option<u64>,
    #[command(flatten)]
    redis: RedisArgs,
    /// Fields of the entry, in order.
    #[arg(value_name = "FIELD=VALUE", required = true, value_parser = parse_field)]
    fields: Vec<(String, String)>,
}

/// Parses the process arguments into the command and the log format; on a
/// bad flag prints clap's message and exits 2.
pub fn parse() -> (Command, crate::logging::LogFormat) {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => crate::logging::LogFormat::Text,
        LogFormatArg::Json => crate::logging::LogFormat::Json,
    };
    (from_cli(cli), format)
}

/// Parses `args` (the first is the program name), for tests.
pub fn try_parse<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map(from_cli)
}

fn from_cli(cli: Cli) -> Command {
    match cli.command {
        Sub::Run(RunArgs { plugins: Some(dir), config, redis, metrics, .. }) => Command::Serve(FolderConfig {
            redis_url: redis.url,
            metrics,
            host_file: config.unwrap_or_else(|| dir.join("host.toml")),
            dir,
        }),
        Sub::Run(a) => Command::Run(RunConfig {
            redis_url: a.redis.url(),
            plugin: a.plugin.expect("clap requires --plugin or --plugins"),
            group: a.group.expect("clap requires --group with --plugin"),
            consumers: consumer_names(a.consumer, a.consumers),
            count: a.count as usize,
            block: Duration::from_millis(a.block_ms),
            start_id: a.start_id,
            call_deadline: Duration::from_millis(a.call_deadline_ms),
            min_idle: Duration::from_millis(a.min_idle_ms),
            reap_interval: Duration::from_millis(a.reap_interval_ms),
            max_deliveries: a.max_deliveries,
            max_retry_delay: Duration::from_millis(a.max_retry_delay_ms),
            dead_letter: a.dead_letter.unwrap_or_else(|| config::dead_letter_key(a.stream.as_deref().unwrap_or(""))),
            handover: a.handover,
            limits: crate::wasm::limits::Limits {
                max_memory_bytes: (a.max_memory_mb as usize) << 20,
                max_return_bytes: a.max_return_bytes,
                max_fuel: a.max_fuel,
                ..Default::default()
            },
            metrics: a.metrics,
            ack: crate::config::AckMode::Batched,
            stream: a.stream.expect("clap requires --stream with --plugin"),
        }),
        Sub::Demo(a) => Command::Demo(a.config()),
        Sub::Bench(a) => Command::Bench(a.config()),
        Sub::Check { file } => Command::Check(file),
        Sub::Info(a) => Command::Info(a.config()),
        Sub::Tail(a) => Command::Tail(a.config()),
        Sub::Replay(a) => {
            Command::Replay(ReplayConfig { target: a.target.config(), from: a.from, to: a.to, count: a.count })
        }
        Sub::Trim(a) => Command::Trim(TrimConfig {
            target: a.target.config(),
            trim: match (a.maxlen, a.minid) {
                (Some(n), _) => Trim::MaxLen(n),
                (None, id) => Trim::MinId(id.expect("clap requires --maxlen or --minid")),
            },
            exact: a.exact,
        }),
        Sub::New { lang, dir, name } => Command::New(NewConfig {
            lang: match lang {
                LangArg::Rust => Lang::Rust,
                LangArg::Python => Lang::Python,
                LangArg::Js => Lang::Js,
                LangArg::C => Lang::C,
                LangArg::Zig => Lang::Zig,
            },
            name,
            parent: dir,
        }),
        Sub::Produce(a) => Command::Produce(ProduceConfig {
            redis_url: a.redis.url(),
            stream: a.stream,
            maxlen: a.maxlen,
            fields: a.fields.into_iter().map(|(f, v)| (f.into_bytes(), v.into_bytes())).collect(),
        }),
        Sub::Pending(a) => Command::Pending(InspectConfig {
            redis_url: a.redis.url(),
            dead_letter: config::dead_letter_key(&a.stream),
            stream: a.stream,
            group: a.group,
            count: a.count,
        }),
        Sub::Dlq(DlqSub::List(a)) => Command::DlqList(InspectConfig {
            redis_url: a.redis.url(),
            dead_letter: a.dead_letter.unwrap_or_else(|| config::dead_letter_key(&a.stream)),
            stream: a.stream,
            group: String::new(),
            count: a.count,
        }),
        Sub::Dlq(DlqSub::Requeue(a)) => Command::DlqRequeue(RequeueConfig {
            redis_url: a.redis.url(),
            dead_letter: a.dead_letter.unwrap_or_else(|| config::dead_letter_key(&a.stream)),
            ids: if a.all { Vec::new() } else { a.id },
        }),
    }
}

/// `--consumer NAME` → [NAME]; otherwise HOSTNAME-PID-XXXX-1..N: unique per
/// process, so two processes on one machine never share a name (a process
/// that wants its own pending entries back after a restart names its
/// consumer; one that restarts under a new name leaves them to the reapers).
fn consumer_names(single: Option<String>, count: Option<u32>) -> Vec<String> {
    if let Some(name) = single {
        return vec![name];
    }
    let host = config::process_name();
    (1..=count.unwrap_or(1)).map(|i| format!("{host}-{i}")).collect()
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((field, value)) if !field.is_empty() => Ok((field.to_string(), value.to_string())),
        _ => Err(format!("expected FIELD=VALUE, got {s:?}")),
    }
}

fn parse_start_id(s: &str) -> Result<String, String> {
    let valid_id = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok()
    };
    if s == "$" || valid_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a stream id: use 0, $ or MS-SEQ (e.g. 1700000000000-0)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!((c.consumers, c.count, c.redis_url.as_str()), (vec!["c".to_string()], 10, "redis://x:1"));
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
        assert!(try_parse(run.iter().copied().chain(["--count", "0"])).is_err());
        assert!(try_parse(run.iter().copied().chain(["--start-id", "abc"])).is_err());
        assert!(try_parse(run.iter().copied().chain(["--consumer", "a", "--consumers", "2"])).is_err());
        assert!(try_parse(["host", "produce", "--stream", "s", "novalue"]).is_err());
        // Folder mode takes per-plugin settings from sidecars only.
        assert!(try_parse(["host", "run", "--plugins", "dir", "--max-fuel", "5"]).is_err());
        assert!(try_parse(["host", "run", "--plugins", "dir", "--min-idle-ms", "50"]).is_err());
        assert!(try_parse(["host", "run", "--plugins", "dir", "--metrics", "127.0.0.1:9464"]).is_ok());
    }

    #[test]
    fn demo_flags_have_the_guide_defaults() {
        let Command::Demo(d) = try_parse(["host", "demo"]).unwrap() else { panic!("expected demo") };
        assert_eq!(d.stream, "demo:events:orders");
        assert_eq!((d.reset, d.maxlen, d.listen.port()), (true, 2000, 8788));
        assert_eq!(d.claim_idle, Duration::from_millis(5000));
        assert_eq!(d.probe_url, config::DEFAULT_REDIS_URL);
        let Command::Demo(d) =
            try_parse(["host", "demo", "--redis-host", "h", "--no-reset", "--port", "9000"]).unwrap()
        else {
            panic!("expected demo")
        };
        assert_eq!((d.redis_url.as_deref(), d.reset, d.listen.port()), (Some("redis://h:6379"), false, 9000));
        assert!(try_parse(["host", "demo", "--redis", "redis://a:1", "--redis-port", "2"]).is_err());
        assert!(try_parse(["host", "demo", "--maxlen", "0"]).is_err());
    }
}
