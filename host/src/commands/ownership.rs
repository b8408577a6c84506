//! `host assign` and `host owners`: stream ownership mode's tools. `assign`
//! appends an assignment in the seed library's format (what any producer
//! written for it does); `owners` lists the assignments in progress (pending
//! in the service's group): each data stream, the worker whose lease holds
//! it and for how long still, and its progress (pending, lag, last entry
//! delivered to the service's group).

use crate::config::OwnershipConfig;
use crate::consumer::owned::assignment::{self, FIELD};
use crate::consumer::owned::lease_key;
use crate::streams::Redis;
use anyhow::Result;
use std::fmt::Write as _;
use std::time::Duration;

/// Assignments listed at most.
const MAX_LISTED: usize = 10_000;

/// One assignment in progress.
#[derive(Debug, serde::Serialize)]
struct Owner {
    stream: String,
    assignment: String,
    /// The lease holder; none while no worker holds it (waiting for one).
    owner: Option<String>,
    lease_ms_left: Option<u64>,
    pending: Option<u64>,
    lag: Option<u64>,
    last_delivered_id: Option<String>,
}

/// Appends the assignment; returns its id.
pub async fn assign(config: &OwnershipConfig) -> Result<String> {
    let (stream, info) = config.assign.as_ref().expect("assign has a stream");
    let info: serde_json::Value = serde_json::from_str(info)?;
    let mut conn = Redis::open(&config.redis_url)?.connect(Duration::ZERO).await?;
    let fields = vec![(FIELD.as_bytes().to_vec(), assignment::message(stream, &info).into_bytes())];
    let id = conn.add(&config.assignments, None, &fields).await?;
    Ok(format!("{id}\n"))
}

/// Lists the assignments in progress.
pub async fn owners(config: &OwnershipConfig) -> Result<String> {
    let (key, service) = (&config.assignments, &config.service);
    let mut conn = Redis::open(&config.redis_url)?.connect(Duration::ZERO).await?;
    let rows = match conn.pending(key, service, None, MAX_LISTED).await {
        Ok(rows) => rows,
        Err(error) if crate::streams::is_missing_group(&error) => {
            anyhow::bail!("no group {service:?} on {key:?}: no worker of that service has started yet")
        }
        Err(error) => return Err(error),
    };
    let mut owners = Vec::new();
    for row in rows {
        let Some(entry) = conn.range(key, &row.id, &row.id, Some(1)).await?.pop() else { continue };
        let Ok(a) = assignment::parse(&entry) else { continue };
        owners.push(Owner {
            stream: a.stream,
            assignment: a.id,
            owner: None,
            lease_ms_left: None,
            pending: None,
            lag: None,
            last_delivered_id: None,
        });
    }
    let keys: Vec<String> = owners.iter().map(|o| lease_key(&o.stream)).collect();
    for (o, (holder, left)) in owners.iter_mut().zip(conn.lease_holders(&keys).await?) {
        o.owner = holder;
        o.lease_ms_left = left.map(|d| d.as_millis() as u64);
        if let Ok(groups) = conn.groups(&o.stream).await
            && let Some(g) = groups.into_iter().find(|g| &g.name == service)
        {
            (o.pending, o.lag, o.last_delivered_id) = (Some(g.pending), g.lag, Some(g.last_delivered_id));
        }
    }
    if config.json {
        return Ok(owners.iter().map(|o| serde_json::to_string(o).expect("plain data") + "\n").collect());
    }
    let mut out = String::new();
    let owned = owners.iter().filter(|o| o.owner.is_some()).count();
    writeln!(
        out,
        "{} assignments in progress on {key} (service {service}): {owned} owned, {} waiting for a worker",
        owners.len(),
        owners.len() - owned
    )?;
    if owners.is_empty() {
        return Ok(out);
    }
    writeln!(
        out,
        "{:<32} {:<24} {:>9} {:>8} {:>6}  {:<20} ASSIGNMENT",
        "STREAM", "OWNER", "LEASE-MS", "PENDING", "LAG", "LAST-DELIVERED"
    )?;
    let shown = |v: &Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    for o in &owners {
        writeln!(
            out,
            "{:<32} {:<24} {:>9} {:>8} {:>6}  {:<20} {}",
            o.stream,
            o.owner.as_deref().unwrap_or("-"),
            shown(&o.lease_ms_left),
            shown(&o.pending),
            shown(&o.lag),
            o.last_delivered_id.as_deref().unwrap_or("-"),
            o.assignment
        )?;
    }
    Ok(out)
}
