//! Waiting for entries on owned streams that ran dry: one blocking `XREAD`
//! over all of them on a connection of its own (a script cannot block, and
//! a blocking read per stream would take a connection per stream). A stream
//! registers the id of its newest entry; when an entry arrives past it, the
//! stream is woken and reads it (fenced). Streams that register while a
//! read blocks join the next one, at most [`BLOCK`] later.

use crate::streams::Redis;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long one wait blocks: also how late a newly dry stream joins it.
const BLOCK: Duration = Duration::from_millis(200);

/// The dry streams of one worker.
#[derive(Default)]
pub(super) struct Waiter {
    /// Stream → (id waited after, who to wake).
    dry: Mutex<HashMap<String, (String, Arc<Notify>)>>,
    added: Notify,
}

impl Waiter {
    /// Registers `stream` as dry after `after`; returns what is notified
    /// when an entry arrives.
    pub(super) fn wait(&self, stream: &str, after: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.dry.lock().expect("waiter lock").insert(stream.to_string(), (after.to_string(), notify.clone()));
        self.added.notify_one();
        notify
    }

    /// Forgets `stream` (it read again, or stopped).
    pub(super) fn forget(&self, stream: &str) {
        self.dry.lock().expect("waiter lock").remove(stream);
    }

    /// Waits for entries on the dry streams until `stop`.
    pub(super) async fn run(self: Arc<Self>, redis: Redis, stop: CancellationToken) {
        let mut conn = None;
        while !stop.is_cancelled() {
            let streams: Vec<(String, String)> = self
                .dry
                .lock()
                .expect("waiter lock")
                .iter()
                .map(|(s, (after, _))| (s.clone(), after.clone()))
                .collect();
            if streams.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.added.notified() => continue,
                }
            }
            if conn.is_none() {
                conn = redis.connect(BLOCK).await.ok();
            }
            let Some(c) = &mut conn else {
                tokio::time::sleep(BLOCK).await;
                continue;
            };
            let woken = tokio::select! {
                _ = stop.cancelled() => return,
                woken = c.wait_for_entries(&streams, BLOCK) => woken,
            };
            match woken {
                Ok(woken) => {
                    let mut dry = self.dry.lock().expect("waiter lock");
                    for stream in woken {
                        if let Some((_, notify)) = dry.remove(&stream) {
                            notify.notify_one();
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!("waiting for entries on owned streams failed (retrying): {error:#}");
                    conn = None;
                    tokio::time::sleep(BLOCK).await;
                }
            }
        }
    }
}
