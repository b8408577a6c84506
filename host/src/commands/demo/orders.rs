//! The demo's sample orders: order events of the redis.io guide (a random
//! mix, or one type), a malformed one and one whose payment stays pending.

use crate::commands::demo::actions::{Action, invalid};
use crate::commands::demo::{Demo, MAX_BATCH};
use anyhow::Result;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// Order event types of the redis.io guide.
pub const ORDER_TYPES: [&str; 4] = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];
/// What `produce` accepts as a kind besides the order types.
pub const KINDS: [&str; 3] = ["random", "malformed", "payment-pending"];
const CUSTOMERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

impl Demo {
    /// Produces the sample orders of `--seed`: a mix of types, one malformed
    /// (dead-lettered at once) and one whose payment stays pending (retried
    /// until its delivery limit, then dead-lettered).
    pub(super) async fn seed(&self) -> Result<()> {
        let n = self.config.seed as usize;
        if n == 0 {
            return Ok(());
        }
        self.produce(n.saturating_sub(2).max(1), "random").await.map_err(anyhow::Error::from)?;
        if n >= 3 {
            self.produce(1, "malformed").await.map_err(anyhow::Error::from)?;
            self.produce(1, "payment-pending").await.map_err(anyhow::Error::from)?;
        }
        tracing::info!(stream = %self.config.stream, "produced {n} sample orders");
        Ok(())
    }

    /// `XADD` of `count` order events of `kind` (an order type, `random`,
    /// `malformed` or `payment-pending`), capped at `MAXLEN ~ --maxlen`.
    pub async fn produce(&self, count: usize, kind: &str) -> Action<Value> {
        if count == 0 || count > MAX_BATCH {
            return invalid(format!("count must be 1..={MAX_BATCH}, got {count}"));
        }
        if !ORDER_TYPES.contains(&kind) && !KINDS.contains(&kind) {
            return invalid(format!("unknown kind {kind:?}: expected one of {ORDER_TYPES:?} or {KINDS:?}"));
        }
        let mut conn = self.admin();
        let (mut first, mut last) = (None, String::new());
        for _ in 0..count {
            let fields = self.order(kind);
            // Partitioned: by customer, so one customer's orders stay in order.
            let stream = match self.config.partitions {
                Some(n) => {
                    let customer = fields.iter().find(|(k, _)| k == b"customer").map_or(&[][..], |(_, v)| v);
                    crate::keys::partition_name(&self.config.stream, crate::keys::partition_of(customer, n))
                }
                None => self.config.stream.clone(),
            };
            last = conn.add(&stream, Some(self.config.maxlen), &fields).await?;
            first.get_or_insert_with(|| last.clone());
        }
        Ok(json!({"produced": count, "first_id": first, "last_id": last}))
    }

    /// One order event's fields.
    fn order(&self, kind: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let n = self.next_order.fetch_add(1, Ordering::Relaxed);
        let order_type = match kind {
            "random" => ORDER_TYPES[fastrand::usize(..ORDER_TYPES.len())],
            "malformed" | "payment-pending" => "order.paid",
            order_type => order_type,
        };
        let amount = match kind {
            "malformed" => "12.3.4".to_string(),
            _ => format!("{}.{:02}", fastrand::u32(1..500), fastrand::u32(..100)),
        };
        let mut fields = vec![
            ("type", order_type.to_string()),
            ("order_id", format!("o-{n}")),
            ("customer", CUSTOMERS[fastrand::usize(..CUSTOMERS.len())].to_string()),
            ("amount", amount),
        ];
        if kind == "payment-pending" {
            fields.push(("payment", "pending".to_string()));
        }
        fields.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes())).collect()
    }
}
