//! The demo's sessions panel: stream ownership mode at work. Sessions are
//! small data streams (`STREAM:session:N`, a user's order events, then an
//! end marker; STREAM is the demo's stream key), assigned through
//! `STREAM:sessions-input`; three workers of this
//! process (`session-1` … `session-3`, each its own deployment in ownership
//! mode, running the analytics plugin) own them under leases. Killing a
//! worker drops it at once, as a crash would (its leases are not released):
//! within the lease TTL and a heartbeat its sessions move to the others,
//! which go on from the last acked event. The panel shows who owns what and
//! each move.

use crate::commands::demo::actions::{Action, ActionError, invalid};
use crate::commands::ownership::owners_of;
use crate::consumer::owned::assignment::{FIELD, message};
use crate::settings::{Grants, GroupSettings, Ownership};
use crate::streams::Redis;
use crate::supervise::deployment::Deployment;
use crate::wasm::plugin::Plugin;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The workers, all in this process.
pub const WORKERS: [&str; 3] = ["session-1", "session-2", "session-3"];
/// Events per session, one every [`PACE`], then the end marker.
const EVENTS: usize = 20;
const PACE: Duration = Duration::from_millis(500);
/// Short leases, so a move is seen within seconds.
const LEASE_TTL: Duration = Duration::from_millis(3_000);
const HEARTBEAT: Duration = Duration::from_millis(1_000);
/// Sessions started per request, at most.
const MAX_START: usize = 20;
/// Moves remembered for the panel.
const MOVES_KEPT: usize = 30;

/// The key patterns of the panel of the demo on `stream` (what a reset
/// deletes): `STREAM:session*`, and the sessions' leases and adoption
/// markers, `{STREAM:session:N}:…`.
pub fn keys_patterns(stream: &str) -> [String; 2] {
    let escaped: String =
        stream.chars().flat_map(|c| if "*?[]\\{}".contains(c) { vec!['\\', c] } else { vec![c] }).collect();
    [format!("{escaped}:session*"), format!("\\{{{escaped}:session:*")]
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The sessions panel's workers and what it has seen.
pub struct Sessions {
    /// The demo's stream key: every key of the panel starts with it.
    prefix: String,
    redis: Redis,
    plugin: Arc<Plugin>,
    /// The panel's connection (opened on first use).
    conn: tokio::sync::Mutex<Option<crate::streams::Connection>>,
    /// Each worker's deployment; `None` while killed.
    workers: Mutex<BTreeMap<String, Option<Deployment>>>,
    shutdown: CancellationToken,

    /// Owner last seen per session, and the moves seen.
    seen: Mutex<(HashMap<String, String>, VecDeque<Value>)>,
}

impl Sessions {
    /// Starts the three workers of the demo on `stream` on `plugin` (the
    /// analytics plugin: it keeps each session's totals in `…:session:N:totals`).
    pub async fn start(
        url: &str,
        stream: &str,
        plugin: Arc<Plugin>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let redis = Redis::open(url)?;
        let sessions = Sessions {
            prefix: stream.to_string(),
            redis,
            plugin,
            workers: Mutex::default(),
            conn: tokio::sync::Mutex::default(),
            shutdown: shutdown.child_token(),

            seen: Mutex::default(),
        };
        for id in WORKERS {
            sessions.spawn(id).await?;
        }
        Ok(sessions)
    }

    /// The assignment stream, `STREAM:sessions-input`.
    fn assignments(&self) -> String {
        format!("{}:sessions-input", self.prefix)
    }

    /// The service (its group), `STREAM:sessions`.
    fn service(&self) -> String {
        format!("{}:sessions", self.prefix)
    }

    /// Session `n`'s data stream.
    fn session_stream(&self, n: u64) -> String {
        format!("{}:session:{n}", self.prefix)
    }

    fn settings(&self, id: &str) -> GroupSettings {
        let mut settings = GroupSettings::new(&self.assignments(), &self.service(), vec![id.to_string()]);
        settings.ownership =
            Some(Ownership { lease_ttl: LEASE_TTL, heartbeat: HEARTBEAT, max_owned: 100, parallel: 1 });
        settings.block = Duration::from_millis(500);
        settings.min_idle = Duration::from_secs(1);
        settings.limits.grants = Arc::new(Grants {
            keys: vec![format!("{}:session:*:totals", self.prefix)],
            streams: vec![format!("{}:session:*:paid", self.prefix)],
            ..Default::default()
        });
        settings
    }

    async fn spawn(&self, id: &str) -> anyhow::Result<()> {
        let deployment =
            Deployment::start(&self.redis, &self.settings(id), self.plugin.clone(), &self.shutdown).await?;
        self.workers.lock().expect("sessions lock").insert(id.to_string(), Some(deployment));
        Ok(())
    }

    /// Starts `count` sessions: each assigned, then fed an event every
    /// [`PACE`] and ended with the end marker.
    pub async fn start_sessions(&self, count: usize) -> Action<Value> {
        if count == 0 || count > MAX_START {
            return invalid(format!("count must be 1..={MAX_START}, got {count}"));
        }
        let mut conn = self.connection().await?;
        let mut started = Vec::new();
        for _ in 0..count {
            // Numbered in Redis: a demo started again (`--no-reset`) makes new sessions.
            let n = conn.increment(&format!("{}:sessions:next", self.prefix)).await?;
            let stream = self.session_stream(n);
            conn.add(&stream, None, &event(n, 0)).await?;
            let info = json!({"user": format!("user-{n}"), "started_ms": now_ms()});
            let fields = vec![(FIELD.as_bytes().to_vec(), message(&stream, &info).into_bytes())];
            conn.add(&self.assignments(), None, &fields).await?;
            let (mut feed, stop) = (conn.clone(), self.shutdown.clone());
            let name = stream.clone();
            tokio::spawn(async move {
                for i in 1..EVENTS {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(PACE) => {}
                    }
                    if feed.add(&name, None, &event(n, i)).await.is_err() {
                        return;
                    }
                }
                let end = vec![(b"lbs-end".to_vec(), b"1".to_vec())];
                let _ = feed.add(&name, None, &end).await;
            });
            started.push(stream);
        }
        Ok(json!({ "started": started }))
    }

    /// Drops worker `id` at once, as a crash would: its leases stay until they expire.
    pub fn kill(&self, id: &str) -> Action<Value> {
        let mut workers = self.workers.lock().expect("sessions lock");
        let slot = workers.get_mut(id).ok_or_else(|| ActionError::NotFound(format!("no worker {id:?}")))?;
        match slot.take() {
            Some(deployment) => {
                drop(deployment);
                tracing::warn!(
                    worker = id,
                    "sessions: worker killed (its leases expire in {} ms)",
                    LEASE_TTL.as_millis()
                );
                Ok(json!({ "killed": id }))
            }
            None => invalid(format!("worker {id} is not running")),
        }
    }

    /// Starts worker `id` again (it waits until its old name lease has expired).
    pub async fn restart(&self, id: &str) -> Action<Value> {
        match self.workers.lock().expect("sessions lock").get(id) {
            None => return Err(ActionError::NotFound(format!("no worker {id:?}"))),
            Some(Some(_)) => return invalid(format!("worker {id} is running")),
            Some(None) => {}
        }
        self.spawn(id).await?;
        Ok(json!({ "restarted": id }))
    }

    /// What the panel shows: workers, sessions in progress with owner,
    /// lease and progress, and the moves seen.
    pub async fn state(&self) -> Action<Value> {
        let mut conn = self.connection().await?;
        let owners = owners_of(&mut conn, &self.assignments(), &self.service()).await.unwrap_or_default();
        // Ended: read by a worker and no longer pending (finished, or dead-lettered).
        let (length, lag) = (conn.length(&self.assignments()).await.unwrap_or(0), self.lag(&mut conn).await);
        let done = length.saturating_sub(lag + owners.len() as u64);
        let alive: Vec<(String, bool)> =
            self.workers.lock().expect("sessions lock").iter().map(|(id, d)| (id.clone(), d.is_some())).collect();
        let mut lengths = Vec::with_capacity(owners.len());
        for o in &owners {
            lengths.push(conn.length(&o.stream).await.unwrap_or(0));
        }
        let mut seen = self.seen.lock().expect("sessions lock");
        let (last, moves) = &mut *seen;
        let mut sessions = Vec::new();
        for (o, length) in owners.iter().zip(lengths) {
            if let Some(owner) = &o.owner
                && let Some(before) = last.insert(o.stream.clone(), owner.clone())
                && &before != owner
            {
                moves.push_front(json!({"stream": o.stream, "from": before, "to": owner, "at_ms": now_ms()}));
                moves.truncate(MOVES_KEPT);
            }
            let handled = length.saturating_sub(o.lag.unwrap_or(0) + o.pending.unwrap_or(0));
            sessions.push(json!({
                "stream": o.stream, "owner": o.owner, "lease_ms_left": o.lease_ms_left,
                "length": length, "handled": handled,
            }));
        }
        let workers: Vec<Value> = alive
            .iter()
            .map(|(id, alive)| {
                let owned = owners.iter().filter(|o| o.owner.as_deref() == Some(id)).count();
                json!({"id": id, "alive": alive, "owned": owned})
            })
            .collect();
        Ok(json!({
            "assignments": self.assignments(), "lease_ttl_ms": LEASE_TTL.as_millis() as u64,
            "heartbeat_ms": HEARTBEAT.as_millis() as u64, "workers": workers, "sessions": sessions,
            "finished": done, "moves": moves.iter().cloned().collect::<Vec<_>>(),
        }))
    }

    /// The panel's connection, opened on first use (and again after a failure).
    async fn connection(&self) -> anyhow::Result<crate::streams::Connection> {
        let mut conn = self.conn.lock().await;
        if let Some(conn) = conn.as_ref() {
            return Ok(conn.clone());
        }
        let fresh = self.redis.connect(Duration::ZERO).await?;
        Ok(conn.insert(fresh).clone())
    }

    /// Assignments no worker has read yet.
    async fn lag(&self, conn: &mut crate::streams::Connection) -> u64 {
        let groups = conn.groups(&self.assignments()).await.unwrap_or_default();
        groups.iter().find(|g| g.name == self.service()).and_then(|g| g.lag).unwrap_or(0)
    }

    /// Stops the running workers (releasing their leases) and the feeds.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let running: Vec<Deployment> =
            self.workers.lock().expect("sessions lock").values_mut().filter_map(Option::take).collect();
        for mut deployment in running {
            if let Err(error) = deployment.finished().await {
                tracing::error!("a sessions worker ended with an error: {error:#}");
            }
        }
    }
}

/// Event `i` of session `n`: an order of its user.
fn event(n: u64, i: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let order_type = ["order.placed", "order.paid", "order.shipped"][i % 3];
    let fields = [
        ("type", order_type.to_string()),
        ("order_id", format!("s{n}-{i}")),
        ("customer", format!("user-{n}")),
        ("amount", format!("{}.{:02}", 1 + (n as usize * 7 + i * 13) % 90, (i * 17) % 100)),
    ];
    fields.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes())).collect()
}
