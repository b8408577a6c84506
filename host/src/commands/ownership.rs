//! `host assign` and `host owners`: stream ownership mode's tools. `assign`
//! appends an assignment in the seed library's format (what any producer
//! written for it does); `owners` lists the assignments in progress (pending
//! in the service's group): each data stream, the worker whose lease holds
//! it and for how long still, and its progress (pending, lag, last entry
//! delivered to the service's group).

use crate::config::OwnershipConfig;
use crate::consumer::owned::assignment::{self, FIELD};
use crate::consumer::owned::{lease_key, worker_of};
use crate::streams::{Connection, Redis};
use anyhow::Result;
use std::fmt::Write as _;
use std::time::Duration;

/// Assignments listed at most.
const MAX_LISTED: usize = 10_000;

/// One assignment in progress.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Owner {
    /// The data stream.
    pub stream: String,
    /// Its assignment's id.
    pub assignment: String,
    /// The lease holder; none while no worker holds it (waiting for one).
    pub owner: Option<String>,
    /// The lease's time left.
    pub lease_ms_left: Option<u64>,
    /// Entries of the service's group delivered and not acked.
    pub pending: Option<u64>,
    /// Entries not yet delivered to the group.
    pub lag: Option<u64>,
    /// The last entry delivered to the group.
    pub last_delivered_id: Option<String>,
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

/// The assignments of `service` in progress on `key` (pending in its
/// group): stream, lease holder and time left, progress. Also the demo's
/// sessions panel.
pub async fn owners_of(conn: &mut Connection, key: &str, service: &str) -> Result<Vec<Owner>> {
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
        o.owner = holder.as_deref().map(|h| worker_of(h).to_string());
        o.lease_ms_left = left.map(|d| d.as_millis() as u64);
        if let Ok(groups) = conn.groups(&o.stream).await
            && let Some(g) = groups.into_iter().find(|g| g.name == service)
        {
            (o.pending, o.lag, o.last_delivered_id) = (Some(g.pending), g.lag, Some(g.last_delivered_id));
        }
    }
    Ok(owners)
}

/// Lists the assignments in progress.
pub async fn owners(config: &OwnershipConfig) -> Result<String> {
    let (key, service) = (&config.assignments, &config.service);
    let mut conn = Redis::open(&config.redis_url)?.connect(Duration::ZERO).await?;
    let owners = owners_of(&mut conn, key, service).await?;
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
