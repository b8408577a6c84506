//! What a plugin asks Redis to do beyond acking: [`Effect`]s, recorded per
//! entry by the Wasm layer (the `effects` import), kept only for entries
//! handled ok ([`Effects`]) and committed by the consumer with their XACK in
//! one fenced server-side step (`streams/commit.rs`). Also the grants that
//! confine a plugin's keys and streams ([`check_key`], [`check_stream`]), and
//! the immediate reads (the `state` import) behind [`StateStore`].
//! Shared by the Wasm layer, the Redis layer and the consumer.

use crate::settings::Grants;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Effects one entry may record; more is a fault.
pub const MAX_EFFECTS_PER_ENTRY: usize = 1_000;
/// Bytes of keys, fields and values one entry's effects may hold (each
/// effect and field counted with an overhead, so empty ones are not free);
/// more is a fault.
pub const MAX_EFFECT_BYTES_PER_ENTRY: usize = 1 << 20;
/// The same for all entries of one call (a batch): bounds what one call can
/// make the host hold, whatever the batch size.
pub const MAX_EFFECT_BYTES_PER_CALL: usize = 16 << 20;
/// What an effect costs besides its bytes, and each emitted field.
const EFFECT_OVERHEAD: usize = 32;
const FIELD_OVERHEAD: usize = 16;
/// Field/value pairs of one emitted entry (one Lua `unpack` passes them on).
pub const MAX_EMIT_FIELDS: usize = 1_000;

/// One write, applied with its entry's ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `XADD stream [MAXLEN ~ max_len] * fields`.
    Emit {
        /// Stream key.
        stream: String,
        /// Field/value pairs.
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        /// Approximate cap on the stream's length.
        max_len: Option<u64>,
    },
    /// `HINCRBY key field by`, or `INCRBY key by` without a field.
    Incr {
        /// Key.
        key: String,
        /// Hash field.
        field: Option<String>,
        /// Increment.
        by: i64,
    },
    /// `HSET key field value`, or `SET key value`; then `PEXPIRE key ttl`.
    Set {
        /// Key.
        key: String,
        /// Hash field.
        field: Option<String>,
        /// Value.
        value: Vec<u8>,
        /// Expiry of the whole key, ms.
        ttl_ms: Option<u64>,
    },
    /// `HDEL key field`, or `DEL key`.
    Del {
        /// Key.
        key: String,
        /// Hash field.
        field: Option<String>,
    },
}

impl Effect {
    /// The kind, as metrics label it: `emit`, `incr`, `set`, `del`.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::Emit { .. } => "emit",
            Effect::Incr { .. } => "incr",
            Effect::Set { .. } => "set",
            Effect::Del { .. } => "del",
        }
    }

    /// The key it writes (a stream's, for an emit).
    pub fn key(&self) -> &str {
        match self {
            Effect::Emit { stream, .. } => stream,
            Effect::Incr { key, .. } | Effect::Set { key, .. } | Effect::Del { key, .. } => key,
        }
    }

    /// Bytes it holds, as counted against [`MAX_EFFECT_BYTES_PER_ENTRY`]:
    /// its data plus an overhead per effect and per field.
    pub fn bytes(&self) -> usize {
        let field = |f: &Option<String>| f.as_ref().map_or(0, String::len);
        EFFECT_OVERHEAD
            + match self {
                Effect::Emit { stream, fields, .. } => {
                    stream.len() + fields.iter().map(|(n, v)| FIELD_OVERHEAD + n.len() + v.len()).sum::<usize>()
                }
                Effect::Incr { key, field: f, .. } | Effect::Del { key, field: f } => key.len() + field(f) + 8,
                Effect::Set { key, field: f, value, .. } => key.len() + field(f) + value.len(),
            }
    }
}

/// The effects of entries handled ok, by entry id, each entry's in the
/// order recorded. Empty for a plugin that records none (the usual case:
/// then acks take the plain XACK path).
#[derive(Debug, Default)]
pub struct Effects {
    by_entry: HashMap<String, Vec<Effect>>,
}

impl Effects {
    /// Keeps `effects` for entry `id` (after any it already has).
    pub fn add(&mut self, id: &str, effects: Vec<Effect>) {
        if effects.is_empty() {
            return;
        }
        self.by_entry.entry(id.to_string()).or_default().extend(effects);
    }

    /// Takes entry `id`'s effects out, if it has any.
    #[inline]
    pub fn take(&mut self, id: &str) -> Option<Vec<Effect>> {
        if self.by_entry.is_empty() { None } else { self.by_entry.remove(id) }
    }

    /// Whether no entry has effects.
    pub fn is_empty(&self) -> bool {
        self.by_entry.is_empty()
    }

    /// Moves all of `other` in.
    pub fn append(&mut self, other: Effects) {
        for (id, effects) in other.by_entry {
            self.by_entry.entry(id).or_default().extend(effects);
        }
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (possibly none) and every other character for itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether the plugin may read or write key `key`; the error names the key
/// and the grant, and says where to grant it.
pub fn check_key(grants: &Grants, key: &str) -> Result<(), String> {
    check(&grants.keys, key, "key", "keys")
}

/// Whether the plugin may append to stream `stream`.
pub fn check_stream(grants: &Grants, stream: &str) -> Result<(), String> {
    check(&grants.streams, stream, "stream", "streams")
}

fn check(granted: &[String], name: &str, what: &str, grant: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("an empty {what} name is not allowed"));
    }
    if granted.iter().any(|pattern| glob(pattern, name)) {
        return Ok(());
    }
    let shown = if granted.is_empty() {
        "nothing: none are granted by default".to_string()
    } else {
        granted.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>().join(", ")
    };
    Err(format!(
        "{what} {name:?} is not granted to this plugin (grant.{grant} allows {shown}; add it to `[grant] {grant}` in \
         the plugin's sidecar, or --grant-{what} for host run)"
    ))
}

/// Immediate reads and records for the `state` import, each bounded by the
/// instant the plugin's call must be over. Implemented on Redis by the
/// Redis layer; errors are texts the plugin sees.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// `GET key`.
    fn get(&self, key: &str, until: Instant) -> Result<Option<Vec<u8>>, String>;
    /// `HGET key field`.
    fn hget(&self, key: &str, field: &str, until: Instant) -> Result<Option<Vec<u8>>, String>;
    /// `SET key 1 NX PX ttl`: true when the key existed already.
    fn seen(&self, key: &str, ttl: Duration, until: Instant) -> Result<bool, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_stars_only() {
        assert!(glob("orders:*", "orders:totals"));
        assert!(glob("orders:*", "orders:"));
        assert!(!glob("orders:*", "order:x"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exact2"));
        assert!(!glob("", "x"));
        assert!(glob("?", "?") && !glob("?", "x"), "only * is special");
    }

    #[test]
    fn grants_name_the_key_and_the_grant() {
        let none = Grants::default();
        let error = check_key(&none, "orders:totals").unwrap_err();
        assert!(error.contains("\"orders:totals\"") && error.contains("none are granted by default"), "{error}");
        let grants = Grants { keys: vec!["orders:*".into()], streams: vec!["orders:paid".into()], ..Grants::default() };
        assert!(check_key(&grants, "orders:totals").is_ok());
        assert!(check_stream(&grants, "orders:paid").is_ok());
        let error = check_stream(&grants, "orders:other").unwrap_err();
        assert!(error.contains("grant.streams allows \"orders:paid\""), "{error}");
        assert!(check_key(&grants, "").is_err());
    }

    #[test]
    fn empty_fields_are_not_free() {
        let fields = vec![(Vec::new(), Vec::new()); 1000];
        let emit = Effect::Emit { stream: String::new(), fields, max_len: None };
        assert!(emit.bytes() >= 16_000, "{}", emit.bytes());
        // So one entry cannot hold more than ~65 000 emitted fields.
        assert!(MAX_EFFECT_BYTES_PER_ENTRY / emit.bytes() * 1000 < 70_000);
    }

    #[test]
    fn effects_are_kept_per_entry_in_order() {
        let mut effects = Effects::default();
        assert!(effects.take("1-0").is_none());
        let incr = |by| Effect::Incr { key: "k".into(), field: None, by };
        effects.add("1-0", vec![incr(1)]);
        effects.add("1-0", vec![incr(2)]);
        effects.add("2-0", vec![]);
        assert_eq!(effects.take("1-0"), Some(vec![incr(1), incr(2)]));
        assert!(effects.take("1-0").is_none() && effects.take("2-0").is_none());
    }
}
