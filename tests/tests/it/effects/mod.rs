//! Effects committed with the ack (contract 0.1.1): applied once when the
//! verdict is ok, never for retry / reject / trap / deadline / over the
//! caps; not applied when a peer owns the entry; nothing half-applied when
//! one write cannot be (WRONGTYPE, a non-integer counter); nothing applied
//! when the connection is cut mid-commit; keys and streams confined to the
//! grants; per entry in the batch world; and exact totals after kill -9.
//!
//! `delivery.rs` runs hosts with the chaos plugins, `commit.rs` attacks the
//! commit step directly, `kill.rs` kills hosts mid-stream.

mod commit;
mod delivery;
mod kill;

use crate::support::*;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

pub(super) fn fields(pairs: &[(&'static str, String)]) -> Vec<(&'static str, Vec<u8>)> {
    pairs.iter().map(|(n, v)| (*n, v.clone().into_bytes())).collect()
}

pub(super) async fn get(conn: &mut MultiplexedConnection, key: &str) -> Option<String> {
    conn.get(key).await.unwrap()
}

/// Waits until `stream`'s group `g` has read everything, holds `pending`
/// entries and `dead` dead letters.
pub(super) async fn settled(conn: &mut MultiplexedConnection, stream: &str, pending: u64, dead: u64) {
    let start = std::time::Instant::now();
    loop {
        let info = group_info(conn, stream, "g").await;
        let dlq = xlen(conn, &format!("{stream}:dlq")).await;
        if info.as_ref().is_some_and(|i| i.lag == Some(0) && i.pending == pending) && dlq == dead {
            return;
        }
        assert!(start.elapsed() < MINUTE, "not settled: {info:?}, {dlq} dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The dead letters of `stream`: original entry id → `dlq:error`.
pub(super) async fn dead_errors(conn: &mut MultiplexedConnection, stream: &str) -> HashMap<String, String> {
    dead_letters(conn, stream)
        .await
        .iter()
        .map(|d| {
            (d.meta("dlq:id").unwrap_or_default().to_string(), d.meta("dlq:error").unwrap_or_default().to_string())
        })
        .collect()
}
