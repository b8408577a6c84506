//! Metrics of stream ownership mode, per service (the assignment stream's
//! group): streams owned now, takeovers, leases seen expiring, disownings,
//! writes Redis refused by the lease fence, and how long a lease renewal
//! (of all the worker's leases at once) takes.

use super::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// A service's assignment stream and group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    assignments: String,
    service: String,
}

/// [`ServiceLabels`] plus why a stream was finished.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    assignments: String,
    service: String,
    reason: &'static str,
}

/// 100 µs to ~1.6 min, ×4 apart.
fn renewal_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-4, 4.0, 11))
}

/// The stream ownership metrics.
pub(super) struct OwnershipMetrics {
    owned: Family<ServiceLabels, Gauge>,
    claims: Family<ServiceLabels, Counter>,
    expirations: Family<ServiceLabels, Counter>,
    disowned: Family<ServiceLabels, Counter>,
    refused: Family<ServiceLabels, Counter>,
    finished: Family<FinishedLabels, Counter>,
    renewal: Family<ServiceLabels, Histogram, fn() -> Histogram>,
}

impl OwnershipMetrics {
    pub(super) fn new(registry: &mut Registry) -> Self {
        let m = OwnershipMetrics {
            owned: Family::default(),
            claims: Family::default(),
            expirations: Family::default(),
            disowned: Family::default(),
            refused: Family::default(),
            finished: Family::default(),
            renewal: Family::new_with_constructor(renewal_histogram),
        };
        registry.register("owned_streams", "Data streams this worker owns now", m.owned.clone());
        registry.register(
            "ownership_claims",
            "Data streams taken over from another worker (its lease had expired)",
            m.claims.clone(),
        );
        registry.register(
            "lease_expirations",
            "Lease expirations seen through keyspace notifications",
            m.expirations.clone(),
        );
        registry.register("disownings", "Data streams this worker lost its lease on and stopped", m.disowned.clone());
        registry.register(
            "fenced_writes_refused",
            "Writes for an owned stream (acks, dead letters, commits, reads) Redis refused: the lease was gone",
            m.refused.clone(),
        );
        registry.register(
            "streams_finished",
            "Data streams finished, by reason: plugin, end_marker, deleted",
            m.finished.clone(),
        );
        registry.register_with_unit(
            "lease_renewal_duration",
            "Time to renew all of this worker's leases (one script call per heartbeat)",
            Unit::Seconds,
            m.renewal.clone(),
        );
        m
    }
}

fn labels(assignments: &str, service: &str) -> ServiceLabels {
    ServiceLabels { assignments: assignments.to_string(), service: service.to_string() }
}

impl Metrics {
    /// This worker owns `n` streams of the service now.
    pub fn owned_streams(&self, assignments: &str, service: &str, n: usize) {
        self.ownership.owned.get_or_create(&labels(assignments, service)).set(n as i64);
    }

    /// A stream taken over from another worker.
    pub fn ownership_claim(&self, assignments: &str, service: &str) {
        self.ownership.claims.get_or_create(&labels(assignments, service)).inc();
    }

    /// A lease expiration seen.
    pub fn lease_expired(&self, assignments: &str, service: &str) {
        self.ownership.expirations.get_or_create(&labels(assignments, service)).inc();
    }

    /// A stream this worker was disowned from.
    pub fn disowned(&self, assignments: &str, service: &str) {
        self.ownership.disowned.get_or_create(&labels(assignments, service)).inc();
    }

    /// A fenced write refused by Redis.
    pub fn fenced_refused(&self, assignments: &str, service: &str) {
        self.ownership.refused.get_or_create(&labels(assignments, service)).inc();
    }

    /// A stream finished, for `reason`.
    pub fn stream_finished(&self, assignments: &str, service: &str, reason: &'static str) {
        let (assignments, service) = (assignments.to_string(), service.to_string());
        self.ownership.finished.get_or_create(&FinishedLabels { assignments, service, reason }).inc();
    }

    /// One renewal of all the worker's leases took `took`.
    pub fn lease_renewal(&self, assignments: &str, service: &str, took: Duration) {
        self.ownership.renewal.get_or_create(&labels(assignments, service)).observe(took.as_secs_f64());
    }
}
