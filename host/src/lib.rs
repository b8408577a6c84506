//! Host for WebAssembly consumer plugins on Redis Streams.
//!
//! Data flows one way: Redis ([`streams`]) → [`entry`] → plugin ([`wasm`])
//! → [`verdict`] → ack, dead-letter or leave pending ([`consumer`]).
//!
//! The modules are layers, and imports point only down: [`commands`] (one
//! per command of the binary, fed by [`cli`] through [`config`]) →
//! [`supervise`] (deployments and the one watch/reload loop) → [`consumer`]
//! (the consumer-group machinery) → [`wasm`] / [`streams`] → the shared
//! types ([`settings`], [`handler`], [`entry`], [`verdict`],
//! [`dead_letter`], [`effects`], [`metrics`]). [`web`] serves `/metrics` and
//! the demo's dashboard.

pub mod cli;
mod commands;
pub mod config;
mod consumer;
mod dead_letter;
mod effects;
mod entry;
mod handler;
mod keys;
pub mod logging;
mod metrics;
mod origin;
pub mod settings;
pub mod shutdown;
mod streams;
mod supervise;
mod verdict;
mod wasm;
mod web;

pub use commands::produce::produce;
pub use commands::run::run;
pub use config::{
    BenchConfig, Command, DemoConfig, FolderConfig, InspectConfig, ProduceConfig, RequeueConfig, RunConfig,
};
pub use consumer::ConsumerStats;
pub use dead_letter::DeadLetter;
pub use effects::{Effect, StateStore};
pub use entry::Entry;
pub use keys::{partition_name, partition_of, slot};
pub use settings::{Grants, GroupSettings, Limits};
pub use streams::Committed;
pub use streams::masked::urls_in as mask_urls;
pub use supervise::deployment::RunReport;
pub use verdict::Verdict;
pub use wasm::bindings::WORLD;
pub use wasm::engine::Engine;
pub use wasm::instance::{Delivery, Instance};
pub use wasm::plugin::{LoadError, Plugin, version_of as plugin_version};

use tokio_util::sync::CancellationToken;

/// Commits `entries`' effects with their acks as a consumer does: one
/// fenced server-side step per chunk (`streams/commit.rs`), on a connection
/// of its own. For tests and tools that check the commit itself.
pub async fn commit_effects(
    url: &str,
    stream: &str,
    group: &str,
    consumer: &str,
    entries: &[(&str, &[Effect])],
) -> anyhow::Result<Vec<Committed>> {
    let mut conn = streams::Redis::open(url)?.connect(std::time::Duration::ZERO).await?;
    conn.commit(stream, group, consumer, entries).await
}

/// Carries out one command until it finishes or `shutdown` is cancelled.
pub async fn execute(command: Command, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = match &command {
        Command::Run(config) => config.metrics,
        Command::Serve(config) => config.metrics,
        _ => None,
    };
    if let Some(addr) = metrics {
        web::start(addr, shutdown.clone()).await?;
    }
    let output = match command {
        Command::Run(config) => {
            run(config, shutdown).await?;
            return Ok(());
        }
        Command::Serve(config) => {
            supervise::folder::serve(config, shutdown).await?;
            return Ok(());
        }
        Command::Demo(config) => {
            commands::demo::run(config, shutdown).await?;
            return Ok(());
        }
        Command::Bench(config) => commands::bench::bench(config, shutdown).await?,
        Command::Check(path) => commands::check::check(&path)?,
        Command::New(config) => commands::scaffold::create(&config)?,
        Command::Produce(config) => format!("{}\n", produce(&config).await?),
        Command::Pending(config) => commands::partitioned::pending(&config).await?,
        Command::DlqList(config) => commands::partitioned::dlq_list(&config).await?,
        Command::Info(config) => commands::partitioned::info(&config).await?,
        Command::Replay(config) if config.through.is_some() => commands::compare::replay_through(&config).await?,
        Command::Replay(config) => commands::inspect::replay(&config).await?,
        Command::Trim(config) => commands::inspect::trim(&config).await?,
        Command::Events(config) => {
            commands::inspect::events(&config, shutdown).await?;
            return Ok(());
        }
        Command::Tail(config) => {
            commands::inspect::tail(&config, shutdown).await?;
            return Ok(());
        }
        Command::DlqRequeue(config) => commands::partitioned::dlq_requeue(&config).await?,
        Command::Assign(config) => commands::ownership::assign(&config).await?,
        Command::Owners(config) => commands::ownership::owners(&config).await?,
        Command::Test(config) => match &config.record {
            Some((out, from)) => commands::test::record::write(out, from.as_deref())?,
            None => {
                // Plugin calls block (WASI waits): on a blocking thread, as consumers make them.
                let tested = tokio::task::spawn_blocking(move || commands::test::test(&config)).await;
                let (report, passed) = tested.map_err(|e| anyhow::anyhow!("host test failed: {e}"))??;
                print_out(&report)?;
                anyhow::ensure!(passed, "some cases failed (above)");
                return Ok(());
            }
        },
    };
    print_out(&output)
}

/// Writes a command's output. Not print!: that panics when the reader went
/// away (`host … | head`).
fn print_out(output: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(output.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.map_err(|e| anyhow::anyhow!("cannot write to stdout: {e}")),
    }
}
