//! `host demo`: the redis.io streaming demo with Wasm handlers. One stream
//! (`demo:events:orders`), group `notifications` (consumers `worker-a`,
//! `worker-b`) and group `analytics` (`worker-c`), each group's handler a
//! plugin whose file is watched and hot-reloaded by a [`Supervisor`]. This
//! module starts and stops the demo; [`actions`] holds every action its
//! dashboard offers, [`orders`] the sample orders, [`plugins`] where its
//! plugins come from, [`view`] what the dashboard shows ([`totals`]: the
//! analytics panel, the plugin's totals checked; [`sink`]: the webhook the
//! notifier posts to, and its panel), [`sessions`] the sessions panel
//! (stream ownership mode), and [`dashboard`] only maps HTTP onto these
//! methods.

pub mod actions;
pub mod dashboard;
pub mod orders;
mod partitions;
pub mod plugins;
pub mod sessions;
pub mod sink;
pub mod totals;
pub mod view;

use crate::config::{DemoConfig, RunConfig};
use crate::streams::{Connection, Redis};
use crate::supervise::deployment::Member;
use crate::supervise::supervisor::{Flags, Removed, Supervised, Supervisor};
use crate::supervise::watcher::Watcher;
use crate::wasm::engine::Engine;
use crate::web::guard::{Guard, Token};
use anyhow::Result;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use view::PluginStatus;

/// The demo's groups and their consumers at start.
pub const GROUPS: [(&str, &[&str]); 2] = [("notifications", &["worker-a", "worker-b"]), ("analytics", &["worker-c"])];
/// The group whose plugin (`analytics`) keeps totals with effects.
pub const TOTALS_GROUP: &str = "analytics";

/// The hash the analytics plugin counts into.
pub fn totals_key(stream: &str) -> String {
    format!("{stream}:totals")
}

/// The stream the analytics plugin appends paid orders to.
pub fn paid_key(stream: &str) -> String {
    format!("{stream}:paid")
}

/// What a reset deletes beside `stream` (one of the demo's streams, with
/// dead letters in `dead_letter`): its dead letters and what the plugins
/// wrote (totals, paid orders, the notifier's counts).
fn reset_keys(stream: &str, dead_letter: &str) -> Vec<String> {
    vec![dead_letter.to_string(), totals_key(stream), paid_key(stream), notifier_stats_key(stream)]
}

/// The group whose plugin (`notifier`) posts to the demo's webhook sink.
pub const NOTIFY_GROUP: &str = "notifications";

/// The hash the notifier counts what it sent and skipped into.
pub fn notifier_stats_key(stream: &str) -> String {
    format!("{stream}:notifier")
}

/// The keys the notifier records sent notifications under.
fn notified_keys(stream: &str) -> String {
    format!("{stream}:notified:*")
}

/// What the notifier may reach and do: POST to the dashboard's own sink
/// (with the sink's token, which opens that path only: never the
/// dashboard's), and record what it sent.
fn notifier_grants(stream: &str, dashboard: std::net::SocketAddr, sink_token: &Token) -> crate::settings::Grants {
    let origin = format!("http://{dashboard}");
    let config = [
        ("webhook", format!("{origin}{}", sink::PATH)),
        ("headers", format!("{}: {}", crate::web::guard::TOKEN_HEADER, sink_token.as_str())),
        ("retry_ms", "1000".into()),
        ("retry_max_ms", "4000".into()),
        ("seen_ttl_ms", "3600000".into()),
        ("stats", notifier_stats_key(stream)),
    ];
    crate::settings::Grants {
        http: vec![origin],
        keys: vec![notified_keys(stream), notifier_stats_key(stream)],
        config: config.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Default::default()
    }
}

/// At most this many entries per produce request or listing.
pub const MAX_BATCH: usize = 10_000;
/// Longest blocking read of the demo's consumers: bounds how long a claim
/// request waits for its consumer to come round.
const DEMO_BLOCK: Duration = Duration::from_millis(500);

/// One group: its plugin under supervision (settings and running
/// consumers) and how that plugin fares.
struct Group {
    /// Shared with the supervisor, which reloads it.
    plugin: Arc<Supervised>,
    /// Updated by the supervisor's reload reports.
    status: Arc<Mutex<PluginStatus>>,
}

impl Group {
    fn config(&self) -> &RunConfig {
        self.plugin.config()
    }
}

/// The running demo.
pub struct Demo {
    config: DemoConfig,
    redis: Redis,
    admin: Connection,
    groups: Vec<Group>,
    next_order: AtomicU64,
    /// The webhook the notifier posts to.
    sink: sink::Sink,
    /// The sessions panel (stream ownership mode); none on a cluster.
    sessions: Option<sessions::Sessions>,
}

/// Runs the demo until `shutdown`: Redis (a child when needed), reset, the
/// two groups, sample orders, the dashboard, and hot reload of both plugins.
pub async fn run(mut config: DemoConfig, shutdown: CancellationToken) -> Result<()> {
    // The port first: a taken port must fail before the stream is reset.
    let listener = crate::web::bind(config.listen, "the dashboard (--port)").await?;
    // And the plugins: a missing one must fail before Redis is touched.
    let mut plugin_files = Vec::new();
    for (group, _) in GROUPS {
        let explicit = match group {
            "notifications" => config.notifications_plugin.as_deref(),
            _ => config.analytics_plugin.as_deref(),
        };
        plugin_files.push(plugins::resolve(group, explicit, config.plugins_dir.as_deref())?);
    }
    let token = Token::new()?;
    let sink_token = Token::new()?;
    let (url, local) = crate::streams::local::resolve(config.redis_url.as_deref(), &config.probe_url).await?;
    let cluster = Redis::open(&url)?.is_cluster().await?;
    if let Some(problem) = config.partitions.and_then(|_| crate::keys::partition_base_problem(&config.stream)) {
        anyhow::bail!("invalid --partitions: the stream {problem}");
    }
    if cluster && config.partitions.is_none() && !crate::keys::has_hash_tag(&config.stream) {
        // Its dead letters, the totals and the notifier's counts are written
        // with its acks: on a cluster they must share its slot.
        let tagged = format!("{{{}}}", config.stream);
        tracing::info!(
            "on a Redis Cluster the demo's stream is {tagged} (a hash tag: the keys written with its acks share its slot)"
        );
        config.stream = tagged;
    }
    let token_file = config.token_file.clone();
    let dashboard = listener.local_addr()?;
    let (demo, mut supervisor) =
        Demo::start(config, (&url, cluster), &plugin_files, (dashboard, &sink_token), &shutdown).await?;
    let demo = Arc::new(demo);
    let app = dashboard::router(demo.clone(), &token);
    let bound = crate::web::serve_on(
        listener,
        app,
        |bound| Guard::dashboard(bound, token.clone()).webhook(sink::PATH, sink_token.clone()),
        shutdown.clone(),
    )?;
    let served = async {
        if let Some(path) = &token_file {
            token.write_to(path)?;
        }
        // Watching before the dashboard is announced: a build dropped in right after is not missed.
        let paths: Vec<_> = demo.groups.iter().map(|g| g.config().plugin.clone()).collect();
        let watcher = Watcher::new(&paths)?;
        demo.seed().await?;
        tracing::info!("dashboard on http://{bound}/ (metrics on http://{bound}/metrics)");
        println!("demo: open http://{bound}/ in a browser (Ctrl-C stops the demo)");
        if local.is_some() {
            // Other commands find this Redis only if told (they default to 127.0.0.1:6379).
            println!("demo: for other commands: export REDIS_URL={}", crate::streams::masked::url(&url));
        }
        println!("demo: scripts send `X-Host-Token: {}` with POST and DELETE calls", token.as_str());
        supervisor.serve(watcher, &mut Flags).await;
        anyhow::Ok(())
    }
    .await;
    demo.stop(&mut supervisor).await;
    if let Some(path) = &token_file {
        let _ = std::fs::remove_file(path);
    }
    if let Some(local) = local {
        tracing::info!(pid = local.pid(), "stopping the redis-server started for the demo");
    }
    served
}

impl Demo {
    /// Connects, resets the stream (unless `--no-reset`), loads both plugins
    /// and starts the consumers; returns the demo and the supervisor of its
    /// two plugins (which reports their reloads to the demo).
    async fn start(
        config: DemoConfig,
        (url, cluster): (&str, bool),
        plugin_files: &[std::path::PathBuf],
        (dashboard, sink_token): (std::net::SocketAddr, &Token),
        shutdown: &CancellationToken,
    ) -> Result<(Self, Supervisor)> {
        let redis = Redis::open(url)?;
        let mut admin = redis.connect(Duration::ZERO).await?;
        if config.reset {
            let groups: Vec<&str> = GROUPS.iter().map(|(g, _)| *g).collect();
            for (stream, dead_letter) in streams(&config) {
                let also = reset_keys(&stream, &dead_letter);
                admin.recreate(&stream, &also.iter().map(String::as_str).collect::<Vec<_>>(), &groups).await?;
                tracing::info!(%stream, "reset: deleted {stream} and {} to start clean (--no-reset keeps them)",
                    also.join(", "));
            }
            if config.partitions.is_some() {
                // The notifier's counts of every partition (one server only).
                admin.recreate(&notifier_stats_key(&config.stream), &[], &[]).await?;
            }
            if !cluster {
                let mut gone = 0;
                for pattern in sessions::keys_patterns(&config.stream) {
                    gone += admin.delete_matching(&pattern).await?;
                }
                tracing::info!("reset: deleted the sessions panel's {gone} keys");
            }
        }
        let mut supervisor = Supervisor::new(Engine::new()?, redis.clone(), shutdown, Removed::KeepServing);
        let mut groups = Vec::new();
        for ((group, consumers), plugin) in GROUPS.into_iter().zip(plugin_files) {
            // As the watcher names it, or a new build of it is never recognised.
            let plugin = crate::supervise::watcher::resolve(plugin)?;
            let mut run_config = RunConfig::new(url, plugin, &config.stream, group, consumers[0]);
            run_config.settings.consumers = consumers.iter().map(|c| c.to_string()).collect();
            run_config.settings.min_idle = config.claim_idle;
            run_config.settings.reap_interval = config.reap_interval;
            run_config.settings.block = DEMO_BLOCK;
            run_config.settings.partitions = config.partitions;
            // The keys the plugins write derive from the stream they read:
            // with partitions, every partition's (`STREAM:{*}:totals`).
            let written = match config.partitions {
                Some(_) => crate::keys::partition_name(&config.stream, 0).replace("{0}", "{*}"),
                None => config.stream.clone(),
            };
            if group == TOTALS_GROUP {
                // What the analytics plugin writes, with its acks.
                run_config.settings.limits.grants = Arc::new(crate::settings::Grants {
                    keys: vec![totals_key(&written)],
                    streams: vec![paid_key(&written)],
                    ..Default::default()
                });
            }
            if group == NOTIFY_GROUP {
                let mut grants = notifier_grants(&written, dashboard, sink_token);
                if config.partitions.is_some() {
                    // Its counts go to one hash, the base stream's; on a
                    // cluster that is one slot, not every partition's: none.
                    if !cluster {
                        grants.config.insert("stats".into(), notifier_stats_key(&config.stream));
                        grants.keys.push(notifier_stats_key(&config.stream));
                    } else {
                        grants.config.remove("stats");
                    }
                }
                run_config.settings.limits.grants = Arc::new(grants);
                run_config.settings.limits.http_timeout = sink::HTTP_TIMEOUT;
            }
            let loaded = supervisor.load(&run_config).await?;
            let plugin = supervisor.deploy(group, run_config, Arc::new(loaded)).await?;
            groups.push(Group { plugin, status: Arc::new(Mutex::new(PluginStatus::loaded_now())) });
        }
        let statuses: Vec<_> = groups.iter().map(|g| (g.plugin.name().to_string(), g.status.clone())).collect();
        supervisor.on_reload(move |name, outcome| {
            if let Some((_, status)) = statuses.iter().find(|(group, _)| group == name) {
                status.lock().expect("plugin status lock").record(outcome);
            }
        });
        let sessions = match groups.iter().find(|g| g.config().settings.group == TOTALS_GROUP) {
            Some(analytics) if !cluster => match analytics.plugin.current() {
                Some(plugin) => Some(sessions::Sessions::start(url, &config.stream, plugin, shutdown).await?),
                None => None,
            },
            _ => None,
        };
        let demo =
            Demo { config, redis, admin, groups, next_order: AtomicU64::new(1), sink: sink::Sink::default(), sessions };
        Ok((demo, supervisor))
    }

    /// Stops every consumer and waits for them.
    async fn stop(&self, supervisor: &mut Supervisor) {
        if let Some(sessions) = &self.sessions {
            sessions.stop().await;
        }
        for group in &self.groups {
            if let Some(Err(error)) = supervisor.stop(group.plugin.name()).await {
                tracing::error!(group = %group.config().settings.group, "a consumer ended with an error: {error:#}");
            }
        }
    }

    /// The consumers of `group` running in this process.
    fn locals(&self, group: &Group) -> Vec<Member> {
        group.plugin.with(|deployment| deployment.members().to_vec()).unwrap_or_default()
    }

    /// The sessions panel, where it runs.
    pub fn sessions(&self) -> Option<&sessions::Sessions> {
        self.sessions.as_ref()
    }

    fn admin(&self) -> Connection {
        self.admin.clone()
    }

    /// The streams of the demo: its stream, or each partition's.
    fn streams(&self) -> Vec<String> {
        streams(&self.config).into_iter().map(|(stream, _)| stream).collect()
    }

    /// Each stream of the demo with its dead-letter stream.
    fn dead_letters_of(&self) -> Vec<(String, String)> {
        streams(&self.config)
    }
}

/// The streams of `config`'s stream, each with its dead-letter stream:
/// itself, or each of its partitions (`STREAM:{p}`, `STREAM:dlq:{p}`).
fn streams(config: &DemoConfig) -> Vec<(String, String)> {
    let dead_letter = crate::settings::dead_letter_key(&config.stream);
    match config.partitions {
        Some(n) => (0..n)
            .map(|p| (crate::keys::partition_name(&config.stream, p), crate::keys::partition_name(&dead_letter, p)))
            .collect(),
        None => vec![(config.stream.clone(), dead_letter)],
    }
}
