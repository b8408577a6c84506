//! What the consumer calls for each entry, whatever implements it: a plugin
//! version's identity ([`PluginTag`]). Shared by the Wasm layer (which
//! implements handlers), metrics and the consumer.

/// A plugin's identity in log lines and metrics: file name and version hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTag {
    /// Plugin name (the file stem of `NAME.wasm`).
    pub name: String,
    /// Short hash of the plugin's bytes.
    pub version: String,
}
