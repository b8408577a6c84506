//! Flags of `host test`: a plugin's fixture cases, offline, or `--record`
//! to make a fixture file from `host replay --json` / `host dlq list --json`.

use crate::config::TestConfig;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(super) struct TestArgs {
    /// The plugin component (.wasm).
    #[arg(value_name = "PLUGIN", required_unless_present = "record")]
    plugin: Option<PathBuf>,
    /// Fixture files (TOML; see docs/testing-plugins.md).
    #[arg(value_name = "FIXTURE", required_unless_present = "record")]
    fixtures: Vec<PathBuf>,
    /// One JSON object per case, then a summary object.
    #[arg(long)]
    json: bool,
    /// Write a fixture file made from `host replay --json` or `host dlq list --json`
    /// output (read from stdin, or --from) instead of testing.
    #[arg(long, value_name = "OUT.toml", conflicts_with_all = ["plugin", "fixtures", "json"])]
    record: Option<PathBuf>,
    /// With --record: read the JSON lines from FILE instead of stdin.
    #[arg(long, value_name = "FILE", requires = "record")]
    from: Option<PathBuf>,
}

impl TestArgs {
    pub(super) fn config(self) -> TestConfig {
        TestConfig {
            plugin: self.plugin.unwrap_or_default(),
            fixtures: self.fixtures,
            json: self.json,
            record: self.record.map(|out| (out, self.from)),
        }
    }
}
