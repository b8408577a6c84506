//! `host produce`: append one entry to a stream (`XADD … MAXLEN ~ N`), or
//! to the partition of a partitioned stream its key field picks.

use crate::config::ProduceConfig;
use crate::keys::{partition_name, partition_of};
use crate::streams::Redis;
use anyhow::{Result, anyhow};
use std::time::Duration;

/// Appends the entry and returns its id (after `STREAM:{p} ` when partitioned).
pub async fn produce(config: &ProduceConfig) -> Result<String> {
    let redis = Redis::open(&config.redis_url)?;
    let mut conn = redis.connect(Duration::ZERO).await?;
    let Some((partitions, field)) = &config.partition else {
        return conn.add(&config.stream, config.maxlen, &config.fields).await;
    };
    let value = config.fields.iter().find(|(name, _)| name == field).map(|(_, value)| value).ok_or_else(|| {
        anyhow!(
            "the entry has no field {:?} to pick its partition by (--partition-key): add {0}=VALUE",
            String::from_utf8_lossy(field)
        )
    })?;
    let stream = partition_name(&config.stream, partition_of(value, *partitions));
    let id = conn.add(&stream, config.maxlen, &config.fields).await?;
    Ok(format!("{stream} {id}"))
}
