//! Host for WebAssembly consumer plugins on Redis Streams.
//!
//! Data flows one way: Redis ([`streams`]) → [`entry`] → plugin ([`instance`])
//! → [`verdict`] → ack or leave pending ([`consumer`]). [`run`] wires it up.

mod bindings;
pub mod cli;
pub mod config;
mod consumer;
mod engine;
mod entry;
mod guest_log;
mod instance;
pub mod logging;
mod plugin;
mod produce;
mod run;
pub mod shutdown;
mod streams;
mod verdict;

pub use bindings::WORLD;
pub use config::{Command, ProduceConfig, RunConfig};
pub use consumer::ConsumerStats;
pub use engine::Engine;
pub use entry::Entry;
pub use plugin::{LoadError, Plugin, version_of as plugin_version};
pub use produce::produce;
pub use run::{RunReport, run};
pub use verdict::Verdict;

use tokio_util::sync::CancellationToken;

/// Carries out one command until it finishes or `shutdown` is cancelled.
pub async fn execute(command: Command, shutdown: CancellationToken) -> anyhow::Result<()> {
    match command {
        Command::Run(config) => run(config, shutdown).await.map(|_| ()),
        Command::Produce(config) => {
            println!("{}", produce(&config).await?);
            Ok(())
        }
    }
}
