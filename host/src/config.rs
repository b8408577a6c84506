//! Validated settings for each command. Built by `cli.rs` (or by tests
//! directly); nothing here knows about flags.

use std::path::PathBuf;
use std::time::Duration;

/// What the binary was asked to do.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "built once per process; boxing buys nothing")]
pub enum Command {
    /// Consume a stream through a plugin.
    Run(RunConfig),
    /// Run every plugin of a folder.
    Serve(FolderConfig),
    /// Validate and describe a plugin file.
    Check(PathBuf),
    /// Scaffold a plugin project.
    New(NewConfig),
    /// Add one entry to a stream.
    Produce(ProduceConfig),
    /// Show a group's pending entries.
    Pending(InspectConfig),
    /// List a stream's dead letters.
    DlqList(InspectConfig),
    /// Describe a stream, its groups and consumers.
    Info(StreamConfig),
    /// Print new entries as they arrive.
    Tail(StreamConfig),
    /// Print a range of entries.
    Replay(ReplayConfig),
    /// Trim a stream.
    Trim(TrimConfig),
    /// Move dead letters back onto their origin stream.
    DlqRequeue(RequeueConfig),
    /// The streaming demo with its web dashboard.
    Demo(DemoConfig),
    /// Throughput and latency of the consumer machinery.
    Bench(BenchConfig),
}

/// Settings of `host bench`.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Redis URL; `None`: `probe_url` if it answers, else a redis-server child.
    pub redis_url: Option<String>,
    /// Where to look for a running Redis when none is given.
    pub probe_url: String,
    /// The plugin; `None`: the built-in native no-op handler.
    pub plugin: Option<PathBuf>,
    /// Run the minimal hand-written loop instead of the host (reference).
    pub minimal_loop: bool,
    /// Entries to produce and consume.
    pub entries: u64,
    /// Consumers (tasks, connections, instances).
    pub consumers: u32,
    /// COUNT per read.
    pub count: usize,
    /// One XACK per entry instead of one per batch.
    pub ack_each: bool,
    /// When the entries are produced.
    pub production: Production,
}

/// When `host bench` produces its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Production {
    /// All of them first, then the consumers drain the backlog.
    Backlog,
    /// At this many entries per second alongside the consumers.
    Paced(u64),
    /// As fast as pipelining allows, alongside the consumers: the maximum
    /// rate of producing and consuming together.
    Alongside,
}

/// Settings of `host demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Redis URL; `None`: `probe_url` if it answers, else a redis-server child.
    pub redis_url: Option<String>,
    /// Where to look for a running Redis when none is given (the default URL).
    pub probe_url: String,
    /// Stream key.
    pub stream: String,
    /// Delete the stream (and its dead letters) at start.
    pub reset: bool,
    /// `XADD … MAXLEN ~` cap of produced entries.
    pub maxlen: u64,
    /// Where the dashboard (and `/metrics`) listens.
    pub listen: std::net::SocketAddr,
    /// Where to write the dashboard's per-run API token (0600) for scripts.
    pub token_file: Option<PathBuf>,
    /// Idle time after which pending entries may be claimed (manual claim and reaper).
    pub claim_idle: Duration,
    /// How often each consumer's reaper claims idle entries by itself.
    pub reap_interval: Duration,
    /// The `notifications` group's plugin.
    pub notifications_plugin: PathBuf,
    /// The `analytics` group's plugin.
    pub analytics_plugin: PathBuf,
    /// Sample orders produced at start.
    pub seed: u32,
}

/// Settings of `host pending` and `host dlq list`.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Origin stream key.
    pub stream: String,
    /// Consumer group (for `pending`).
    pub group: String,
    /// Dead-letter stream key (for `dlq`).
    pub dead_letter: String,
    /// At most this many entries listed.
    pub count: usize,
}

/// Settings of `host info` and `host tail`.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Stream key.
    pub stream: String,
    /// JSON output (one object per line) instead of text.
    pub json: bool,
}

/// Settings of `host replay`.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Redis URL, stream, output format.
    pub target: StreamConfig,
    /// First id (`-`: the oldest).
    pub from: String,
    /// Last id (`+`: the newest).
    pub to: String,
    /// At most this many entries.
    pub count: Option<usize>,
}

pub use crate::streams::Trim;

/// Settings of `host trim`.
#[derive(Debug, Clone)]
pub struct TrimConfig {
    /// Redis URL, stream, output format.
    pub target: StreamConfig,
    /// MAXLEN or MINID.
    pub trim: Trim,
    /// Trim exactly (`=`) instead of efficiently (`~`, whole nodes only).
    pub exact: bool,
}

/// Settings of `host dlq requeue`.
#[derive(Debug, Clone)]
pub struct RequeueConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Dead-letter stream key.
    pub dead_letter: String,
    /// Dead-letter ids to requeue; empty means all.
    pub ids: Vec<String>,
}

/// Settings of `host run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// The plugin component to load.
    pub plugin: PathBuf,
    /// Stream key to consume.
    pub stream: String,
    /// Consumer group name.
    pub group: String,
    /// Consumer names; one task (and one connection) each.
    pub consumers: Vec<String>,
    /// Entries per `XREADGROUP` (COUNT).
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
    /// Dead-letter stream key.
    pub dead_letter: String,
    /// On shutdown, hand pending entries to a live peer and delete the consumers.
    pub handover: bool,
    /// Sandbox limits of each plugin instance.
    pub limits: crate::wasm::limits::Limits,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// How handled entries are acked.
    pub ack: AckMode,
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

impl RunConfig {
    /// A configuration with the CLI's defaults, for one consumer named `consumer`.
    pub fn new(redis_url: &str, plugin: PathBuf, stream: &str, group: &str, consumer: &str) -> Self {
        RunConfig {
            redis_url: redis_url.to_string(),
            plugin,
            stream: stream.to_string(),
            group: group.to_string(),
            consumers: vec![consumer.to_string()],
            count: DEFAULT_COUNT,
            block: Duration::from_millis(DEFAULT_BLOCK_MS),
            start_id: DEFAULT_START_ID.to_string(),
            call_deadline: Duration::from_millis(DEFAULT_CALL_DEADLINE_MS),
            min_idle: Duration::from_millis(DEFAULT_MIN_IDLE_MS),
            reap_interval: Duration::from_millis(DEFAULT_REAP_INTERVAL_MS),
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            max_retry_delay: Duration::from_millis(DEFAULT_MAX_RETRY_DELAY_MS),
            dead_letter: dead_letter_key(stream),
            handover: false,
            limits: crate::wasm::limits::Limits::default(),
            metrics: None,
            ack: AckMode::Batched,
        }
    }
}

/// Settings of `host run --plugins DIR`.
#[derive(Debug, Clone)]
pub struct FolderConfig {
    /// Redis URL from the flag or `REDIS_URL`; else `host.toml`'s, else the default.
    pub redis_url: Option<String>,
    /// The plugin folder.
    pub dir: std::path::PathBuf,
    /// `host.toml` (it need not exist).
    pub host_file: std::path::PathBuf,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
}

/// The languages `host new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust (wit-bindgen, built with Debian's rustc for wasm32-wasip2).
    Rust,
    /// Python (componentize-py).
    Python,
    /// JavaScript (componentize-js).
    Js,
    /// C (clang, wit-bindgen C bindings, the preview1 adapter).
    C,
    /// Zig (ziglang, the C bindings).
    Zig,
}

impl Lang {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
            Lang::Zig => "zig",
        }
    }
}

/// Settings of `host new`.
#[derive(Debug, Clone)]
pub struct NewConfig {
    /// The plugin's language.
    pub lang: Lang,
    /// The plugin (and project folder) name.
    pub name: String,
    /// Where the project folder is created.
    pub parent: PathBuf,
}

/// Settings of `host produce`.
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Stream key to append to.
    pub stream: String,
    /// Approximate cap on the stream length (`MAXLEN ~`), if any.
    pub maxlen: Option<u64>,
    /// Field/value pairs of the new entry, in order.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Default Redis URL when neither `--redis` nor `REDIS_URL` is given.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
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
