//! Validated settings for each command. Built by `cli/` (or by tests
//! directly); nothing here knows about flags. The settings of a group's
//! consumers, shared with folder mode's files, are in `settings.rs`.

use crate::settings::GroupSettings;
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
    /// `host assign`: add an assignment (stream ownership mode).
    Assign(OwnershipConfig),
    /// `host owners`: who owns which data stream.
    Owners(OwnershipConfig),
    /// `host test`: a plugin's fixture cases, offline.
    Test(TestConfig),
    /// `host events`: the failure events stream.
    Events(EventsConfig),
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
    /// The analytics workload (paid orders; two counters and an emit per entry).
    pub effects: bool,
    /// `Some(n)`: the entries spread over n partitions of the stream.
    pub partitions: Option<u32>,
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
    /// The `notifications` group's plugin (`None`: `notifier.wasm` of the demo's plugins).
    pub notifications_plugin: Option<PathBuf>,
    /// The `analytics` group's plugin (`None`: `python-analytics.wasm` of the demo's plugins).
    pub analytics_plugin: Option<PathBuf>,
    /// Where the demo's plugins are (`None`: `plugins/dist` if it has them,
    /// else the ones built into this binary, else an error saying what to do).
    pub plugins_dir: Option<PathBuf>,
    /// Sample orders produced at start.
    pub seed: u32,
    /// `Some(n)`: the stream is split into n partitions.
    pub partitions: Option<u32>,
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
    /// `Some(n)`: `stream` and `dead_letter` are base names of n partitions.
    pub partitions: Option<u32>,
    /// `dlq list`: one JSON object per dead letter instead of text.
    pub json: bool,
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
    /// `Some(n)`: `stream` is the base name of n partitions (`host info`).
    pub partitions: Option<u32>,
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
    /// Run the entries through this plugin (nothing written to Redis).
    pub through: Option<PathBuf>,
    /// …and through this one too, reporting where the two disagree.
    pub against: Option<PathBuf>,
    /// The stream's dead letters instead of its entries: the dead-letter
    /// stream as configured (on a cluster, resolved as `host run` does).
    pub dlq: Option<String>,
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
    /// The origin stream (on a cluster its slot decides the default dead-letter key).
    pub stream: String,
    /// Dead-letter stream key.
    pub dead_letter: String,
    /// Dead-letter ids to requeue; empty means all.
    pub ids: Vec<String>,
    /// `Some(n)`: `dead_letter` is the base name of n partitions' dead letters.
    pub partitions: Option<u32>,
    /// At most this many requeues a second.
    pub rate: Option<f64>,
    /// Requeue only what this plugin version now accepts.
    pub through: Option<PathBuf>,
}

/// Settings of `host run`: where to connect, which plugin, and the settings
/// of its group's consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// The plugin component to load.
    pub plugin: PathBuf,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// Stream, group, consumers, timing and limits.
    pub settings: GroupSettings,
}

impl RunConfig {
    /// A configuration with the CLI's defaults, for one consumer named `consumer`.
    pub fn new(redis_url: &str, plugin: PathBuf, stream: &str, group: &str, consumer: &str) -> Self {
        RunConfig {
            redis_url: redis_url.to_string(),
            plugin,
            metrics: None,
            settings: GroupSettings::new(stream, group, vec![consumer.to_string()]),
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
    /// `Some((n, field))`: append to partition `partition_of(value of field, n)`
    /// of `stream` (`STREAM:{p}`).
    pub partition: Option<(u32, Vec<u8>)>,
}

/// Default Redis URL when neither `--redis` nor `REDIS_URL` is given.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Settings of `host assign` and `host owners` (stream ownership mode).
#[derive(Debug, Clone)]
pub struct OwnershipConfig {
    /// Redis URL.
    pub redis_url: String,
    /// The assignment stream (`<service>-input`).
    pub assignments: String,
    /// The service: the group on the assignment stream and on each data stream.
    pub service: String,
    /// `assign`: the data stream to assign and its `Info` (a JSON object, as text).
    pub assign: Option<(String, String)>,
    /// `owners`: one JSON object per line instead of a table.
    pub json: bool,
}

/// Settings of `host test`.
#[derive(Debug, Clone)]
pub struct TestConfig {
    /// The plugin to test.
    pub plugin: PathBuf,
    /// Fixture files.
    pub fixtures: Vec<PathBuf>,
    /// One JSON object per case, then a summary object.
    pub json: bool,
    /// `Some((out, from))`: write fixture file `out` made from JSON lines read
    /// from `from` (stdin when none) instead of testing.
    pub record: Option<(PathBuf, Option<PathBuf>)>,
}

/// Settings of `host events`.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Redis URL, the events stream, output format.
    pub target: StreamConfig,
    /// The newest this many events first.
    pub count: usize,
    /// Then print events as they come, until Ctrl-C.
    pub follow: bool,
}
