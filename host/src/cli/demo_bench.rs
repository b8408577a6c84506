//! Flags of `host demo` and `host bench`, which run their own deployments
//! with settings of their own.

use crate::config::{self, BenchConfig, DemoConfig, Production};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub(super) struct DemoArgs {
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
    /// Keep the stream, its dead letters and the analytics totals and paid orders
    /// (by default all are deleted at start).
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
    /// Folder with the demo's plugins, notifier.wasm and python-analytics.wasm [default:
    /// plugins/dist if it has them, else the plugins built into this binary
    /// (`make install`), written to ~/.local/share/redis-wasm-host/demo-plugins/HASH
    /// (or into --plugins-dir when they are missing there)].
    #[arg(long, value_name = "DIR")]
    plugins_dir: Option<PathBuf>,
    /// Plugin of the `notifications` group [default: notifier.wasm of the demo's plugins].
    #[arg(long, value_name = "FILE")]
    notifications_plugin: Option<PathBuf>,
    /// Plugin of the `analytics` group [default: python-analytics.wasm of the demo's plugins].
    #[arg(long, value_name = "FILE")]
    analytics_plugin: Option<PathBuf>,
    /// Sample orders produced at start (one malformed, one with payment pending).
    #[arg(long, value_name = "N", default_value_t = 20)]
    seed: u32,
    /// Split the stream into N partitions, STREAM:{0} .. (orders routed by
    /// customer); both groups read every partition, one consumer each.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    partitions: Option<u32>,
}

impl DemoArgs {
    pub(super) fn config(self) -> DemoConfig {
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
            plugins_dir: self.plugins_dir,
            seed: self.seed,
            partitions: self.partitions,
        }
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("handler_choice").required(true).args(["plugin", "handler"])))]
pub(super) struct BenchArgs {
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
    #[arg(long, value_name = "N", default_value_t = crate::settings::DEFAULT_COUNT as u64,
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
    /// The analytics workload: paid orders; per entry two counters and one
    /// emitted entry, committed with the ack. A plugin (plugins/dist/analytics.wasm)
    /// is granted STREAM:totals and STREAM:paid; `--handler loop` makes the same
    /// writes as plain commands pipelined with each batch's XACK. Every entry
    /// must be counted once at the end.
    #[arg(long, conflicts_with = "partitions")]
    effects: bool,
    /// Spread the entries over N partitions (STREAM:{0} ..), routed by order id,
    /// each read by one consumer: with --redis redis+cluster://…, over the
    /// cluster's masters (`make bench-cluster`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::keys::MAX_PARTITIONS as i64))]
    partitions: Option<u32>,
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
    pub(super) fn config(self) -> BenchConfig {
        BenchConfig {
            redis_url: self.redis,
            probe_url: config::DEFAULT_REDIS_URL.to_string(),
            plugin: self.plugin,
            minimal_loop: matches!(self.handler, Some(HandlerArg::Loop)),
            entries: self.entries,
            consumers: self.consumers,
            count: if self.guide_shape { 10 } else { self.count as usize },
            ack_each: self.guide_shape,
            effects: self.effects,
            partitions: self.partitions,
            production: match (self.rate, self.alongside) {
                (Some(rate), _) => Production::Paced(rate),
                (None, true) => Production::Alongside,
                (None, false) => Production::Backlog,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::try_parse;
    use crate::config::{self, Command};
    use std::time::Duration;

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
