//! Host for WebAssembly consumer plugins on Redis Streams.
//!
//! Data flows one way: Redis ([`streams`]) → [`entry`] → plugin ([`instance`])
//! → [`verdict`] → ack, dead-letter or leave pending ([`consumer`]). [`run`]
//! wires it up.

mod bench;
mod bindings;
mod blocking_calls;
mod cache;
mod check;
pub mod cli;
pub mod config;
mod consumer;
mod control;
mod dashboard;
mod dead_letter;
mod demo;
mod deployment;
mod engine;
mod entry;
mod folder;
mod guard;
mod guest_log;
mod handover;
mod http;
mod inspect;
mod instance;
mod lease;
mod limits;
mod local_redis;
mod log_budget;
pub mod logging;
mod metrics;
mod name_lease;
mod plugin;
mod produce;
mod reaper;
mod run;
mod scaffold;
mod settle;
pub mod shutdown;
mod sidecar;
mod streams;
mod verdict;
mod watcher;

pub use bindings::WORLD;
pub use config::{
    BenchConfig, Command, DemoConfig, FolderConfig, InspectConfig, ProduceConfig, RequeueConfig, RunConfig,
};
pub use consumer::ConsumerStats;
pub use dead_letter::DeadLetter;
pub use deployment::RunReport;
pub use engine::Engine;
pub use entry::Entry;
pub use guest_log::Grants;
pub use instance::{Delivery, Instance};
pub use limits::Limits;
pub use plugin::{LoadError, Plugin, version_of as plugin_version};
pub use produce::produce;
pub use run::run;
pub use streams::masked::urls_in as mask_urls;
pub use verdict::Verdict;

use tokio_util::sync::CancellationToken;

/// Carries out one command until it finishes or `shutdown` is cancelled.
pub async fn execute(command: Command, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = match &command {
        Command::Run(config) => config.metrics,
        Command::Serve(config) => config.metrics,
        _ => None,
    };
    if let Some(addr) = metrics {
        http::start(addr, shutdown.clone()).await?;
    }
    let output = match command {
        Command::Run(config) => {
            run(config, shutdown).await?;
            return Ok(());
        }
        Command::Serve(config) => {
            folder::serve(config, shutdown).await?;
            return Ok(());
        }
        Command::Demo(config) => {
            demo::run(config, shutdown).await?;
            return Ok(());
        }
        Command::Bench(config) => bench::bench(config, shutdown).await?,
        Command::Check(path) => check::check(&path)?,
        Command::New(config) => scaffold::create(&config)?,
        Command::Produce(config) => format!("{}\n", produce(&config).await?),
        Command::Pending(config) => inspect::pending(&config).await?,
        Command::DlqList(config) => inspect::dlq_list(&config).await?,
        Command::Info(config) => inspect::info(&config).await?,
        Command::Replay(config) => inspect::replay(&config).await?,
        Command::Trim(config) => inspect::trim(&config).await?,
        Command::Tail(config) => {
            inspect::tail(&config, shutdown).await?;
            return Ok(());
        }
        Command::DlqRequeue(config) => inspect::dlq_requeue(&config).await?,
    };
    // Not print!: that panics when the reader went away (`host … | head`).
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(output.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.map_err(|e| anyhow::anyhow!("cannot write to stdout: {e}")),
    }
}
