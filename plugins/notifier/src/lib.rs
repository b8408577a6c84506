//! Example plugin with outbound HTTP: for each order event it POSTs a JSON
//! notification to the webhook that `config.get("webhook")` names, and
//! makes sure a redelivery does not send it again. A malformed order is
//! rejected (dead-lettered); one whose payment is pending is retried in 1 s.
//!
//! - Before sending, `state.get("<stream>:notified:<entry id>")`: if that key
//!   exists the notification went out on an earlier delivery, so this one is
//!   skipped (a duplicate suppressed) and acked.
//! - After a 2xx, `state.seen` records that key at once (not with the ack:
//!   the POST has already happened), for `seen_ttl_ms` (default 7 days).
//! - 5xx, 429, a timeout, a refused connection or any other failure to get
//!   an answer → `retry`, after `retry_ms` × 2^(delivery − 1), at most
//!   `retry_max_ms` (defaults 1000 and 30000).
//! - Another 4xx → `reject` with the status and the start of the body.
//! - A 307 or 308 redirect is followed up to 3 times, POSTing again to the
//!   new location, which the host checks against the grants like any
//!   request (`config.headers` are not sent to another origin). Other 3xx
//!   are answers like 4xx: `reject`.
//!
//! Each request carries `Idempotency-Key: <stream>/<entry id>`, so a webhook
//! can drop the duplicates at-least-once delivery leaves (a crash between
//! the POST and the record above, or a request that timed out after the
//! webhook took it). With `stats` granted (a hash key), counts `sent` and
//! `skipped` there, committed with the ack.
//!
//! `config.headers` adds headers, one `Name: value` per line (e.g. an
//! `Authorization` the webhook wants).
//!
//! Sidecar: `[grant] http = ["http://127.0.0.1:9000"]`, `keys =
//! ["orders:notified:*", "orders:notifier"]`, `config.webhook =
//! "http://127.0.0.1:9000/hook"`, `config.stats = "orders:notifier"`.

wit_bindgen::generate!({ path: "../../wit", world: "consumer" });

mod http;
mod order;

use redis_streams::plugin::config::get as config;
use redis_streams::plugin::log::{log, Level};
use redis_streams::plugin::types::Retry;
use redis_streams::plugin::{effects, state};

/// How long a sent notification is remembered by default: 7 days.
const SEEN_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
/// Redirects followed per notification.
const MAX_REDIRECTS: usize = 3;

struct Notifier;

impl Guest for Notifier {
    fn handle(entry: Entry) -> Result<(), Error> {
        order::check(&entry).map_err(Error::Reject)?;
        if order::payment_pending(&entry) {
            let reason = format!("{}: payment still pending", entry.id);
            return Err(Error::Retry(Retry { reason, delay_ms: Some(1000) }));
        }
        let webhook =
            config("webhook").ok_or_else(|| retry(&entry, "no webhook configured (config.webhook)".into()))?;
        let key = format!("{}:notified:{}", entry.stream, entry.id);
        if state::get(&key).map_err(|e| retry(&entry, e))?.is_some() {
            log(Level::Info, &format!("{} already notified: skipped (delivery {})", entry.id, entry.delivery_count));
            count(&entry, "skipped");
            return Ok(());
        }
        let body = notification(&entry);
        let idempotency = format!("{}/{}", entry.stream, entry.id);
        let mut headers = config("headers").unwrap_or_default();
        let mut url = webhook;
        let mut redirects = 0;
        let answer = loop {
            let answer = http::post(&url, &body, &idempotency, &headers)
                .map_err(|e| retry(&entry, format!("POST {url}: {e}")))?;
            match (answer.status, &answer.location) {
                (307 | 308, Some(next)) if redirects < MAX_REDIRECTS => {
                    redirects += 1;
                    let next = http::resolve(&url, next);
                    // The configured headers (credentials) go to the webhook's origin only.
                    if http::origin(&next) != http::origin(&url) {
                        headers.clear();
                    }
                    url = next;
                }
                _ => break answer,
            }
        };
        match answer.status {
            200..=299 => {
                let ttl = config("seen_ttl_ms").and_then(|v| v.parse().ok()).unwrap_or(SEEN_TTL_MS);
                match state::seen(&key, ttl) {
                    Ok(true) => log(Level::Warn, &format!("{} was also notified by another delivery", entry.id)),
                    Ok(false) => {}
                    // Sent, but not recorded: a redelivery would send it again.
                    Err(e) => log(Level::Warn, &format!("{} sent but not recorded as sent: {e}", entry.id)),
                }
                count(&entry, "sent");
                Ok(())
            }
            429 | 500..=599 => Err(retry(&entry, format!("webhook {url} answered {}", answer.status))),
            status => Err(Error::Reject(format!("webhook {url} answered {status}: {}", answer.excerpt))),
        }
    }
}

/// `retry` with the back-off of this entry's delivery.
fn retry(entry: &Entry, reason: String) -> Error {
    let number = |name, default| config(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default);
    let (base, max) = (number("retry_ms", 1000), number("retry_max_ms", 30_000));
    let doublings = entry.delivery_count.saturating_sub(1).min(20);
    let delay = base.saturating_mul(1 << doublings).min(max);
    Error::Retry(Retry { reason, delay_ms: Some(delay) })
}

/// Adds 1 to field `what` of the `stats` hash, if one is configured.
fn count(entry: &Entry, what: &str) {
    if let Some(stats) = config("stats") {
        if let Err(e) = effects::incr(&entry.id, &stats, Some(what), 1) {
            log(Level::Warn, &format!("cannot count {what}: {e}"));
        }
    }
}

/// The JSON notification of `entry`: its id, stream and delivery count, and
/// every field whose value is text.
fn notification(entry: &Entry) -> Vec<u8> {
    let mut json = format!(
        "{{\"id\":{},\"stream\":{},\"delivery\":{},\"fields\":{{",
        quoted(&entry.id),
        quoted(&entry.stream),
        entry.delivery_count
    );
    let text = entry.fields.iter().filter_map(|f| Some((&f.name, std::str::from_utf8(&f.value).ok()?)));
    for (i, (name, value)) in text.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("{}:{}", quoted(name), quoted(value)));
    }
    json.push_str("}}");
    json.into_bytes()
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

export!(Notifier);

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
