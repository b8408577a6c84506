//! Which entries are orders worth notifying: the redis.io guide's order
//! events, checked as the `orders` example checks them.

use crate::Entry;

/// The order event types the redis.io guide produces.
const ORDER_TYPES: [&str; 4] = ["order.placed", "order.paid", "order.shipped", "order.cancelled"];

/// Checks `entry` is a well-formed order; else says what is wrong.
pub fn check(entry: &Entry) -> Result<(), String> {
    let kind = text(entry, "type")?;
    if !ORDER_TYPES.contains(&kind) {
        return Err(format!("unknown order type {kind:?}"));
    }
    text(entry, "order_id")?;
    text(entry, "customer")?;
    let amount = text(entry, "amount")?;
    if !well_formed_amount(amount) {
        return Err(format!("malformed amount {amount:?}"));
    }
    Ok(())
}

/// Whether the order's payment is still pending (notified once it clears).
pub fn payment_pending(entry: &Entry) -> bool {
    entry.fields.iter().any(|f| f.name == "payment" && f.value == b"pending")
}

fn text<'a>(entry: &'a Entry, name: &str) -> Result<&'a str, String> {
    let field = entry.fields.iter().find(|f| f.name == name).ok_or_else(|| format!("missing field {name:?}"))?;
    let value = std::str::from_utf8(&field.value).map_err(|_| format!("field {name:?} is not UTF-8"))?;
    if value.is_empty() {
        return Err(format!("field {name:?} is empty"));
    }
    Ok(value)
}

/// A non-negative decimal amount with at most two decimals ("12", "12.5", "12.50").
fn well_formed_amount(amount: &str) -> bool {
    let (units, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(units) && (!amount.contains('.') || digits(fraction)) && fraction.len() <= 2
}
