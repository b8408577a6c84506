//! Per-call cost of `handle` on a warm instance: with the default sandbox
//! (epoch deadline, memory/table limiter, returned-size cap) and with fuel
//! metering on top, for an order entry of 4 fields; and, to split the cost
//! into a fixed part and a per-field part, for an entry with no field at all
//! (mode `limits, 0 fields`; the orders plugins reject it, which costs them
//! little). Prints one JSON line per plugin and mode.
//!
//!     make plugins && cargo bench -p host --bench call_cost [-- PLUGIN.wasm...]
//!
//! Default plugins: every orders plugin in plugins/dist (Rust, Python, JS, C, Zig).

use anyhow::{Context, Result};
use host::{Delivery, Engine, Entry, Instance, Limits, Plugin, Verdict};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut plugins: Vec<PathBuf> =
        std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(PathBuf::from).collect();
    if plugins.is_empty() {
        plugins = ["orders", "python-orders", "js-orders", "c-orders", "zig-orders"]
            .iter()
            .map(|n| root.join(format!("plugins/dist/{n}.wasm")))
            .collect();
    }
    let engine = Engine::new()?;
    for path in &plugins {
        for fuel in [None, Some(u64::MAX / 2)] {
            let limits = Limits { max_fuel: fuel, ..Limits::default() };
            let plugin = Plugin::load(&engine.flavour(fuel.is_some())?, path)
                .with_context(|| format!("loading {} (run `make plugins` first)", path.display()))?;
            let delivery =
                Delivery { stream: "bench".into(), group: "g".into(), consumer: "c".into(), state: None, http: None };
            let mut instance = Instance::new(&plugin, delivery, Duration::from_secs(5), limits)?;
            let (calls, took) = measure(&mut instance, true)?;
            println!(
                "{{\"plugin\":\"{}\",\"mode\":\"{}\",\"calls\":{calls},\"ns_per_call\":{:.0}}}",
                plugin.tag.name,
                if fuel.is_some() { "limits+fuel" } else { "limits" },
                took.as_nanos() as f64 / calls as f64
            );
            if fuel.is_none() {
                let (calls, took) = measure(&mut instance, false)?;
                println!(
                    "{{\"plugin\":\"{}\",\"mode\":\"limits, 0 fields\",\"calls\":{calls},\"ns_per_call\":{:.0}}}",
                    plugin.tag.name,
                    took.as_nanos() as f64 / calls as f64
                );
            }
        }
    }
    Ok(())
}

/// Calls `handle` with a valid order (or, without `fields`, an entry of no
/// field) until ~2 s have passed (after a warm-up); every order must be acked.
fn measure(instance: &mut Instance, fields: bool) -> Result<(u64, Duration)> {
    let fields = match fields {
        true => vec![
            (b"type".to_vec(), b"order.placed".to_vec()),
            (b"order_id".to_vec(), b"o-1".to_vec()),
            (b"customer".to_vec(), b"customer-1".to_vec()),
            (b"amount".to_vec(), b"12.50".to_vec()),
        ],
        false => Vec::new(),
    };
    let expect_ack = !fields.is_empty();
    let mut entry = Entry { id: "1700000000000-0".into(), fields, delivery_count: 1 };
    let mut call = |n: u64| -> Result<()> {
        for _ in 0..n {
            let verdict = instance.handle(&mut entry);
            anyhow::ensure!(!expect_ack || verdict == Verdict::Ack, "expected ack, got {verdict}");
        }
        Ok(())
    };
    call(1_000)?;
    let (mut calls, mut batch) = (0, 1_000);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        call(batch)?;
        calls += batch;
        batch = (batch * 2).min(100_000);
    }
    Ok((calls, started.elapsed()))
}
