//! Keyspace notifications of expired keys, for stream ownership mode: a
//! lease that expires tells the other workers at once that its stream needs
//! an owner. Pub/sub may drop messages (and a server may not allow turning
//! notifications on), so workers also scan; this only makes takeovers fast.

use super::{Connection, Redis};
use anyhow::{Context, Result};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What `notify-keyspace-events` needs for expirations: keyevent (`E`) and expired (`x`).
fn with_expired(flags: &str) -> Option<String> {
    let has = |c| flags.contains(c) || (c == 'x' && flags.contains('A'));
    if has('E') && has('x') {
        return None;
    }
    let mut out = flags.to_string();
    for c in ['E', 'x'] {
        if !has(c) {
            out.push(c);
        }
    }
    Some(out)
}

impl Connection {
    /// Makes sure Redis publishes expired-key events: `Ok(true)` when they
    /// were already on, `Ok(false)` when this turned them on, an error (say
    /// why; failover then relies on the scan) when the server refuses.
    pub async fn enable_expiry_events(&mut self) -> Result<bool> {
        let (_, flags): (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query_async(&mut self.conn)
            .await
            .context("CONFIG GET notify-keyspace-events failed")?;
        let Some(wanted) = with_expired(&flags) else { return Ok(true) };
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(&wanted)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("CONFIG SET notify-keyspace-events {wanted} failed"))?;
        Ok(false)
    }
}

impl Redis {
    /// Subscribes to expired-key events of every database; each expired
    /// key's name is sent to the receiver until `stop` or the subscription
    /// breaks (then the receiver ends: resubscribe).
    pub async fn expired_keys(&self, stop: CancellationToken) -> Result<mpsc::Receiver<String>> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .with_context(|| format!("cannot subscribe to keyspace events at {}", self.shown_url))?;
        pubsub.psubscribe("__keyevent@*__:expired").await.context("PSUBSCRIBE to expired-key events failed")?;
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut messages = pubsub.on_message();
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => return,
                    message = messages.next() => message,
                };
                let Some(message) = message else { return };
                let Ok(key) = message.get_payload::<String>() else { continue };
                // Full: a scan is due anyway; dropping one is harmless.
                let _ = sender.try_send(key);
            }
        });
        Ok(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_events_are_added_to_the_flags_in_place() {
        assert_eq!(with_expired(""), Some("Ex".into()));
        assert_eq!(with_expired("Ex"), None);
        assert_eq!(with_expired("AKE"), None);
        assert_eq!(with_expired("Kg"), Some("KgEx".into()));
        assert_eq!(with_expired("KA"), Some("KAE".into()));
    }
}
