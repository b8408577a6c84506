//! The host's `bindgen!`s: Rust types and glue for the two worlds of
//! `wit/plugin.wit`, `consumer` and `batch-consumer`. The second reuses the
//! first one's interfaces (`with:`), so both worlds share one set of types
//! and one linker.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "consumer",
    // The `effects` calls trap when a plugin records over its caps.
    imports: { default: trappable },
});

/// World `batch-consumer`: its interfaces (`types`, `log`, `config`) are the
/// ones generated above for `consumer`, so a `Batch` or an `Error` is the
/// same Rust type in both worlds.
mod batch {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "batch-consumer",
        with: {
            "redis-streams:plugin": crate::wasm::bindings::redis_streams::plugin,
        },
        imports: { default: trappable },
    });
}

pub use batch::{BatchConsumer, BatchConsumerPre};
pub use redis_streams::plugin::log::Level;
#[cfg(test)]
pub use redis_streams::plugin::types::Retry;
pub use redis_streams::plugin::types::{Batch, BatchEntry, Entry as WitEntry, Error as WitError, Field};

/// The WIT package this host serves (`wit/plugin.wit`), as `host --version` names it.
pub const WIT_PACKAGE: &str = "redis-streams:plugin@0.1.3";
/// The fully qualified name of the world a plugin targets (one call per entry)…
pub const WORLD: &str = "redis-streams:plugin/consumer@0.1.3";
/// …or of the world with one call per batch, for a component that exports
/// [`HANDLE_BATCH`].
pub const BATCH_WORLD: &str = "redis-streams:plugin/batch-consumer@0.1.3";
/// The export that makes a component a plugin of [`BATCH_WORLD`].
pub const HANDLE_BATCH: &str = "handle-batch";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_match_the_wit_file() {
        let wit = include_str!("../../../wit/plugin.wit");
        assert!(wit.contains(&format!("package {WIT_PACKAGE};")), "wit/plugin.wit declares another package");
        let (package, version) = WIT_PACKAGE.split_once('@').unwrap();
        assert_eq!(WORLD, format!("{package}/consumer@{version}"));
        assert_eq!(BATCH_WORLD, format!("{package}/batch-consumer@{version}"));
        // The JavaScript template names the version in its imports.
        let js = include_str!("../../templates/js/handler.js");
        assert!(js.contains(&format!("{package}/log@{version}")), "templates/js/handler.js imports another version");
    }
}
