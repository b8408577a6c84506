//! The analytics panel: the totals the `analytics` plugin keeps — effects
//! committed with its acks — beside the same totals recomputed from the
//! stream, the group's pending list and its dead letters, all read at one
//! instant. Every entry the group has been delivered is either acked
//! (counted once), pending (not counted yet) or dead-lettered (never
//! counted), so the two must match whatever the drills did.

use crate::commands::demo::actions::Action;
use crate::commands::demo::partitions::id_of;
use crate::commands::demo::{Demo, TOTALS_GROUP as GROUP, paid_key, totals_key};
use crate::dead_letter::DeadLetter;
use crate::entry::Entry;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// The order's type and amount in cents, as the analytics plugin reads them
/// (none: an entry it rejects).
fn order(entry: &Entry) -> Option<(String, i64)> {
    let text = |name| std::str::from_utf8(entry.field(name)?).ok().filter(|v| !v.is_empty());
    let kind = text("type")?;
    let (units, fraction) = text("amount")?.split_once('.').unwrap_or((text("amount")?, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || (!fraction.is_empty() && !digits(fraction)) || fraction.len() > 2 {
        return None;
    }
    let cents = units.parse::<i64>().ok()?.checked_mul(100)? + format!("{fraction:0<2}").parse::<i64>().unwrap_or(0);
    Some((kind.to_string(), cents))
}

impl Demo {
    /// The analytics panel's document.
    /// On a partitioned stream, each partition's (its own totals, read at
    /// one instant) summed.
    pub async fn analytics(&self) -> Action<Value> {
        let (mut expected, mut expected_paid, mut in_flight) = (BTreeMap::<String, i64>::new(), HashSet::new(), 0);
        let (mut kept, mut sources, mut dead_count, mut trimmed) = (BTreeMap::<String, i64>::new(), Vec::new(), 0, 0);
        for (stream, dlq) in self.dead_letters_of() {
            let (totals, paid) = (totals_key(&stream), paid_key(&stream));
            let snap = self.admin().totals_snapshot(&stream, GROUP, &dlq, &totals, &paid).await?;
            let dead: HashSet<String> = snap
                .dead
                .into_iter()
                .filter_map(|entry| DeadLetter::parse(entry).ok())
                .filter(|d| d.meta("dlq:group") == Some(GROUP))
                .filter_map(|d| d.meta("dlq:id").map(str::to_string))
                .collect();
            dead_count += dead.len();
            let pending: HashSet<&str> = snap.pending.iter().map(String::as_str).collect();
            let delivered = snap.group.as_ref().map_or((0, 0), |g| id_of(&g.last_delivered_id));
            for entry in &snap.entries {
                if id_of(&entry.id) > delivered || dead.contains(&entry.id) {
                    continue;
                }
                if pending.contains(entry.id.as_str()) {
                    in_flight += 1;
                    continue;
                }
                if let Some((kind, cents)) = order(entry) {
                    *expected.entry(format!("count:{kind}")).or_default() += 1;
                    *expected.entry(format!("revenue:{kind}")).or_default() += cents;
                    if kind == "order.paid" {
                        expected_paid.insert(entry.id.clone());
                    }
                }
            }
            for (key, value) in snap.totals {
                *kept.entry(key).or_default() += value;
            }
            sources.extend(
                snap.paid.iter().filter_map(|e| e.field("source")).map(|s| String::from_utf8_lossy(s).into_owned()),
            );
            trimmed += snap.info.entries_added.unwrap_or(snap.info.length).saturating_sub(snap.info.length);
        }
        let (totals, paid) = match self.config.partitions {
            Some(_) => {
                let any = crate::keys::partition_name(&self.config.stream, 0).replace("{0}", "{p}");
                (totals_key(&any), paid_key(&any))
            }
            None => (totals_key(&self.config.stream), paid_key(&self.config.stream)),
        };
        let unique: HashSet<&String> = sources.iter().collect();
        let duplicates = sources.len() - unique.len();
        let mut types: Vec<String> =
            kept.keys().chain(expected.keys()).filter_map(|k| k.split_once(':')).map(|(_, t)| t.to_string()).collect();
        types.sort();
        types.dedup();
        let rows: Vec<Value> = types
            .iter()
            .map(|t| {
                let get = |m: &BTreeMap<String, i64>, what: &str| m.get(&format!("{what}:{t}")).copied().unwrap_or(0);
                json!({
                    "type": t,
                    "count": get(&kept, "count"),
                    "expected_count": get(&expected, "count"),
                    "revenue_cents": get(&kept, "revenue"),
                    "expected_revenue_cents": get(&expected, "revenue"),
                })
            })
            .collect();
        let paid_match = sources.len() == expected_paid.len()
            && duplicates == 0
            && unique.iter().all(|s| expected_paid.contains(*s));
        let verdict = if trimmed > 0 {
            "unknown"
        } else if kept == expected && paid_match {
            "match"
        } else {
            "differ"
        };
        Ok(json!({
            "totals_key": totals,
            "paid_key": paid,
            "types": rows,
            "paid": {"emitted": sources.len(), "expected": expected_paid.len(), "duplicates": duplicates},
            "in_flight": in_flight,
            "dead_lettered": dead_count,
            "trimmed": trimmed,
            "verdict": verdict,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_read_as_the_plugin_reads_them() {
        let entry = |amount: &str| Entry {
            id: "1-0".into(),
            fields: vec![(b"type".to_vec(), b"order.paid".to_vec()), (b"amount".to_vec(), amount.as_bytes().to_vec())],
            delivery_count: 1,
        };
        assert_eq!(order(&entry("12.5")), Some(("order.paid".into(), 1250)));
        assert_eq!(order(&entry("12")), Some(("order.paid".into(), 1200)));
        assert_eq!(order(&entry("3.07")), Some(("order.paid".into(), 307)));
        assert_eq!(order(&entry("12.3.4")), None);
        assert_eq!(order(&entry("1.234")), None);
        assert!(id_of("5-1") > id_of("4-9") && id_of("10-0") > id_of("9-0"));
    }
}
