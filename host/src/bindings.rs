//! The one `bindgen!` of the host: Rust types and glue for `wit/plugin.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "consumer",
});

pub use redis_streams::plugin::log::Level;
#[cfg(test)]
pub use redis_streams::plugin::types::Retry;
pub use redis_streams::plugin::types::{Entry as WitEntry, Error as WitError, Field};

/// The fully qualified name of the world every plugin must target.
pub const WORLD: &str = "redis-streams:plugin/consumer@0.1.0";
