//! Example plugin with effects: the redis.io guide's "analytics" consumer.
//! For each valid order event (`type`, `order_id`, `customer`, `amount`):
//!
//! - `HINCRBY <stream>:totals count:<type> 1` and `revenue:<type> <cents>`;
//! - for an `order.paid`, an entry appended to `<stream>:paid` (fields
//!   `order_id`, `customer`, `amount_cents`, `source`: the order's entry id),
//!   capped at `MAXLEN ~ paid_maxlen` when that config value is granted.
//!
//! These are effects: the host applies them with the entry's ack, in one
//! step, only if the verdict is ok and this consumer still owns the entry.
//! So a crash, a retry or a peer's reclaim never counts an order twice.
//! A malformed order is rejected (dead-lettered, not counted); one whose
//! `payment` is `pending` is retried in 1 s. The sidecar must grant the keys:
//! `[grant] keys = ["orders:totals"]`, `streams = ["orders:paid"]`.

wit_bindgen::generate!({ path: "../../wit", world: "consumer" });

use redis_streams::plugin::effects::{emit, incr};
use redis_streams::plugin::log::{log, Level};
use redis_streams::plugin::types::{Field, Retry};

/// The order event types the redis.io guide produces.
const ORDER_TYPES: [&str; 4] = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];

struct Analytics;

impl Guest for Analytics {
    fn handle(entry: Entry) -> Result<(), Error> {
        let order = Order::parse(&entry).map_err(Error::Reject)?;
        if entry.fields.iter().any(|f| f.name == "payment" && f.value == b"pending") {
            let reason = format!("payment of {} still pending", order.order_id);
            return Err(Error::Retry(Retry { reason, delay_ms: Some(1000) }));
        }
        // An effect the host refuses (a key not granted) is a mistake in the
        // deployment, not in the entry: retry, so it is not lost meanwhile.
        let refused = |e: String| Error::Retry(Retry { reason: e, delay_ms: None });
        let totals = format!("{}:totals", entry.stream);
        incr(&entry.id, &totals, Some(&format!("count:{}", order.kind)), 1).map_err(refused)?;
        incr(&entry.id, &totals, Some(&format!("revenue:{}", order.kind)), order.amount_cents as i64)
            .map_err(refused)?;
        if order.kind == "order.paid" {
            let field = |name: &str, value: &str| Field { name: name.into(), value: value.as_bytes().to_vec() };
            let fields = vec![
                field("order_id", order.order_id),
                field("customer", order.customer),
                field("amount_cents", &order.amount_cents.to_string()),
                field("source", &entry.id),
            ];
            let max_len = redis_streams::plugin::config::get("paid_maxlen").and_then(|v| v.parse().ok());
            emit(&entry.id, &format!("{}:paid", entry.stream), &fields, max_len).map_err(refused)?;
        }
        if entry.delivery_count > 1 {
            log(Level::Info, &format!("order {} counted on delivery {}", order.order_id, entry.delivery_count));
        }
        Ok(())
    }
}

/// A validated order event.
struct Order<'a> {
    kind: &'a str,
    order_id: &'a str,
    customer: &'a str,
    amount_cents: u64,
}

impl<'a> Order<'a> {
    fn parse(entry: &'a Entry) -> Result<Self, String> {
        let kind = text(entry, "type")?;
        if !ORDER_TYPES.contains(&kind) {
            return Err(format!("unknown order type {kind:?}"));
        }
        let order_id = text(entry, "order_id")?;
        let customer = text(entry, "customer")?;
        let amount = text(entry, "amount")?;
        let amount_cents = parse_cents(amount).ok_or_else(|| format!("malformed amount {amount:?}"))?;
        Ok(Order { kind, order_id, customer, amount_cents })
    }
}

/// The first field called `name`, as non-empty UTF-8 text.
fn text<'a>(entry: &'a Entry, name: &str) -> Result<&'a str, String> {
    let field = entry.fields.iter().find(|f| f.name == name).ok_or_else(|| format!("missing field {name:?}"))?;
    let value = std::str::from_utf8(&field.value).map_err(|_| format!("field {name:?} is not UTF-8"))?;
    if value.is_empty() {
        return Err(format!("field {name:?} is empty"));
    }
    Ok(value)
}

/// Parses a non-negative decimal amount with at most two decimals ("12", "12.5",
/// "12.50") into cents; at most 2^53 cents, so every language sums it exactly.
fn parse_cents(amount: &str) -> Option<u64> {
    let (units, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || (amount.contains('.') && !digits(fraction)) || fraction.len() > 2 {
        return None;
    }
    let cents = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<u64>().ok()? * 10,
        _ => fraction.parse::<u64>().ok()?,
    };
    units.parse::<u64>().ok()?.checked_mul(100)?.checked_add(cents).filter(|c| *c < 1 << 53)
}

export!(Analytics);
