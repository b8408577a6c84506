//! Example plugin: validates the order events of the redis.io streaming guide
//! (`type`, `order_id`, `customer`, `amount`) and logs one line per order.
//! A missing or malformed field is permanent: the entry is rejected. An order
//! whose `payment` field is `pending` is retried (in 1 s, at the earliest).

wit_bindgen::generate!({ path: "../../wit", world: "consumer" });

use redis_streams::plugin::log::{log, Level};
use redis_streams::plugin::types::Retry;

/// The order event types the redis.io guide produces.
const ORDER_TYPES: [&str; 4] = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];

struct Orders;

impl Guest for Orders {
    fn handle(entry: Entry) -> Result<(), Error> {
        let order = Order::parse(&entry).map_err(|why| {
            log(Level::Warn, &format!("rejecting {}: {why}", entry.id));
            Error::Reject(why)
        })?;
        if entry.fields.iter().any(|f| f.name == "payment" && f.value == b"pending") {
            let reason = format!("payment of {} still pending", order.order_id);
            log(Level::Warn, &format!("retrying {}: {reason}", entry.id));
            return Err(Error::Retry(Retry { reason, delay_ms: Some(1000) }));
        }
        log(
            Level::Info,
            &format!(
                "order {} {} for {}: amount {}.{:02}",
                order.order_id,
                order.kind.trim_start_matches("order."),
                order.customer,
                order.amount_cents / 100,
                order.amount_cents % 100
            ),
        );
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
/// "12.50") into cents.
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
    units.parse::<u64>().ok()?.checked_mul(100)?.checked_add(cents)
}

export!(Orders);
