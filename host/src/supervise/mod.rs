//! Supervision: a deployment (one plugin, the consumers of one group) and
//! the loop that loads plugins, watches their files and settings, and
//! reloads or restarts deployments. Uses the consumer, Wasm and Redis layers.

pub mod deployment;
pub mod folder;
pub mod reload;
pub mod sidecar;
pub mod supervisor;
pub mod watcher;
