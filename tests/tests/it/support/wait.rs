//! Waiting until something holds: [`wait_until!`](crate::wait_until) for
//! async conditions, [`poll`] for blocking ones, and [`wait_drained`] for a
//! consumer group that has read and settled a stream.

use super::{GroupInfo, group_info};
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

/// Polls an async condition every 20 ms; fails with `what` after `limit`.
#[macro_export]
macro_rules! wait_until {
    ($limit:expr, $what:expr, $cond:expr) => {{
        let start = std::time::Instant::now();
        loop {
            if $cond {
                break;
            }
            assert!(start.elapsed() < $limit, "timed out after {:?} waiting for {}", $limit, $what);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// Polls `cond` every 50 ms until it holds, blocking the thread; fails with `what` after `limit`.
pub fn poll(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `group` has read every entry of `stream` (lag 0) and holds
/// exactly `pending` of them.
pub async fn wait_drained(conn: &mut MultiplexedConnection, stream: &str, group: &str, pending: u64) -> GroupInfo {
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    loop {
        let info = group_info(conn, stream, group).await;
        if let Some(info) = &info
            && info.lag == Some(0)
            && info.pending == pending
        {
            return info.clone();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for group {group} to drain {stream}: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
