//! Produce-to-ack latency of `host bench`: entries carry their produce time
//! (field `ts`, µs); the consumers' [`AckObserver`] records each entry's
//! latency as its XACK succeeds.

use super::TS_FIELD;
use crate::consumer::AckObserver;
use crate::entry::Entry;
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use std::sync::Mutex;
use std::time::SystemTime;

/// Produce-to-ack latencies, recorded by consumers as their XACKs succeed.
pub struct Latency {
    histogram: Mutex<Histogram<u64>>,
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Latency")
    }
}

impl Latency {
    pub(super) fn new() -> Result<Self> {
        // 1 µs .. 1 h at 3 significant digits.
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).context("latency histogram")?;
        Ok(Latency { histogram: Mutex::new(histogram) })
    }

    pub(super) fn millis(&self, quantile: f64) -> f64 {
        let histogram = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        // µs → ms, to the µs.
        histogram.value_at_quantile(quantile) as f64 / 1000.0
    }
}

impl AckObserver for Latency {
    /// The produce time an entry carries (µs), or 0 when it has none.
    fn stamp(&self, entry: &Entry) -> u64 {
        entry.field(TS_FIELD).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0)
    }

    /// Records entries produced at `produced` (µs) as acked now.
    fn acked(&self, produced: &[u64]) {
        let now = now_us();
        let mut histogram = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        for &at in produced.iter().filter(|&&at| at > 0) {
            histogram.saturating_record(now.saturating_sub(at).max(1));
        }
    }
}

pub(super) fn now_us() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}
