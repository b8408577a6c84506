//! Renewing a worker's leases, on a task and a connection of its own: a
//! slow scan or a busy worker loop never delays a renewal past the TTL. A
//! stream whose lease a renewal finds gone (expired, or another worker's)
//! is disowned: its task is told to stop at once.

use super::Owned;
use crate::streams::Redis;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Renews the leases in `owned` every `heartbeat` for `ttl`, holding
/// `holder`, until `stop`; `labels` (assignment stream, service) for metrics.
pub(super) async fn renew_leases(
    redis: Redis,
    owned: Owned,
    (holder, heartbeat, ttl): (String, Duration, Duration),
    labels: (String, String),
    stop: CancellationToken,
) {
    let mut conn = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(heartbeat) => {}
        }
        let held: Vec<(String, String, CancellationToken)> = owned
            .lock()
            .expect("owned lock")
            .iter()
            .map(|(stream, h)| (stream.clone(), h.lease.clone(), h.disowned.clone()))
            .collect();
        if held.is_empty() {
            continue;
        }
        if conn.is_none() {
            conn = redis.connect(Duration::ZERO).await.ok();
        }
        let Some(c) = &mut conn else { continue };
        let keys: Vec<String> = held.iter().map(|(_, lease, _)| lease.clone()).collect();
        let started = Instant::now();
        let renewed = c.renew_leases(&keys, &holder, ttl).await;
        crate::metrics::global().lease_renewal(&labels.0, &labels.1, started.elapsed());
        match renewed {
            Ok(renewed) => {
                failing = false;
                for ((stream, _, disowned), kept) in held.iter().zip(renewed) {
                    if !kept && !disowned.is_cancelled() {
                        tracing::warn!(%stream, %holder,
                            "disowned: the lease is gone (it expired, or another worker holds it): stopping the stream");
                        disowned.cancel();
                    }
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!("renewing {} leases failed (retrying every heartbeat): {error:#}", keys.len());
                }
                conn = None;
            }
        }
    }
}
