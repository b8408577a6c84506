//! The webhook the demo's `notifications` group notifies: `POST /api/sink`,
//! served by the dashboard itself. It records what arrives (by the
//! `Idempotency-Key` the notifier sends: a key seen before is a duplicate,
//! suppressed here as a real webhook would), and has two switches: "sink
//! down" answers 503 (the notifier retries later) and "slow sink" answers
//! after 3 s (longer than the demo's HTTP timeout: the notifier gives up and
//! retries, and the sink, which took the first request, suppresses the
//! second). The panel shows the counts and the last notifications.

use crate::commands::demo::Demo;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the webhook is served; POSTs there need the sink's own token
/// ([`crate::web::guard::Guard::webhook`]), which the notifier is given.
pub const PATH: &str = "/api/sink";
/// Longest `Idempotency-Key` taken, and longest text kept of a notification's values.
const MAX_KEY: usize = 200;
const MAX_TEXT: usize = 64;
/// How long the slow sink takes to answer.
pub const SLOW: Duration = Duration::from_secs(3);
/// The demo's outbound HTTP timeout: shorter than [`SLOW`].
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Notifications listed in the panel.
const SHOWN: usize = 20;
/// Idempotency keys remembered, at most (the oldest are forgotten past it).
const REMEMBERED: usize = 100_000;

/// The sink's switches and what it received.
#[derive(Default)]
pub struct Sink {
    down: AtomicBool,
    slow: AtomicBool,
    log: Mutex<Received>,
}

#[derive(Default)]
struct Received {
    /// Distinct notifications taken.
    unique: u64,
    /// Requests for a notification already taken.
    duplicates: u64,
    /// Requests answered 503 while down: each one a retry to come.
    refused: u64,
    keys: HashSet<String>,
    order: VecDeque<String>,
    last: VecDeque<Value>,
}

/// What the sink answers.
pub enum Answer {
    /// 503: the sink is down.
    Down,
    /// 200, after the slow sink's delay if it is on.
    Taken { slow: bool },
    /// 400: not a notification.
    Invalid(String),
}

impl Sink {
    /// Takes one request: `key` (its `Idempotency-Key`) and its JSON `body`.
    pub fn take(&self, key: Option<&str>, body: &Bytes) -> Answer {
        if self.down.load(Ordering::Relaxed) {
            self.log.lock().expect("sink lock").refused += 1;
            return Answer::Down;
        }
        let Ok(note) = serde_json::from_slice::<Value>(body) else {
            return Answer::Invalid("the body is not JSON".into());
        };
        let Some(key) = key.filter(|k| k.len() <= MAX_KEY).map(str::to_string) else {
            return Answer::Invalid(format!("no Idempotency-Key header of at most {MAX_KEY} bytes"));
        };
        let text = |v: &Value| v.as_str().map(|t| t.chars().take(MAX_TEXT).collect::<String>());
        let shown = json!({
            "id": text(&note["id"]),
            "order": text(&note["fields"]["order_id"]),
            "type": text(&note["fields"]["type"]),
            "delivery": note["delivery"].as_u64(),
        });
        let mut log = self.log.lock().expect("sink lock");
        let duplicate = log.keys.contains(&key);
        if duplicate {
            log.duplicates += 1;
        } else {
            log.unique += 1;
            log.keys.insert(key.clone());
            log.order.push_back(key);
            if log.order.len() > REMEMBERED {
                let oldest = log.order.pop_front().expect("not empty");
                log.keys.remove(&oldest);
            }
        }
        let mut shown = shown;
        shown["duplicate"] = json!(duplicate);
        shown["at_ms"] = json!(super::view::now_ms());
        log.last.push_front(shown);
        log.last.truncate(SHOWN);
        Answer::Taken { slow: self.slow.load(Ordering::Relaxed) }
    }

    /// Sets the switches given.
    pub fn switch(&self, down: Option<bool>, slow: Option<bool>) {
        if let Some(down) = down {
            self.down.store(down, Ordering::Relaxed);
        }
        if let Some(slow) = slow {
            self.slow.store(slow, Ordering::Relaxed);
        }
    }

    /// Forgets everything received (the switches stay).
    pub fn clear(&self) {
        *self.log.lock().expect("sink lock") = Received::default();
    }

    /// The panel's document.
    pub fn view(&self) -> Value {
        let log = self.log.lock().expect("sink lock");
        json!({
            "down": self.down.load(Ordering::Relaxed),
            "slow": self.slow.load(Ordering::Relaxed),
            "received": log.unique,
            "duplicates": log.duplicates,
            "retries_while_down": log.refused,
            "last": log.last,
        })
    }
}

impl Demo {
    /// The notifications panel: the sink's view, plus what the notifier
    /// counted (sent, and skipped as already sent) in its stats hash.
    pub async fn notifications(&self) -> Value {
        let mut view = self.sink.view();
        let stats = self.admin().hash_counts(&super::notifier_stats_key(&self.config.stream)).await;
        view["notifier"] = match stats {
            Ok(counts) => json!(counts),
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        view
    }
}
