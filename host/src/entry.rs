//! A stream entry as read from Redis: id, raw fields and delivery count.

/// One entry delivered to a consumer, before the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Entry id, e.g. `1700000000000-0`.
    pub id: String,
    /// Field name/value pairs in stream order, byte-for-byte as Redis stores them.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// How many times the entry has been delivered, this delivery included.
    pub delivery_count: u32,
}

impl Entry {
    /// The value of the first field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| v.as_slice())
    }
}
