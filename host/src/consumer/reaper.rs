//! Finding entries that were delivered but never settled: a restarted
//! consumer's own pending list (read once at start-up), and the group's idle
//! entries (claimed periodically with `XAUTOCLAIM`). Both come back with the
//! delivery counts Redis keeps, ready for the same path as fresh entries.

use super::{Consumer, Step};
use crate::handler::HandlerSource;
use crate::streams::{Batch, Connection};
use anyhow::Result;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pages one reap tick may claim: bounds the time a huge pending list can
/// keep a consumer from reading new entries.
pub const MAX_PAGES_PER_TICK: usize = 10;

/// Where a reaper is and what it claims.
pub struct Reaper<'a> {
    /// Stream key.
    pub stream: &'a str,
    /// Consumer group.
    pub group: &'a str,
    /// Consumer claiming (and reading) for itself.
    pub consumer: &'a str,
    /// Page size.
    pub count: usize,
}

impl Reaper<'_> {
    /// One page of this consumer's own pending entries above `after`
    /// (`XREADGROUP … after`); the next `after` is the last id returned.
    /// An empty batch means the pending list is drained.
    pub async fn own_pending(&self, conn: &mut Connection, after: &str) -> Result<(Batch, String)> {
        let mut batch = conn.read_own_pending(self.stream, self.group, self.consumer, after, self.count).await?;
        let last = batch.entries.iter().map(|e| &e.id).chain(&batch.trimmed).max_by(|a, b| cmp_ids(a, b));
        let next = last.cloned().unwrap_or_else(|| after.to_string());
        self.fill_counts(conn, &mut batch).await?;
        Ok((batch, next))
    }

    /// Claims one page of entries idle for `min_idle` (`XAUTOCLAIM` from
    /// `cursor`), advancing the cursor (`0-0` once the scan wrapped around).
    pub async fn claim_page(&self, conn: &mut Connection, min_idle: Duration, cursor: &mut String) -> Result<Batch> {
        let (next, mut batch) =
            conn.autoclaim(self.stream, self.group, self.consumer, min_idle, cursor, self.count).await?;
        *cursor = next;
        self.fill_counts(conn, &mut batch).await?;
        Ok(batch)
    }

    /// Sets each entry's delivery count to what Redis says (`XPENDING`). An
    /// entry no longer pending (acked or claimed away meanwhile) is dropped.
    async fn fill_counts(&self, conn: &mut Connection, batch: &mut Batch) -> Result<()> {
        let ids: Vec<&str> = batch.entries.iter().map(|e| e.id.as_str()).collect();
        let counts = conn.delivery_counts(self.stream, self.group, &ids).await?;
        let mut counts = counts.into_iter();
        batch.entries.retain_mut(|entry| match counts.next().flatten() {
            Some(n) => {
                entry.delivery_count = n;
                true
            }
            None => false,
        });
        Ok(())
    }
}

/// Orders stream ids (`MS-SEQ`) numerically.
pub fn cmp_ids(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse::<u64>().unwrap_or(0), seq.parse::<u64>().unwrap_or(0))
    };
    parse(a).cmp(&parse(b))
}

impl<S: HandlerSource> Consumer<S> {
    /// Claims entries of the group idle for `min_idle` to this consumer
    /// (XAUTOCLAIM pages from `cursor`, at most [`MAX_PAGES_PER_TICK`],
    /// stopping when the scan wraps around) and handles them; returns how many.
    pub(super) async fn claim_pages(
        &mut self,
        reaper: &Reaper<'_>,
        conn: &Connection,
        cursor: &mut String,
        shutdown: &CancellationToken,
    ) -> Step<u64> {
        let mut claimed = 0;
        for _ in 0..MAX_PAGES_PER_TICK {
            let batch = reaper.claim_page(&mut conn.clone(), self.settings.min_idle, cursor).await?;
            let n = batch.entries.len() as u64;
            claimed += n;
            self.stats.claimed += n;
            crate::metrics::global().claimed(reaper.stream, reaper.group, n);
            self.process(batch, shutdown).await?;
            if cursor == "0-0" || shutdown.is_cancelled() {
                break;
            }
        }
        Ok(claimed)
    }

    /// Claims every entry of the group idle for `min_idle` to this consumer
    /// now (from the start of the pending list), on request; returns how many.
    pub(super) async fn claim_now(
        &mut self,
        reaper: &Reaper<'_>,
        conn: &Connection,
        shutdown: &CancellationToken,
    ) -> Step<u64> {
        let claimed = self.claim_pages(reaper, conn, &mut "0-0".to_string(), shutdown).await?;
        tracing::info!(consumer = %self.name, stream = %reaper.stream, group = %reaper.group,
            "claimed {claimed} entries idle for {} ms or more (on request)", self.settings.min_idle.as_millis());
        Ok(claimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_numerically() {
        assert_eq!(cmp_ids("9-0", "10-0"), std::cmp::Ordering::Less);
        assert_eq!(cmp_ids("10-2", "10-10"), std::cmp::Ordering::Less);
    }
}
