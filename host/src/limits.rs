//! Sandbox limits of one plugin instance, beyond the per-call deadline: a cap
//! on linear memory (a failed grow traps), on tables and instances, on the
//! size of what a plugin returns, and optionally on fuel (instructions) per call. Breaking one is a fault: the entry stays
//! pending, the instance is recycled, the host keeps serving.

use wasmtime::{StoreLimits, StoreLimitsBuilder};

/// Limits and grants applied to every instance of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// What the plugin may reach beyond its entries (nothing by default).
    pub grants: std::sync::Arc<crate::guest_log::Grants>,
    /// Linear memory per instance, bytes.
    pub max_memory_bytes: usize,
    /// Longest error text a plugin may return, bytes.
    pub max_return_bytes: usize,
    /// Fuel per `handle` call (about one unit per Wasm instruction); `None`:
    /// not metered, the wall-clock deadline alone bounds a call.
    pub max_fuel: Option<u64>,
}

/// 256 MiB: ample for handlers (a 15 MB Python runtime included), small
/// enough that a runaway plugin cannot take the machine down.
pub const DEFAULT_MAX_MEMORY_MB: usize = 256;
/// 64 KiB of error text is plenty for a log line and a dead-letter record.
pub const DEFAULT_MAX_RETURN_BYTES: usize = 64 * 1024;
/// Tables and their elements, and instances: generous for real components
/// (Python's uses a few thousand table elements), fatal for a bomb.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_INSTANCES: usize = 1_000;
const MAX_TABLES: usize = 1_000;
const MAX_MEMORIES: usize = 100;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            grants: Default::default(),
            max_memory_bytes: DEFAULT_MAX_MEMORY_MB << 20,
            max_return_bytes: DEFAULT_MAX_RETURN_BYTES,
            max_fuel: None,
        }
    }
}

impl Limits {
    /// The store limiter enforcing these limits.
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.max_memory_bytes)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(MAX_INSTANCES)
            .tables(MAX_TABLES)
            .memories(MAX_MEMORIES)
            .trap_on_grow_failure(true)
            .build()
    }
}
