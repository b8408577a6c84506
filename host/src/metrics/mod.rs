//! Prometheus metrics of the process: what each plugin version did with its
//! entries, how long its calls took, what was acked, dead-lettered and
//! reclaimed, and plugin loads. One registry for the process (like the
//! Prometheus default registry); `host run --metrics ADDR` serves it (see
//! [`crate::web`]).
//!
//! The hot path (one verdict per entry) uses handles cached per consumer and
//! plugin version ([`CallMetrics`]), so it costs a few atomic adds, no lookup.

mod http;
mod ownership;

use crate::handler::PluginTag;
use crate::streams::Redis;
use crate::verdict::Verdict;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Labels of a consumer group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    stream: String,
    group: String,
}

/// Labels of one plugin version serving a group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    stream: String,
    group: String,
    plugin: String,
    version: String,
}

/// [`VersionLabels`] plus the verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    stream: String,
    group: String,
    plugin: String,
    version: String,
    verdict: &'static str,
}

/// [`VersionLabels`] plus why the entry was dead-lettered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    stream: String,
    group: String,
    plugin: String,
    version: String,
    reason: &'static str,
}

/// [`GroupLabels`] plus a kind (of effect, or of refusal).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupKindLabels {
    stream: String,
    group: String,
    kind: &'static str,
}

/// A plugin's call denied by its grants.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeniedLabels {
    plugin: String,
    version: String,
    call: &'static str,
}

/// A plugin file's (re)load.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoadLabels {
    plugin: String,
    result: &'static str,
}

/// A loaded plugin version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    version: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    entries: Family<VerdictLabels, Counter>,
    call_seconds: Histograms<VersionLabels>,
    acked: Family<GroupLabels, Counter>,
    dead_lettered: Family<DeadLetterLabels, Counter>,
    claimed: Family<GroupLabels, Counter>,
    effects: Family<GroupKindLabels, Counter>,
    refused: Family<GroupKindLabels, Counter>,
    denied: Family<DeniedLabels, Counter>,
    loads: Family<LoadLabels, Counter>,
    serving: Family<PluginLabels, Gauge>,
    lag: Family<GroupLabels, Gauge>,
    pending: Family<GroupLabels, Gauge>,
    http: http::HttpMetrics,
    ownership: ownership::OwnershipMetrics,
    /// The groups this process consumes, asked for lag and pending at each scrape.
    groups: Mutex<Vec<(GroupLabels, Redis)>>,
}

/// Call latency buckets: 10 µs to ~40 s, ×4 apart (a warm Rust call is ~1 µs,
/// a Python one ~5 µs, a slow handler's I/O seconds).
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 4.0, 12))
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("host");
        let m = Metrics {
            entries: Family::default(),
            call_seconds: Family::new_with_constructor(call_histogram),
            acked: Family::default(),
            dead_lettered: Family::default(),
            claimed: Family::default(),
            effects: Family::default(),
            refused: Family::default(),
            denied: Family::default(),
            loads: Family::default(),
            serving: Family::default(),
            lag: Family::default(),
            pending: Family::default(),
            http: http::HttpMetrics::new(&mut registry),
            ownership: ownership::OwnershipMetrics::new(&mut registry),
            groups: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "entries",
            "Entries a plugin version was called for, by verdict (ack, retry, reject, fault)",
            m.entries.clone(),
        );
        registry.register_with_unit(
            "call_duration",
            "Duration of one handle call",
            prometheus_client::registry::Unit::Seconds,
            m.call_seconds.clone(),
        );
        registry.register("acked", "Entries acknowledged (XACK) in Redis", m.acked.clone());
        registry.register(
            "dead_lettered",
            "Entries moved to the dead-letter stream, by reason",
            m.dead_lettered.clone(),
        );
        registry.register("reaper_claimed", "Idle pending entries claimed by reapers (XAUTOCLAIM)", m.claimed.clone());
        registry.register(
            "effects_committed",
            "Plugin effects applied with their entry's ack, by kind (emit, incr, set, del)",
            m.effects.clone(),
        );
        registry.register(
            "effect_commits_refused",
            "Entries whose effects were not committed, by kind: not_owner (a peer owns the entry now; nothing \
             applied) or error (an effect could not be applied, e.g. WRONGTYPE; nothing applied, entry pending)",
            m.refused.clone(),
        );
        registry.register(
            "grants_denied",
            "Plugin effects and state calls refused because the key or stream is not granted, by call",
            m.denied.clone(),
        );
        registry.register("plugin_loads", "Plugin file loads and reloads, by result (ok, failed)", m.loads.clone());
        registry.register("plugin_serving", "1 for each plugin version in service", m.serving.clone());
        registry.register("group_lag", "Entries not yet delivered to the group (XINFO GROUPS)", m.lag.clone());
        registry.register("group_pending", "Entries delivered and not yet acked (XINFO GROUPS)", m.pending.clone());
        Metrics { registry, ..m }
    }

    /// Reports `stream`/`group` (on `redis`) in the lag and pending gauges.
    pub fn watch(&self, redis: &Redis, stream: &str, group: &str) {
        let labels = GroupLabels { stream: stream.to_owned(), group: group.to_owned() };
        let mut groups = self.groups.lock().expect("metrics groups lock");
        if !groups.iter().any(|(l, _)| *l == labels) {
            groups.push((labels, redis.clone()));
        }
    }

    /// Asks Redis for the lag and pending count of every watched group (at
    /// most 2 s; a group Redis cannot answer for keeps its last values). One
    /// connection per Redis for all its groups (a partitioned stream's
    /// partitions are many groups; a cluster connection is dear to open).
    pub async fn refresh_groups(&self) {
        let groups = self.groups.lock().expect("metrics groups lock").clone();
        let mut conns: Vec<(String, crate::streams::Connection)> = Vec::new();
        let mut unreachable: Vec<String> = Vec::new();
        for (labels, redis) in groups {
            if unreachable.iter().any(|url| url == redis.raw_url()) {
                continue;
            }
            let asked = tokio::time::timeout(Duration::from_secs(2), async {
                let at = match conns.iter().position(|(url, _)| url == redis.raw_url()) {
                    Some(at) => at,
                    None => {
                        conns.push((redis.raw_url().to_string(), redis.connect(Duration::ZERO).await?));
                        conns.len() - 1
                    }
                };
                conns[at].1.groups(&labels.stream).await
            });
            match asked.await {
                Ok(Ok(infos)) => match infos.into_iter().find(|g| g.name == labels.group) {
                    Some(info) => {
                        self.pending.get_or_create(&labels).set(info.pending as i64);
                        match info.lag {
                            Some(lag) => {
                                self.lag.get_or_create(&labels).set(lag as i64);
                            }
                            None => {
                                self.lag.remove(&labels);
                            }
                        }
                    }
                    None => {
                        self.pending.remove(&labels);
                        self.lag.remove(&labels);
                    }
                },
                Ok(Err(error)) => {
                    tracing::debug!(stream = %labels.stream, "group metrics not refreshed: {error:#}");
                    if !conns.iter().any(|(url, _)| url == redis.raw_url()) {
                        unreachable.push(redis.raw_url().to_string());
                    }
                }
                Err(_) => {
                    tracing::debug!(stream = %labels.stream, "group metrics not refreshed: Redis took over 2 s");
                    unreachable.push(redis.raw_url().to_string());
                }
            }
        }
    }

    /// The metrics in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// Handles for the calls of plugin version `tag` serving `stream`/`group`.
    pub fn calls(&self, stream: &str, group: &str, tag: &PluginTag) -> CallMetrics {
        let version = VersionLabels {
            stream: stream.to_owned(),
            group: group.to_owned(),
            plugin: tag.name.clone(),
            version: tag.version.clone(),
        };
        let verdict = |verdict| {
            self.entries
                .get_or_create(&VerdictLabels {
                    stream: version.stream.clone(),
                    group: version.group.clone(),
                    plugin: version.plugin.clone(),
                    version: version.version.clone(),
                    verdict,
                })
                .clone()
        };
        CallMetrics {
            ack: verdict("ack"),
            retry: verdict("retry"),
            reject: verdict("reject"),
            fault: verdict("fault"),
            seconds: self.call_seconds.get_or_create(&version).clone(),
        }
    }

    /// `n` entries acked on `stream`/`group`.
    pub fn acked(&self, stream: &str, group: &str, n: u64) {
        self.acked.get_or_create(&GroupLabels { stream: stream.to_owned(), group: group.to_owned() }).inc_by(n);
    }

    /// `n` idle entries claimed by a reaper of `stream`/`group`.
    pub fn claimed(&self, stream: &str, group: &str, n: u64) {
        self.claimed.get_or_create(&GroupLabels { stream: stream.to_owned(), group: group.to_owned() }).inc_by(n);
    }

    /// `n` effects of `kind` committed on `stream`/`group`.
    pub fn effects_committed(&self, stream: &str, group: &str, kind: &'static str, n: u64) {
        let labels = GroupKindLabels { stream: stream.to_owned(), group: group.to_owned(), kind };
        self.effects.get_or_create(&labels).inc_by(n);
    }

    /// One entry's commit refused on `stream`/`group`: `not_owner` or `error`.
    pub fn commit_refused(&self, stream: &str, group: &str, kind: &'static str) {
        let labels = GroupKindLabels { stream: stream.to_owned(), group: group.to_owned(), kind };
        self.refused.get_or_create(&labels).inc();
    }

    /// A `call` of plugin `tag` denied by its grants.
    pub fn denied(&self, tag: &PluginTag, call: &'static str) {
        let labels = DeniedLabels { plugin: tag.name.clone(), version: tag.version.clone(), call };
        self.denied.get_or_create(&labels).inc();
    }

    /// One entry dead-lettered while `tag` served `stream`/`group`.
    pub fn dead_lettered(&self, stream: &str, group: &str, tag: &PluginTag, reason: &'static str) {
        let labels = DeadLetterLabels {
            stream: stream.to_owned(),
            group: group.to_owned(),
            plugin: tag.name.clone(),
            version: tag.version.clone(),
            reason,
        };
        self.dead_lettered.get_or_create(&labels).inc();
    }

    /// A load of plugin `name` that succeeded or failed.
    pub fn loaded(&self, name: &str, ok: bool) {
        self.loads
            .get_or_create(&LoadLabels { plugin: name.to_owned(), result: if ok { "ok" } else { "failed" } })
            .inc();
    }

    /// `tag` went into (`true`) or out of service.
    pub fn serving(&self, tag: &PluginTag, serving: bool) {
        let labels = PluginLabels { plugin: tag.name.clone(), version: tag.version.clone() };
        if serving {
            self.serving.get_or_create(&labels).set(1);
        } else {
            self.serving.remove(&labels);
        }
    }
}

/// Counters and latency histogram of one plugin version on one group, cached
/// by the instance that makes the calls.
#[derive(Clone, Debug)]
pub struct CallMetrics {
    ack: Counter,
    retry: Counter,
    reject: Counter,
    fault: Counter,
    seconds: Histogram,
}

impl CallMetrics {
    /// Records one call: its verdict and how long it took.
    #[inline]
    pub fn record(&self, verdict: &Verdict, took: Duration) {
        match verdict {
            Verdict::Ack => &self.ack,
            Verdict::Retry { .. } => &self.retry,
            Verdict::Reject { .. } => &self.reject,
            Verdict::Fault { .. } => &self.fault,
        }
        .inc();
        self.seconds.observe(took.as_secs_f64());
    }
}
