//! Command-line flags (clap). The only module that knows about clap: it turns
//! flags into a validated [`Command`]. `run.rs` holds `host run`'s flags
//! (their settings checked by `GroupSettings::validate`, as folder mode's
//! files are), `inspect.rs` those of the commands that look at a stream,
//! `demo_bench.rs` those of `host demo` and `host bench`, `ownership.rs`
//! those of `host assign` and `host owners`.
//!
//! May use: `config` (the commands' settings) and `settings`, and the WIT
//! package name for `--version`; nothing that runs.

mod demo_bench;
mod inspect;
mod ownership;
mod run;
mod test;

use crate::config::{self, Command, Lang, NewConfig};
use clap::{Args, CommandFactory, Parser, Subcommand};
use demo_bench::{BenchArgs, DemoArgs};
use inspect::{DlqSub, EventsArgs, InfoArgs, PendingArgs, ProduceArgs, ReplayArgs, StreamArgs, TrimArgs};
use ownership::{AssignArgs, OwnersArgs};
use run::RunArgs;
use std::path::PathBuf;
use test::TestArgs;

/// What `host --version` prints after the name: this build's version and the
/// plugin contract it serves (a plugin built against another package version
/// is refused at load).
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (plugin contract {}: worlds consumer, batch-consumer)",
        env!("CARGO_PKG_VERSION"),
        crate::wasm::bindings::WIT_PACKAGE
    )
});

#[derive(Parser, Debug)]
#[command(name = "host", version = VERSION.as_str(), about = "Run WebAssembly consumer plugins on Redis Streams")]
struct Cli {
    #[command(subcommand)]
    command: Sub,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormatArg,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process; boxing buys nothing")]
enum Sub {
    /// Consume a stream through a consumer group, calling the plugin's `handle` per entry.
    Run(RunArgs),
    /// The redis.io streaming demo with Wasm handlers and a live web dashboard.
    Demo(DemoArgs),
    /// Measure throughput and produce-to-ack latency on a fresh stream; prints one JSON line.
    Bench(BenchArgs),
    /// Check that a plugin would run (a component of the plugin world) and describe it.
    Check {
        /// The plugin component (.wasm).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Describe a stream, its groups and their consumers (XINFO).
    Info(InfoArgs),
    /// Print entries as they are added, like `tail -f` (touches no group).
    Tail(StreamArgs),
    /// Print a range of entries (XRANGE).
    Replay(ReplayArgs),
    /// Trim a stream (XTRIM MAXLEN or MINID).
    Trim(TrimArgs),
    /// Create a plugin project (build it with `make`): the "cargo new" of plugins.
    New {
        /// The plugin's language.
        #[arg(long, value_enum)]
        lang: LangArg,
        /// Folder in which the project folder NAME is created.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Plugin name (lowercase letters, digits, '-'); also the project folder.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Append one entry to a stream (XADD), printing its id.
    Produce(ProduceArgs),
    /// Show a group's pending entries: per consumer, then each with idle time and deliveries.
    Pending(PendingArgs),
    /// Inspect or requeue dead letters.
    #[command(subcommand)]
    Dlq(DlqSub),
    /// Assign a data stream to the workers of a service (stream ownership mode).
    Assign(AssignArgs),
    /// Show which worker owns each assigned data stream, its lease and progress.
    Owners(OwnersArgs),
    /// Run a plugin on fixture cases offline (no Redis): verdicts, what follows them, effects.
    Test(TestArgs),
    /// Print the failure events (dead letters, faults, disownings, failed reloads) of host:events.
    Events(EventsArgs),
}

/// Values of `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormatArg {
    Text,
    Json,
}

/// Languages of `host new --lang`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LangArg {
    Rust,
    Python,
    Js,
    C,
    Zig,
}

#[derive(Args, Debug)]
struct RedisArgs {
    /// Redis server URL [default: redis://127.0.0.1:6379, or host.toml's `redis` in folder mode].
    #[arg(long = "redis", env = "REDIS_URL", value_name = "URL")]
    url: Option<String>,
}

impl RedisArgs {
    fn url(self) -> String {
        self.url.unwrap_or_else(|| config::DEFAULT_REDIS_URL.to_string())
    }
}

/// Parses the process arguments into the command and the log format; on a
/// bad flag (or a setting out of range) prints clap's message and exits 2.
pub fn parse() -> (Command, crate::logging::LogFormat) {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => crate::logging::LogFormat::Text,
        LogFormatArg::Json => crate::logging::LogFormat::Json,
    };
    (from_cli(cli).unwrap_or_else(|error| error.exit()), format)
}

/// Parses `args` (the first is the program name), for tests.
pub fn try_parse<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).and_then(from_cli)
}

fn from_cli(cli: Cli) -> Result<Command, clap::Error> {
    Ok(match cli.command {
        Sub::Run(a) => a.command().map_err(|message| invalid_value("run", message))?,
        Sub::Demo(a) => Command::Demo(a.config()),
        Sub::Bench(a) => Command::Bench(a.config()),
        Sub::Check { file } => Command::Check(file),
        Sub::Info(a) => Command::Info(a.config()),
        Sub::Tail(a) => Command::Tail(a.config()),
        Sub::Replay(a) => Command::Replay(a.config()),
        Sub::Trim(a) => Command::Trim(a.config()),
        Sub::New { lang, dir, name } => Command::New(NewConfig {
            lang: match lang {
                LangArg::Rust => Lang::Rust,
                LangArg::Python => Lang::Python,
                LangArg::Js => Lang::Js,
                LangArg::C => Lang::C,
                LangArg::Zig => Lang::Zig,
            },
            name,
            parent: dir,
        }),
        Sub::Produce(a) => Command::Produce(a.config()),
        Sub::Pending(a) => Command::Pending(a.config()),
        Sub::Dlq(DlqSub::List(a)) => Command::DlqList(a.config()),
        Sub::Dlq(DlqSub::Requeue(a)) => Command::DlqRequeue(a.config()),
        Sub::Assign(a) => Command::Assign(a.config().map_err(|message| invalid_value("assign", message))?),
        Sub::Owners(a) => Command::Owners(a.config().map_err(|message| invalid_value("owners", message))?),
        Sub::Test(a) => Command::Test(a.config()),
        Sub::Events(a) => Command::Events(a.config()),
    })
}

/// A value clap parsed but the settings refuse, as clap reports a bad value
/// (with `subcommand`'s usage; exit code 2).
fn invalid_value(subcommand: &str, message: String) -> clap::Error {
    let mut cli = Cli::command();
    cli.build();
    let command = cli.find_subcommand_mut(subcommand).expect("a subcommand of Cli");
    command.error(clap::error::ErrorKind::ValueValidation, message)
}
