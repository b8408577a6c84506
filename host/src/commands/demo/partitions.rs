//! The demo over a partitioned stream (`--partitions N`): what the page
//! shows for "the stream" is every partition's, merged (lengths and pending
//! counts summed, the newest entries and dead letters of all partitions
//! newest first), and the partitions panel shows each partition: its
//! stream, slot, length, and each group's pending count and lag there.

use crate::commands::demo::Demo;
use crate::entry::Entry;
use crate::streams::{ConsumerInfo, GroupInfo, PendingEntry, StreamInfo};
use serde_json::{Value, json};

/// An entry id as numbers, for comparing ids across streams.
pub(super) fn id_of(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// `XINFO STREAM` of several streams as one: lengths summed, the oldest
/// first id, the newest last ids.
pub(super) fn add_info(sum: &mut StreamInfo, one: &StreamInfo) {
    sum.length += one.length;
    sum.groups = sum.groups.max(one.groups);
    if id_of(&one.last_generated_id) > id_of(&sum.last_generated_id) {
        sum.last_generated_id = one.last_generated_id.clone();
    }
    if let Some(first) = &one.first_id
        && sum.first_id.as_ref().is_none_or(|f| id_of(first) < id_of(f))
    {
        sum.first_id = Some(first.clone());
    }
    if let Some(last) = &one.last_id
        && sum.last_id.as_ref().is_none_or(|l| id_of(last) > id_of(l))
    {
        sum.last_id = Some(last.clone());
    }
    sum.entries_added = match (sum.entries_added, one.entries_added) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
}

/// A group over several streams: pending and lag summed, the newest last
/// delivered id (none when no stream has the group).
pub(super) fn add_group(sum: &mut Option<GroupInfo>, one: &GroupInfo) {
    match sum {
        None => *sum = Some(one.clone()),
        Some(sum) => {
            sum.pending += one.pending;
            sum.lag = sum.lag.zip(one.lag).map(|(a, b)| a + b);
            sum.consumers = sum.consumers.max(one.consumers);
            if id_of(&one.last_delivered_id) > id_of(&sum.last_delivered_id) {
                sum.last_delivered_id = one.last_delivered_id.clone();
            }
        }
    }
}

/// Consumers of one name across streams as one: pending summed, the least idle.
pub(super) fn add_consumers(sum: &mut Vec<ConsumerInfo>, more: Vec<ConsumerInfo>) {
    for consumer in more {
        match sum.iter_mut().find(|c| c.name == consumer.name) {
            Some(known) => {
                known.pending += consumer.pending;
                known.idle_ms = known.idle_ms.min(consumer.idle_ms);
            }
            None => sum.push(consumer),
        }
    }
}

/// The `count` newest of `entries` (several streams' newest), newest first.
pub(super) fn newest(mut entries: Vec<Entry>, count: usize) -> Vec<Entry> {
    entries.sort_by_key(|e| std::cmp::Reverse(id_of(&e.id)));
    entries.truncate(count);
    entries
}

/// The `count` oldest pending entries of several streams, oldest first.
pub(super) fn oldest_pending(mut entries: Vec<PendingEntry>, count: usize) -> Vec<PendingEntry> {
    entries.sort_by_key(|e| id_of(&e.id));
    entries.truncate(count);
    entries
}

impl Demo {
    /// The partitions panel: per partition its stream, slot, length, dead
    /// letters, and each group's pending count and lag; `null` when the
    /// stream is not partitioned.
    pub(super) async fn partitions(&self) -> anyhow::Result<Value> {
        if self.config.partitions.is_none() {
            return Ok(Value::Null);
        }
        let mut conn = self.admin();
        let mut rows = Vec::new();
        for (stream, dead_letter) in self.dead_letters_of() {
            let info = conn.stream_info(&stream).await.unwrap_or_default();
            let groups: Vec<Value> = conn
                .groups(&stream)
                .await
                .unwrap_or_default()
                .iter()
                .map(|g| json!({"name": g.name, "pending": g.pending, "lag": g.lag}))
                .collect();
            let dead = conn.length(&dead_letter).await.unwrap_or(0);
            rows.push(json!({"stream": stream, "slot": crate::keys::slot(&stream), "length": info.length,
                "groups": groups, "dead_letters": dead}));
        }
        Ok(json!(rows))
    }
}
