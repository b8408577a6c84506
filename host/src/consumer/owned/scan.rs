//! The scan for streams to take over, every heartbeat (and at once when a
//! lease is seen expiring): the assignments pending in the service's group
//! whose stream's lease is free — its worker died, stalled or stopped — are
//! taken, up to the cap. Pub/sub can drop expiry events; the scan cannot
//! miss a stream. What each assignment names is read once and remembered.

use super::assignment::{self, Assignment};
use super::{Worker, lease_key};
use crate::handler::HandlerSource;
use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Pending assignments looked at per page.
const PAGE: usize = 1000;

/// What the scan remembers between runs.
#[derive(Default)]
pub(super) struct Scan {
    /// Assignment id → what it assigns (`None`: not an assignment).
    names: HashMap<String, Option<Assignment>>,
    /// Trimmed assignments already warned about.
    trimmed: HashSet<String>,
}

impl<S: HandlerSource> Worker<S> {
    /// Takes the streams whose lease is free, up to the cap.
    pub(super) async fn scan(&mut self) -> Result<()> {
        let s = self.shared.settings.clone();
        let mut conn = self.connection().await?;
        // Not the ones just read: their reader is taking their leases now.
        let idle = self.own.heartbeat.min(Duration::from_secs(1));
        let (mut start, mut seen) = ("-".to_string(), HashSet::new());
        loop {
            let rows = conn.pending_after(&s.stream, &s.group, idle, &start, PAGE).await?;
            let Some(last) = rows.last() else { break };
            start = last.id.clone();
            let full = rows.len() == PAGE;
            let running: HashSet<String> = self.running_assignments();
            let mut found = Vec::new();
            for row in rows.into_iter().filter(|row| !running.contains(&row.id)) {
                seen.insert(row.id.clone());
                if !self.scan.names.contains_key(&row.id) {
                    let named = match conn.range(&s.stream, &row.id, &row.id, Some(1)).await?.pop() {
                        Some(entry) => match assignment::parse(&entry) {
                            Ok(a) => Some(Some(a)),
                            Err(problem) => {
                                self.reject(&mut conn, &entry, &problem).await?;
                                Some(None)
                            }
                        },
                        None => None,
                    };
                    match named {
                        Some(named) => {
                            self.scan.names.insert(row.id.clone(), named);
                        }
                        None => {
                            // Its stream cannot be told: left pending (not acked:
                            // a live worker may own it), said once.
                            if self.scan.trimmed.insert(row.id.clone()) {
                                tracing::warn!(assignments = %s.stream, id = %row.id,
                                    "assignment trimmed from the assignment stream: its data stream cannot be told, \
                                     so nobody can take it over (do not trim the assignment stream)");
                            }
                            continue;
                        }
                    }
                }
                if let Some(Some(a)) = self.scan.names.get(&row.id) {
                    found.push(a.clone());
                }
            }
            let keys: Vec<String> = found.iter().map(|a| lease_key(&a.stream)).collect();
            let holders = conn.lease_holders(&keys).await?;
            for (assignment, (holder, _)) in found.into_iter().zip(holders) {
                if holder.is_some() || self.is_owned(&assignment.stream) {
                    continue;
                }
                if self.full() {
                    return Ok(());
                }
                let stream = assignment.stream.clone();
                // Claimed even when pending for this worker: it may have been
                // taken over and finished meanwhile.
                if let Err(error) = self.take(&mut conn, assignment, true).await {
                    tracing::warn!(%stream, "taking the stream over failed: {error:#}");
                }
            }
            if !full {
                break;
            }
        }
        self.scan.names.retain(|id, _| seen.contains(id));
        self.scan.trimmed.retain(|id| seen.contains(id));
        Ok(())
    }
}
