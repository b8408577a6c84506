//! Key layout on a Redis Cluster: hash tags, slots, and the names of a
//! partitioned stream's partitions.
//!
//! A cluster stores each key in one of 16 384 slots, `CRC16(key) mod 16384`,
//! where only the key's *hash tag* counts when it has one: the part between
//! the first `{` and the next `}`, if not empty. A script or `MULTI` may
//! touch only keys of one slot, so everything the host writes together with
//! a stream's ack (its dead letters, a plugin's effects, the consumer's name
//! lease) must hash like the stream: [`same_slot`], [`companion`].
//!
//! A partitioned stream `orders` with N partitions is the N streams
//! `orders:{0}` … `orders:{N-1}` ([`partition_name`]): the tag is the
//! partition number, so partitions spread over the cluster's slots and a
//! partition's dead letters (`orders:dlq:{p}`) share its slot. An entry
//! goes to partition [`partition_of`] its key field's value.
//!
//! A shared type: no I/O, used by the settings, the Redis layer and the commands.

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// Most partitions one stream may have: more than a cluster has masters in
/// practice, few enough that one process can run a consumer for each.
pub const MAX_PARTITIONS: u32 = 1024;

/// The part of `key` that decides its slot: the hash tag when it has one
/// (non-empty text between the first `{` and the next `}`), else all of it.
pub fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// Whether `key` has a hash tag.
pub fn has_hash_tag(key: &str) -> bool {
    hashed_part(key.as_bytes()).len() != key.len()
}

/// The cluster slot of `key`.
pub fn slot(key: &str) -> u16 {
    crc16(hashed_part(key.as_bytes())) % SLOTS
}

/// Whether `a` and `b` are stored in the same slot (and so may be written
/// in one script or `MULTI` on a cluster).
pub fn same_slot(a: &str, b: &str) -> bool {
    slot(a) == slot(b)
}

/// A key named after `stream` that hashes like it: `STREAM:SUFFIX` when the
/// stream has a hash tag (the tag carries over), else `{STREAM}:SUFFIX`
/// (the whole stream name becomes the tag, whose slot is the stream's).
pub fn companion(stream: &str, suffix: &str) -> String {
    if has_hash_tag(stream) { format!("{stream}:{suffix}") } else { format!("{{{stream}}}:{suffix}") }
}

/// On a cluster, the dead-letter stream of `stream` when `configured`:
/// `configured` itself, except the default `STREAM:dlq` of a stream
/// without a hash tag (which lies in another slot) becomes `{STREAM}:dlq`.
pub fn cluster_dead_letter(stream: &str, configured: &str) -> String {
    if configured == format!("{stream}:dlq") && !same_slot(stream, configured) {
        companion(stream, "dlq")
    } else {
        configured.to_string()
    }
}

/// The stream of partition `p` of `base`: `BASE:{p}`.
pub fn partition_name(base: &str, p: u32) -> String {
    format!("{base}:{{{p}}}")
}

/// Which of `partitions` partitions an entry whose key field holds `value`
/// goes to: FNV-1a (64 bit) of the value, modulo the count. Stable across
/// processes, versions and machines, so one key's entries stay in one
/// partition, in order.
pub fn partition_of(value: &[u8], partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in value {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

/// Why `base` cannot be partitioned, if it cannot: each partition's hash
/// tag is its number, so the base name must not carry a tag of its own
/// (it would come first and put every partition in one slot).
pub fn partition_base_problem(base: &str) -> Option<String> {
    (base.contains('{') || base.contains('}')).then(|| {
        format!(
            "{base:?} has braces ({{…}}: a hash tag), which would decide the partitions' slots instead of \
             their numbers; name it without braces (partitions are named {})",
            partition_name(base, 0)
        )
    })
}

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The stream failure events are appended to (`streams/events.rs`).
pub const EVENTS: &str = "host:events";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("123456789"), 0x31C3 % SLOTS);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"), "an empty first tag means no tag");
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    #[test]
    fn companions_share_the_slot() {
        for stream in ["orders", "orders:{7}", "a{b}c", "{x}", "plain:name"] {
            let dlq = companion(stream, "dlq");
            assert!(same_slot(stream, &dlq), "{stream} vs {dlq}");
        }
        assert_eq!(companion("orders", "dlq"), "{orders}:dlq");
        assert_eq!(companion("orders:{7}", "dlq"), "orders:{7}:dlq");
    }

    #[test]
    fn partitions_are_named_and_routed_stably() {
        assert_eq!(partition_name("orders", 3), "orders:{3}");
        assert!(same_slot(&partition_name("orders", 3), &partition_name("orders:dlq", 3)));
        assert_eq!(partition_of(b"customer-42", 16), partition_of(b"customer-42", 16));
        let spread: std::collections::BTreeSet<u32> =
            (0..200).map(|i| partition_of(format!("c{i}").as_bytes(), 6)).collect();
        assert_eq!(spread.len(), 6, "200 keys reach every one of 6 partitions");
        assert!(partition_base_problem("orders").is_none());
        assert!(partition_base_problem("{orders}").is_some());
        assert!(partition_base_problem("orders{v2").is_some(), "a stray brace would tag the partitions");
    }
}
