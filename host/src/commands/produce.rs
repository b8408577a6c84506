//! `host produce`: append one entry to a stream (`XADD … MAXLEN ~ N`).

use crate::config::ProduceConfig;
use crate::streams::Redis;
use anyhow::Result;
use std::time::Duration;

/// Appends the entry and returns its id.
pub async fn produce(config: &ProduceConfig) -> Result<String> {
    let redis = Redis::open(&config.redis_url)?;
    let mut conn = redis.connect(Duration::ZERO).await?;
    conn.add(&config.stream, config.maxlen, &config.fields).await
}
