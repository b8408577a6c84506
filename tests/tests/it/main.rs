//! Integration tests: the host against a real redis-server and real plugins.

mod adversarial;
mod analytics;
mod batch;
mod bench;
mod cli;
mod cluster;
mod conformance;
mod consume;
mod dashboard;
mod docs;
mod effects;
mod events;
mod faults;
mod inspection;
mod long_handlers;
mod metrics;
mod outages;
mod outbound;
mod ownership;
mod plugin_tests;
mod recovery;
mod reload;
mod retry_policy;
mod scaffold;
mod shutdown;
mod support;
