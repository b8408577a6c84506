//! The one `bindgen!` of the host: Rust types and glue for `wit/plugin.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "consumer",
});

pub use redis_streams::plugin::log::Level;
#[cfg(test)]
pub use redis_streams::plugin::types::Retry;
pub use redis_streams::plugin::types::{Batch, BatchEntry, Entry as WitEntry, Error as WitError, Field};

/// The fully qualified name of the world a plugin targets (one call per entry)…
pub const WORLD: &str = "redis-streams:plugin/consumer@0.1.0";
/// …or of the world with one call per batch (`handle-batch`; its types come
/// from the same package, and its export is looked up by name).
pub const BATCH_WORLD: &str = "redis-streams:plugin/batch-consumer@0.1.0";
