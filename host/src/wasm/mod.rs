//! The Wasm layer: compile a plugin component once ([`plugin`]), instantiate
//! it per consumer in a sandbox ([`instance`], [`host_state`], [`limits`]),
//! and call it under a deadline. Uses only the shared types (entry, verdict,
//! settings); knows nothing of Redis or of the consumer loop.

pub mod bindings;
pub mod blocking_calls;
pub mod cache;
pub mod clock;
pub mod engine;
pub mod handlers;
pub mod host_state;
pub mod instance;
pub mod limits;
pub mod log_budget;
pub mod outbound;
pub mod plugin;
pub mod progress;
pub mod recorder;
pub mod redis_imports;
pub mod verdicts;
