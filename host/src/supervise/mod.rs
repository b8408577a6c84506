//! Supervision: a deployment (one plugin, the consumers of one group) and
//! the one loop ([`supervisor`]) that loads plugins ([`reload`]), watches
//! their files ([`watcher`]) and settings ([`folder`], [`sidecar`]), and
//! reloads or restarts deployments; `host run`, folder mode and the demo all
//! run it.
//!
//! May use the consumer, Wasm and Redis layers and the shared types; nothing
//! of `commands`.

mod ceiling;
pub mod deployment;
pub mod folder;
pub mod layout;
pub mod reload;
pub mod sidecar;
pub mod supervisor;
pub mod watcher;
