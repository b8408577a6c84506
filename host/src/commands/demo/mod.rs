//! `host demo`: the redis.io streaming demo with Wasm handlers. One stream
//! (`demo:events:orders`), group `notifications` (consumers `worker-a`,
//! `worker-b`) and group `analytics` (`worker-c`), each group's handler a
//! plugin whose file is watched and hot-reloaded. This module owns the demo's
//! state and every action its dashboard offers ([`crate::commands::demo::dashboard`] only
//! maps HTTP onto these methods).

pub mod dashboard;

use crate::commands::inspect::{entry_json, text_json};
use crate::commands::run::{self, Reload};
use crate::config::{DemoConfig, RequeueConfig, RunConfig, Trim};
use crate::consumer::control::{Control, LastError, State};
use crate::dead_letter::DeadLetter;
use crate::streams::{Connection, PendingEntry, Redis};
use crate::supervise::deployment::{Deployment, Member};
use crate::supervise::watcher::Watcher;
use crate::wasm::engine::Engine;
use crate::web::guard::{Guard, Token};
use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The demo's groups and their consumers at start.
pub const GROUPS: [(&str, &[&str]); 2] = [("notifications", &["worker-a", "worker-b"]), ("analytics", &["worker-c"])];
/// Order event types of the redis.io guide.
pub const ORDER_TYPES: [&str; 4] = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];
/// What `produce` accepts as a kind besides the order types.
pub const KINDS: [&str; 3] = ["random", "malformed", "payment-pending"];
const CUSTOMERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
/// At most this many entries per produce request or listing.
pub const MAX_BATCH: usize = 10_000;
/// How long a claim request may wait for its consumer's loop.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest blocking read of the demo's consumers: bounds how long a claim
/// request waits for its consumer to come round.
const DEMO_BLOCK: Duration = Duration::from_millis(500);

/// A failed dashboard action: what the user did wrong, or what broke.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Bad input (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No such group, consumer or entry (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Redis or the host failed (HTTP 500).
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

type Action<T> = std::result::Result<T, ActionError>;

fn invalid<T>(message: impl Into<String>) -> Action<T> {
    Err(ActionError::Invalid(message.into()))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A plugin's history in this demo.
#[derive(Debug, Clone, Serialize)]
struct PluginStatus {
    loaded_at_ms: u64,
    reload: Option<ReloadStatus>,
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, Serialize)]
struct ReloadStatus {
    ok: bool,
    message: String,
    at_ms: u64,
}

/// One group: its run settings and running consumers.
struct Group {
    config: RunConfig,
    /// `None` once the demo is stopping.
    deployment: Mutex<Option<Deployment>>,
    plugin: Mutex<PluginStatus>,
}

/// The running demo.
pub struct Demo {
    config: DemoConfig,
    redis: Redis,
    admin: Connection,
    engine: Engine,
    groups: Vec<Group>,
    next_order: AtomicU64,
}

/// Runs the demo until `shutdown`: Redis (a child when needed), reset, the
/// two groups, sample orders, the dashboard, and hot reload of both plugins.
pub async fn run(config: DemoConfig, shutdown: CancellationToken) -> Result<()> {
    // The port first: a taken port must fail before the stream is reset.
    let listener = crate::web::bind(config.listen, "the dashboard (--port)").await?;
    let token = Token::new()?;
    let (url, local) = crate::streams::local::resolve(config.redis_url.as_deref(), &config.probe_url).await?;
    let token_file = config.token_file.clone();
    let demo = Arc::new(Demo::start(config, &url, &shutdown).await?);
    let app = crate::commands::demo::dashboard::router(demo.clone(), &token);
    let bound = crate::web::serve_on(listener, app, |bound| Guard::dashboard(bound, token.clone()), shutdown.clone())?;
    let served = async {
        if let Some(path) = &token_file {
            token.write_to(path)?;
        }
        // Watching before the dashboard is announced: a build dropped in right after is not missed.
        let paths: Vec<_> = demo.groups.iter().map(|g| g.config.plugin.clone()).collect();
        let watcher = Watcher::new(&paths)?;
        demo.seed().await?;
        tracing::info!("dashboard on http://{bound}/ (metrics on http://{bound}/metrics)");
        println!("demo: open http://{bound}/ in a browser (Ctrl-C stops the demo)");
        println!("demo: scripts send `X-Host-Token: {}` with POST and DELETE calls", token.as_str());
        demo.watch(watcher, &shutdown).await
    }
    .await;
    demo.stop().await;
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
    /// and starts the consumers.
    async fn start(config: DemoConfig, url: &str, shutdown: &CancellationToken) -> Result<Self> {
        let redis = Redis::open(url)?;
        let mut admin = redis.connect(Duration::ZERO).await?;
        let dead_letter = crate::settings::dead_letter_key(&config.stream);
        if config.reset {
            let groups: Vec<&str> = GROUPS.iter().map(|(g, _)| *g).collect();
            admin.recreate(&config.stream, &[&dead_letter], &groups).await?;
            tracing::info!(stream = %config.stream, "reset: deleted {} and {dead_letter} to start clean \
                (--no-reset keeps them)", config.stream);
        }
        let engine = Engine::new()?;
        let mut groups = Vec::new();
        for (group, consumers) in GROUPS {
            let plugin = match group {
                "notifications" => config.notifications_plugin.clone(),
                _ => config.analytics_plugin.clone(),
            };
            if !plugin.exists() {
                bail!(
                    "plugin {} for group {group} not found: build the plugins with `make plugins` \
                    (or point --{group}-plugin at a .wasm file)",
                    plugin.display()
                );
            }
            // As the watcher names it, or a new build of it is never recognised.
            let plugin = crate::supervise::watcher::resolve(&plugin)?;
            let mut run_config = RunConfig::new(url, plugin, &config.stream, group, consumers[0]);
            run_config.settings.consumers = consumers.iter().map(|c| c.to_string()).collect();
            run_config.settings.min_idle = config.claim_idle;
            run_config.settings.reap_interval = config.reap_interval;
            run_config.settings.block = DEMO_BLOCK;
            let loaded = run::load(&engine, &run_config).await?;
            let deployment = Deployment::start(&redis, &run_config.settings, Arc::new(loaded), shutdown).await?;
            groups.push(Group {
                config: run_config,
                deployment: Mutex::new(Some(deployment)),
                plugin: Mutex::new(PluginStatus { loaded_at_ms: now_ms(), reload: None }),
            });
        }
        Ok(Demo { config, redis, admin, engine, groups, next_order: AtomicU64::new(1) })
    }

    /// Produces the sample orders of `--seed`: a mix of types, one malformed
    /// (dead-lettered at once) and one whose payment stays pending (retried
    /// until its delivery limit, then dead-lettered).
    async fn seed(&self) -> Result<()> {
        let n = self.config.seed as usize;
        if n == 0 {
            return Ok(());
        }
        self.produce(n.saturating_sub(2).max(1), "random").await.map_err(anyhow::Error::from)?;
        if n >= 3 {
            self.produce(1, "malformed").await.map_err(anyhow::Error::from)?;
            self.produce(1, "payment-pending").await.map_err(anyhow::Error::from)?;
        }
        tracing::info!(stream = %self.config.stream, "produced {n} sample orders");
        Ok(())
    }

    /// Reloads a group's plugin whenever `watcher` (on the plugin files)
    /// sees its file change, until `shutdown`.
    async fn watch(&self, mut watcher: Watcher, shutdown: &CancellationToken) -> Result<()> {
        loop {
            let changed = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                changed = watcher.next() => match changed { Some(c) => c, None => return Ok(()) },
            };
            for group in self.groups.iter().filter(|g| changed.contains(&g.config.plugin)) {
                if !group.config.plugin.exists() {
                    tracing::warn!(plugin = %group.config.plugin.display(), "plugin file removed; the loaded version keeps serving");
                    continue;
                }
                let loaded = run::load(&self.engine, &group.config).await;
                let outcome = {
                    let deployment = group.deployment.lock().expect("deployment lock");
                    let Some(deployment) = deployment.as_ref() else { return Ok(()) };
                    run::install(&group.config, deployment, loaded)
                };
                let (ok, message) = match outcome {
                    Reload::Same => continue,
                    Reload::Replaced { old } => (true, format!("replaced version {old}")),
                    Reload::Failed(error) => (false, error),
                };
                let mut status = group.plugin.lock().expect("plugin status lock");
                if ok {
                    status.loaded_at_ms = now_ms();
                }
                status.reload = Some(ReloadStatus { ok, message, at_ms: now_ms() });
            }
        }
    }

    /// Stops every consumer and waits for them.
    async fn stop(&self) {
        for group in &self.groups {
            let deployment = group.deployment.lock().expect("deployment lock").take();
            if let Some(mut deployment) = deployment {
                deployment.stop();
                if let Err(error) = deployment.finished().await {
                    tracing::error!(group = %group.config.settings.group, "a consumer ended with an error: {error:#}");
                }
            }
        }
    }

    fn group(&self, name: &str) -> Action<&Group> {
        self.groups
            .iter()
            .find(|g| g.config.settings.group == name)
            .ok_or_else(|| ActionError::NotFound(format!("no group {name:?} in this demo")))
    }

    /// Runs `f` on a group's deployment (fails once the demo is stopping).
    fn with_deployment<T>(&self, group: &str, f: impl FnOnce(&mut Deployment) -> Action<T>) -> Action<T> {
        let group = self.group(group)?;
        let mut deployment = group.deployment.lock().expect("deployment lock");
        match deployment.as_mut() {
            Some(deployment) => f(deployment),
            None => Err(ActionError::Failed(anyhow::anyhow!("the demo is stopping"))),
        }
    }

    /// The consumers of `group` running in this process.
    fn locals(&self, group: &Group) -> Vec<Member> {
        let deployment = group.deployment.lock().expect("deployment lock");
        deployment.as_ref().map(|d| d.members().to_vec()).unwrap_or_default()
    }

    fn admin(&self) -> Connection {
        self.admin.clone()
    }

    /// `XADD` of `count` order events of `kind` (an order type, `random`,
    /// `malformed` or `payment-pending`), capped at `MAXLEN ~ --maxlen`.
    pub async fn produce(&self, count: usize, kind: &str) -> Action<Value> {
        if count == 0 || count > MAX_BATCH {
            return invalid(format!("count must be 1..={MAX_BATCH}, got {count}"));
        }
        if !ORDER_TYPES.contains(&kind) && !KINDS.contains(&kind) {
            return invalid(format!("unknown kind {kind:?}: expected one of {ORDER_TYPES:?} or {KINDS:?}"));
        }
        let mut conn = self.admin();
        let (mut first, mut last) = (None, String::new());
        for _ in 0..count {
            let fields = self.order(kind);
            last = conn.add(&self.config.stream, Some(self.config.maxlen), &fields).await?;
            first.get_or_insert_with(|| last.clone());
        }
        Ok(json!({"produced": count, "first_id": first, "last_id": last}))
    }

    /// One order event's fields.
    fn order(&self, kind: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let n = self.next_order.fetch_add(1, Ordering::Relaxed);
        let order_type = match kind {
            "random" => ORDER_TYPES[fastrand::usize(..ORDER_TYPES.len())],
            "malformed" | "payment-pending" => "order.paid",
            order_type => order_type,
        };
        let amount = match kind {
            "malformed" => "12.3.4".to_string(),
            _ => format!("{}.{:02}", fastrand::u32(1..500), fastrand::u32(..100)),
        };
        let mut fields = vec![
            ("type", order_type.to_string()),
            ("order_id", format!("o-{n}")),
            ("customer", CUSTOMERS[fastrand::usize(..CUSTOMERS.len())].to_string()),
            ("amount", amount),
        ];
        if kind == "payment-pending" {
            fields.push(("payment", "pending".to_string()));
        }
        fields.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes())).collect()
    }

    /// Everything the dashboard shows, in one document.
    pub async fn state(&self) -> Action<Value> {
        let mut conn = self.admin();
        let stream = &self.config.stream;
        let info = conn.stream_info(stream).await.unwrap_or_default();
        let tail: Vec<Value> = conn.latest(stream, 12).await?.iter().map(entry_json).collect();
        let infos = conn.groups(stream).await.unwrap_or_default();
        let mut groups = Vec::new();
        for group in &self.groups {
            let name = &group.config.settings.group;
            let info = infos.iter().find(|g| &g.name == name).cloned();
            let redis_consumers = match info {
                Some(_) => conn.consumers(stream, name).await?,
                None => Vec::new(),
            };
            let locals = self.locals(group);
            let mut consumers: Vec<Value> = redis_consumers
                .iter()
                .map(|c| {
                    let local = locals.iter().find(|l| l.name == c.name);
                    consumer_json(&c.name, Some((c.pending, c.idle_ms)), local)
                })
                .collect();
            for local in locals.iter().filter(|l| !redis_consumers.iter().any(|c| c.name == l.name)) {
                consumers.push(consumer_json(&local.name, None, Some(local)));
            }
            let pending = match info {
                Some(_) => conn.pending(stream, name, None, 50).await?,
                None => Vec::new(),
            };
            groups.push(json!({
                "name": name,
                "exists": info.is_some(),
                "last_delivered_id": info.as_ref().map(|g| g.last_delivered_id.clone()),
                "lag": info.as_ref().and_then(|g| g.lag),
                "pending": info.as_ref().map_or(0, |g| g.pending),
                "consumers": consumers,
                "pending_entries": pending,
            }));
        }
        Ok(json!({
            "time_ms": now_ms(),
            "settings": {
                "stream": stream,
                "redis": self.redis.shown_url(),
                "maxlen": self.config.maxlen,
                "claim_idle_ms": self.config.claim_idle.as_millis() as u64,
                "reap_interval_ms": self.config.reap_interval.as_millis() as u64,
                "kinds": ORDER_TYPES.iter().chain(KINDS.iter()).collect::<Vec<_>>(),
            },
            "stream": info,
            "tail": tail,
            "groups": groups,
            "plugins": self.plugins(),
            "dead_letters": self.dead_letters(20).await?,
        }))
    }

    /// The plugins panel: per group, the plugin serving and how it fares.
    pub fn plugins(&self) -> Vec<Value> {
        self.groups
            .iter()
            .map(|group| {
                let current = group.deployment.lock().expect("deployment lock").as_ref().map(|d| d.current());
                let locals = self.locals(group);
                let (mut calls, mut errors, mut last_error): (u64, u64, Option<LastError>) = (0, 0, None);
                for member in &locals {
                    let s = member.control.stats();
                    calls += s.handled;
                    errors += s.retried + s.faulted + s.rejected;
                    if let Some(e) = member.control.last_error()
                        && last_error.as_ref().is_none_or(|l| l.at_ms < e.at_ms)
                    {
                        last_error = Some(e);
                    }
                }
                let status = group.plugin.lock().expect("plugin status lock").clone();
                json!({
                    "group": group.config.settings.group,
                    "file": group.config.plugin.display().to_string(),
                    "name": current.as_ref().map(|p| p.tag.name.clone()),
                    "version": current.as_ref().map(|p| p.tag.version.clone()),
                    "size": current.as_ref().map(|p| p.size),
                    "loaded_at_ms": status.loaded_at_ms,
                    "calls": calls,
                    "errors": errors,
                    "last_error": last_error,
                    "reload": status.reload,
                })
            })
            .collect()
    }

    /// Starts consumer `name` in `group`.
    pub fn add_consumer(&self, group: &str, name: &str) -> Action<Value> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return invalid(format!("consumer name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"));
        }
        self.with_deployment(group, |deployment| {
            if deployment.members().iter().any(|m| m.name == name) {
                return invalid(format!("consumer {name:?} already runs in group {group:?}"));
            }
            deployment.add_consumer(name)?;
            tracing::info!(%group, consumer = %name, "consumer added from the dashboard");
            Ok(json!({"added": name, "group": group}))
        })
    }

    /// Stops consumer `name`, which hands its pending entries to a live peer
    /// (`XCLAIM`) and leaves the group (`XGROUP DELCONSUMER`).
    pub fn remove_consumer(&self, group: &str, name: &str) -> Action<Value> {
        self.with_deployment(group, |deployment| {
            if !deployment.remove_consumer(name) {
                return Err(ActionError::NotFound(format!("no consumer {name:?} runs in group {group:?}")));
            }
            tracing::info!(%group, consumer = %name, "consumer removed from the dashboard: handing its pending entries over");
            Ok(json!({"removed": name, "group": group}))
        })
    }

    fn control(&self, group: &str, name: &str) -> Action<Arc<Control>> {
        self.with_deployment(group, |deployment| {
            deployment
                .members()
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.control.clone())
                .ok_or_else(|| ActionError::NotFound(format!("no consumer {name:?} runs in group {group:?}")))
        })
    }

    /// Makes consumer `name` drop its next `count` deliveries unacked.
    pub fn crash(&self, group: &str, name: &str, count: u32) -> Action<Value> {
        if count == 0 || count > 1000 {
            return invalid(format!("count must be 1..=1000, got {count}"));
        }
        let control = self.control(group, name)?;
        control.crash_next(count);
        tracing::warn!(%group, consumer = %name, "crash drill: the next {count} deliveries will be dropped unacked");
        Ok(json!({"consumer": name, "group": group, "crash_due": control.crashes_due()}))
    }

    /// Has consumer `name` claim every entry of its group idle for
    /// `--claim-idle-ms` (`XAUTOCLAIM`) and handle them; returns how many.
    pub async fn claim(&self, group: &str, name: &str) -> Action<Value> {
        let control = self.control(group, name)?;
        let reply = control.request_claim();
        let claimed = match tokio::time::timeout(CLAIM_TIMEOUT, reply).await {
            Ok(Ok(Ok(n))) => n,
            Ok(Ok(Err(error))) => return Err(ActionError::Failed(anyhow::anyhow!("claim failed: {error}"))),
            Ok(Err(_)) => return Err(ActionError::Failed(anyhow::anyhow!("consumer {name} stopped before claiming"))),
            Err(_) => return Err(ActionError::Failed(anyhow::anyhow!("consumer {name} did not claim within 15 s"))),
        };
        Ok(json!({"consumer": name, "group": group, "claimed": claimed,
            "min_idle_ms": self.config.claim_idle.as_millis() as u64}))
    }

    /// A group's pending entries (`XPENDING … - + count`), oldest first.
    pub async fn pending(&self, group: &str, count: usize) -> Action<Vec<PendingEntry>> {
        self.group(group)?;
        Ok(self.admin().pending(&self.config.stream, group, None, count.clamp(1, MAX_BATCH)).await?)
    }

    /// `XRANGE stream from to COUNT count`.
    pub async fn replay(&self, from: &str, to: &str, count: usize) -> Action<Value> {
        if count == 0 || count > MAX_BATCH {
            return invalid(format!("count must be 1..={MAX_BATCH}, got {count}"));
        }
        let entries = self.admin().range(&self.config.stream, from, to, Some(count)).await.map_err(|e| {
            ActionError::Invalid(format!("{e:#} (ids look like 1700000000000-0, or - and + for the ends)"))
        })?;
        Ok(json!({"from": from, "to": to, "entries": entries.iter().map(entry_json).collect::<Vec<_>>()}))
    }

    /// `XTRIM stream MAXLEN|MINID ~ threshold`; returns how many went and the new length.
    pub async fn trim(&self, trim: Trim) -> Action<Value> {
        let mut conn = self.admin();
        let trimmed =
            conn.trim(&self.config.stream, &trim, false).await.map_err(|e| ActionError::Invalid(format!("{e:#}")))?;
        let length = conn.length(&self.config.stream).await?;
        Ok(json!({"trimmed": trimmed, "length": length}))
    }

    /// Deletes the stream and its dead letters and re-creates both groups
    /// at the start; consumers keep running, their counters start over.
    pub async fn reset(&self) -> Action<Value> {
        let dead_letter = crate::settings::dead_letter_key(&self.config.stream);
        let groups: Vec<&str> = self.groups.iter().map(|g| g.config.settings.group.as_str()).collect();
        self.admin().recreate(&self.config.stream, &[&dead_letter], &groups).await?;
        for group in &self.groups {
            for local in self.locals(group) {
                local.control.reset_stats();
            }
        }
        tracing::info!(stream = %self.config.stream, "reset from the dashboard: stream, groups and dead letters start over");
        Ok(json!({"reset": self.config.stream}))
    }

    /// The newest `count` dead letters, newest first, and how many there are.
    pub async fn dead_letters(&self, count: usize) -> Action<Value> {
        let key = crate::settings::dead_letter_key(&self.config.stream);
        let mut conn = self.admin();
        let length = conn.length(&key).await?;
        let mut entries = Vec::new();
        for entry in conn.latest(&key, count.clamp(1, MAX_BATCH)).await? {
            let dead = match DeadLetter::parse(entry) {
                Ok(dead) => dead,
                Err(error) => {
                    entries.push(json!({"error": format!("{error:#}")}));
                    continue;
                }
            };
            let meta: serde_json::Map<String, Value> =
                dead.meta.iter().map(|(k, v)| (k.trim_start_matches("dlq:").to_string(), json!(v))).collect();
            let fields: Vec<Value> = dead.fields.iter().map(|(n, v)| json!([text_json(n), text_json(v)])).collect();
            entries.push(json!({"id": dead.dead_id, "meta": meta, "fields": fields}));
        }
        Ok(json!({"key": key, "length": length, "entries": entries}))
    }

    /// Moves dead letters (`ids`, or all when empty) back onto the stream.
    pub async fn requeue(&self, ids: Vec<String>) -> Action<Value> {
        let config = RequeueConfig {
            redis_url: self.redis.raw_url().to_string(),
            dead_letter: crate::settings::dead_letter_key(&self.config.stream),
            ids,
        };
        let report = crate::commands::inspect::dlq_requeue(&config).await.map_err(|e| match format!("{e:#}") {
            text if text.starts_with("no entry") => ActionError::NotFound(text),
            _ => ActionError::Failed(e),
        })?;
        let requeued = report.lines().filter(|l| l.starts_with("requeued ") && l.contains(" as ")).count();
        Ok(json!({"requeued": requeued, "report": report}))
    }
}

fn consumer_json(name: &str, redis: Option<(u64, u64)>, local: Option<&Member>) -> Value {
    let stats = local.map(|l| l.control.stats()).unwrap_or_default();
    json!({
        "name": name,
        "in_redis": redis.is_some(),
        "pending": redis.map(|r| r.0),
        "idle_ms": redis.map(|r| r.1),
        "local": local.is_some(),
        "state": local.map_or(State::Stopped, |l| l.control.state()),
        "processed": stats.handled,
        "acked": stats.acked,
        "errors": stats.retried + stats.faulted + stats.rejected,
        "dead_lettered": stats.dead_lettered,
        "claimed": stats.claimed,
        "crash_due": local.map_or(0, |l| l.control.crashes_due()),
    })
}

/// Checks a trim request: exactly one of `maxlen` and `minid`.
pub fn trim_of(maxlen: Option<u64>, minid: Option<String>) -> Action<Trim> {
    match (maxlen, minid) {
        (Some(n), None) => Ok(Trim::MaxLen(n)),
        (None, Some(id)) if !id.trim().is_empty() => Ok(Trim::MinId(id.trim().to_string())),
        _ => invalid("give exactly one of maxlen (a number) and minid (an entry id)"),
    }
}
