//! What the consumer calls for each entry, whatever implements it: the
//! [`Handler`] and [`HandlerSource`] traits (implemented by the Wasm layer's
//! plugins and instances, and by `host bench`'s native handler), where an
//! entry is delivered ([`Delivery`]) and a version's identity
//! ([`PluginTag`]). Shared by the Wasm layer, metrics and the consumer.

use crate::effects::{Effects, StateStore};
use crate::entry::Entry;
use crate::settings::Limits;
use crate::verdict::Verdict;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

/// A plugin's identity in log lines and metrics: file name and version hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTag {
    /// Plugin name (the file stem of `NAME.wasm`).
    pub name: String,
    /// Short hash of the plugin's bytes.
    pub version: String,
}

/// Where an entry is delivered: fixed for the life of a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where the plugin's `state` calls go (none: no Redis, e.g. `host check`).
    pub state: Option<Arc<dyn StateStore>>,
    /// Stand-in answers to the plugin's outbound HTTP (`host test`); none:
    /// requests go to the network, to the granted origins only.
    pub http: Option<Arc<dyn HttpAnswers>>,
    /// Stream key.
    pub stream: String,
    /// Consumer group.
    pub group: String,
    /// Consumer name.
    pub consumer: String,
}

/// Answers a plugin's outbound HTTP requests in place of the network (`host
/// test`'s fixtures): with these, no request leaves the process.
pub trait HttpAnswers: Send + Sync + std::fmt::Debug {
    /// The answer to `request`; none: the request fails as refused.
    fn answer(&self, request: &HttpRequest) -> Option<HttpAnswer>;
}

/// An outbound request as the plugin made it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// `scheme://authority/path?query`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A stand-in response.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Handles the entries of one consumer: a plugin instance, or `host
/// bench`'s native handler. Called on a blocking thread, one call at a time.
pub trait Handler: Send + 'static {
    /// Whether it takes whole batches: then the consumer calls
    /// [`Handler::handle_batch`], else [`Handler::handle`] per entry.
    fn batched(&self) -> bool;
    /// Handles one entry (lent, and given back unchanged).
    fn handle(&mut self, entry: &mut Entry) -> Verdict;
    /// Handles a batch: one verdict per entry, in order.
    fn handle_batch(&mut self, entries: &mut [Entry]) -> Vec<Verdict>;
    /// The version it runs.
    fn tag(&self) -> &Arc<PluginTag>;
    /// The effects of the entries handled ok since last asked (see
    /// `effects.rs`); those of other verdicts were dropped.
    fn take_effects(&mut self) -> Effects {
        Effects::default()
    }
    /// Stream ownership mode: the next entries are of data stream `stream`,
    /// whose assignment's info (JSON) is `info`. Group mode never calls it.
    fn assign(&mut self, _stream: &str, _info: &Arc<str>) {}
    /// The id of the entry (handled ok) with which the plugin said its
    /// stream is done, since last asked (`assignment.finish`).
    fn take_finished(&mut self) -> Option<String> {
        None
    }
}

/// One version of a handler, which each consumer instantiates for itself
/// (a loaded plugin, or the native handler). A hot reload hands consumers a
/// new source; each switches to it before its next entry.
pub trait HandlerSource: Send + Sync + 'static {
    /// What an instance is.
    type Handler: Handler;
    /// The version.
    fn tag(&self) -> &Arc<PluginTag>;
    /// A fresh instance for the consumer of `delivery`, each call bounded by
    /// `deadline`, sandboxed by `limits`.
    fn instantiate(&self, delivery: &Delivery, deadline: Duration, limits: &Limits) -> Result<Self::Handler>;
}
