//! Handover: a leaving consumer gives its pending entries to a live peer and
//! deletes itself from the group, so nothing waits in a dead consumer's PEL.

use crate::streams::{Connection, Deleted};
use anyhow::Result;
use std::time::Duration;

/// A peer that has not read or claimed for this long is not trusted to be alive.
const LIVE_WITHIN: Duration = Duration::from_secs(30);
/// Pending entries moved per XCLAIM.
const PAGE: usize = 1000;
/// Rounds of moving and deleting before giving up (each round only repeats
/// when entries arrived while the last one ran).
const ROUNDS: usize = 3;

/// What a handover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// All pending entries went to `peer` and the consumer was deleted.
    Done {
        /// The peer that received them.
        peer: Option<String>,
        /// How many entries moved.
        moved: usize,
        /// Pending ids Redis dropped instead of moving them: their payload
        /// was trimmed (the caller records them as audits).
        trimmed: Vec<String>,
    },
    /// The consumer's name is leased by another holder now (a successor
    /// under the same name): its pending list is that holder's, so the
    /// consumer was not deleted.
    NameTaken {
        /// How many entries moved before that was found.
        moved: usize,
        /// Pending ids Redis dropped (payload trimmed), as in `Done`.
        trimmed: Vec<String>,
    },
    /// No live peer: the entries stay pending (the group's reapers take
    /// them after `--min-idle-ms`) and the consumer is kept.
    NoPeer {
        /// How many entries stay.
        pending: usize,
        /// Pending ids Redis dropped (payload trimmed) before that was found.
        trimmed: Vec<String>,
    },
}

/// Hands `consumer`'s pending entries to the most recently active other
/// consumer of the group that is not also leaving and is alive: in `alive`
/// (known to run, e.g. in this process) or active within [`LIVE_WITHIN`]
/// (Redis 7.0 counts idle time from the last delivery, so a quiet but
/// healthy peer can look idle). The entries arrive already idle for
/// `min_idle` so that the peer's reaper takes them on its next tick (the
/// handover itself counts no delivery). Then deletes `consumer`, only while
/// `lease` (its name's lease key and this holder's token) is still held.
#[allow(clippy::too_many_arguments)]
pub async fn hand_over(
    conn: &mut Connection,
    stream: &str,
    group: &str,
    consumer: &str,
    leaving: &[String],
    alive: &[String],
    min_idle: Duration,
    lease: (&str, &str),
) -> Result<Handover> {
    let peers = conn.consumers(stream, group).await?;
    let peer = peers
        .iter()
        .filter(|c| c.name != consumer && !leaving.contains(&c.name))
        .filter(|c| alive.contains(&c.name) || c.idle_ms < LIVE_WITHIN.as_millis() as u64)
        .min_by_key(|c| (!alive.contains(&c.name), c.idle_ms))
        .map(|c| c.name.clone());
    let mut moved = 0;
    let mut trimmed = Vec::new();
    // An entry can still arrive after the pending list looked empty (an
    // abandoned read served after all): DELCONSUMER refuses then, and the
    // handover goes round again.
    for _ in 0..ROUNDS {
        loop {
            let ids: Vec<String> =
                conn.pending(stream, group, Some(consumer), PAGE).await?.into_iter().map(|p| p.id).collect();
            if ids.is_empty() {
                break;
            }
            let Some(peer) = &peer else {
                return Ok(Handover::NoPeer { pending: ids.len(), trimmed });
            };
            let Some(claimed) = conn.hand_to(stream, group, peer, &ids, min_idle, lease).await? else {
                return Ok(Handover::NameTaken { moved, trimmed });
            };
            // Redis 7's XCLAIM drops pending ids whose payload is gone and does
            // not return them: those are the ids it did not move.
            let dropped: Vec<String> = ids.iter().filter(|id| !claimed.contains(id)).cloned().collect();
            if claimed.is_empty() && dropped.is_empty() {
                return Ok(Handover::NoPeer { pending: ids.len(), trimmed });
            }
            moved += claimed.len();
            trimmed.extend(dropped);
        }
        // DELCONSUMER drops whatever is still pending: the script refuses
        // unless the pending list is empty and the name still ours.
        match conn.delete_own_consumer(stream, group, consumer, lease.0, lease.1).await? {
            Deleted::Done => return Ok(Handover::Done { peer, moved, trimmed }),
            Deleted::NotLeased => return Ok(Handover::NameTaken { moved, trimmed }),
            Deleted::StillPending => continue,
        }
    }
    let pending = conn.pending(stream, group, Some(consumer), PAGE).await?.len();
    Ok(Handover::NoPeer { pending, trimmed })
}
