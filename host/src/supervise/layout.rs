//! The key layout a group needs on a Redis Cluster: every key written in one
//! script with a stream's ack shares that stream's slot (a script or `MULTI`
//! may touch one slot only, and a refused one must never half-apply).
//! Checked before any consumer starts; a layout that breaks it is refused
//! with the keys, their slots and what to change.

use crate::keys::{cluster_dead_letter, companion, same_slot, slot};
use crate::settings::GroupSettings;
use crate::streams::Redis;
use anyhow::{Result, bail};

/// `settings` (one stream's) as run on `redis`: unchanged on one server;
/// on a cluster with the default dead-letter key moved into the stream's
/// slot ([`cluster_dead_letter`]), and refused when a dead-letter key, or a
/// key or stream granted to the plugin's effects by its exact name, lies in
/// another slot.
pub async fn for_redis(redis: &Redis, mut settings: GroupSettings) -> Result<GroupSettings> {
    if !redis.is_cluster().await? {
        return Ok(settings);
    }
    let stream = settings.stream.clone();
    let dead_letter = cluster_dead_letter(&stream, &settings.dead_letter);
    if dead_letter != settings.dead_letter {
        tracing::info!(%stream, dead_letter = %dead_letter,
            "on a Redis Cluster the default dead-letter stream is {dead_letter} (the stream's slot)");
        settings.dead_letter = dead_letter;
    }
    check(&stream, &settings.dead_letter, "dead-letter stream", "--dead-letter (dead_letter in a sidecar)")?;
    let grants = settings.limits.grants.clone();
    for key in grants.keys.iter().filter(|k| !k.contains('*')) {
        check(&stream, key, "granted key", "--grant-key ([grant] keys in a sidecar)")?;
    }
    for key in grants.streams.iter().filter(|k| !k.contains('*')) {
        check(&stream, key, "granted stream", "--grant-stream ([grant] streams in a sidecar)")?;
    }
    settings.limits.effects_slot = Some(slot(&stream));
    Ok(settings)
}

fn check(stream: &str, key: &str, role: &str, setting: &str) -> Result<()> {
    if same_slot(stream, key) {
        return Ok(());
    }
    let example = companion(stream, key.rsplit(':').next().unwrap_or("dlq"));
    let fix = if same_slot(stream, &example) {
        format!("change {setting} to a key with the stream's hash tag, e.g. {example:?}")
    } else {
        // A name with a stray `}` cannot be a hash tag of its own.
        format!("give the stream a hash tag ({{…}}) and {setting} the same one")
    };
    bail!(
        "on a Redis Cluster the {role} {key:?} must share the hash slot of stream {stream:?} (it is written in one \
         script with the stream's XACK), but {key:?} is in slot {} and {stream:?} in slot {}: {fix}",
        slot(key),
        slot(stream),
    )
}
