//! Failure events: every dead letter (its reason: rejected, max deliveries,
//! trimmed), fault (trap, deadline, fuel, memory), disowning and failed
//! reload is also appended to the stream [`KEY`] (`host:events`, capped
//! with `MAXLEN ~` [`MAX_LEN`]) with the metadata of its log line, so
//! operators can follow failures with any Redis client (`host events
//! --follow`). Best effort: events are queued to a writer task of the
//! process; when the queue is full or Redis refuses, events are dropped
//! (counted in the log), never the consumers slowed down.

use super::Redis;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// The events stream.
pub const KEY: &str = crate::keys::EVENTS;
/// About this many events are kept.
pub const MAX_LEN: u64 = 10_000;
/// Events queued at most before they are dropped.
const QUEUE: usize = 10_000;

static SINK: OnceLock<mpsc::Sender<Vec<(String, String)>>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Starts the writer (once per process) on `redis`; later calls do nothing.
pub fn start(redis: &Redis) {
    let redis = redis.clone();
    SINK.get_or_init(|| {
        let (sender, mut receiver) = mpsc::channel::<Vec<(String, String)>>(QUEUE);
        tokio::spawn(async move {
            let mut conn = None;
            while let Some(event) = receiver.recv().await {
                if conn.is_none() {
                    conn = redis.connect(Duration::ZERO).await.ok();
                }
                let fields: Vec<(Vec<u8>, Vec<u8>)> =
                    event.into_iter().map(|(k, v)| (k.into_bytes(), v.into_bytes())).collect();
                let written = match &mut conn {
                    Some(c) => c.add(KEY, Some(MAX_LEN), &fields).await.map(|_| ()),
                    None => Err(anyhow::anyhow!("Redis unreachable")),
                };
                if let Err(error) = written {
                    conn = None;
                    if DROPPED.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                        tracing::warn!("failure event not written to {KEY} (dropped): {error:#}");
                    }
                }
            }
        });
        sender
    });
}

/// Values longer than this are cut (an error text may be 64 KiB).
const MAX_VALUE: usize = 4096;

/// `text`, cut to [`MAX_VALUE`] bytes at a character boundary (`…` added).
fn capped(text: &str) -> String {
    if text.len() <= MAX_VALUE {
        return text.to_string();
    }
    let mut end = MAX_VALUE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Queues event `kind` with `fields` (name, value), and the time.
pub fn record(kind: &str, fields: &[(&str, &str)]) {
    let Some(sink) = SINK.get() else { return };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut event = vec![("kind".to_string(), kind.to_string()), ("time-ms".to_string(), now.to_string())];
    event.extend(fields.iter().map(|(k, v)| (k.to_string(), capped(v))));
    if sink.try_send(event).is_err() && DROPPED.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
        tracing::warn!("failure events queue full: events dropped (Redis slow or away)");
    }
}
