//! Metrics of plugins' outbound HTTP: requests by plugin, origin and status,
//! requests denied, and how long requests took (to the response's headers).

use super::Metrics;
use crate::handler::PluginTag;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// A request's plugin, origin (only granted ones: the label set stays as
/// small as the grants) and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    plugin: String,
    version: String,
    origin: String,
    status: String,
}

/// A request's plugin and origin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    plugin: String,
    version: String,
    origin: String,
}

/// A denied request's plugin and why (the origin is not a label: a plugin
/// could name any number of them).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeniedLabels {
    plugin: String,
    version: String,
    reason: &'static str,
}

/// 1 ms to ~65 s, ×4 apart.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-3, 4.0, 9))
}

/// The outbound HTTP metrics.
pub(super) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    seconds: Family<OriginLabels, Histogram, fn() -> Histogram>,
    denied: Family<DeniedLabels, Counter>,
}

impl HttpMetrics {
    pub(super) fn new(registry: &mut Registry) -> Self {
        let m = HttpMetrics {
            requests: Family::default(),
            seconds: Family::new_with_constructor(request_histogram),
            denied: Family::default(),
        };
        registry.register(
            "http_requests",
            "Plugins' outbound HTTP requests to granted origins, by status: the HTTP status code, or timeout, \
             too_large (response over its cap), connect_error, tls_error, error",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from sending a plugin's HTTP request to its response's headers (or its failure)",
            Unit::Seconds,
            m.seconds.clone(),
        );
        registry.register(
            "http_denied",
            "Plugins' outbound HTTP requests refused before sending, by reason: origin (not granted), in_flight \
             (too many of the instance's requests in flight)",
            m.denied.clone(),
        );
        m
    }
}

impl Metrics {
    /// A request of `tag` to `origin` ended with `status` after `took`. A
    /// status code with no registered meaning is counted as `NXX` (the
    /// server picks the code: the label set must stay small).
    pub fn http_request(&self, tag: &PluginTag, origin: &str, status: &str, took: Duration) {
        let known = status.parse::<u16>().ok().and_then(|c| http::StatusCode::from_u16(c).ok());
        let status = match known {
            Some(code) if code.canonical_reason().is_none() => format!("{}xx", code.as_u16() / 100),
            _ => status.to_string(),
        };
        let (plugin, version, origin) = (tag.name.clone(), tag.version.clone(), origin.to_owned());
        let labels = OriginLabels { plugin, version, origin };
        self.http.seconds.get_or_create(&labels).observe(took.as_secs_f64());
        let OriginLabels { plugin, version, origin } = labels;
        self.http.requests.get_or_create(&RequestLabels { plugin, version, origin, status }).inc();
    }

    /// A request of `tag` refused for `reason`.
    pub fn http_denied(&self, tag: &PluginTag, reason: &'static str) {
        let labels = DeniedLabels { plugin: tag.name.clone(), version: tag.version.clone(), reason };
        self.http.denied.get_or_create(&labels).inc();
    }
}
