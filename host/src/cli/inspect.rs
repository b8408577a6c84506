//! Flags of the commands that look at or edit a stream without consuming
//! it: `info`, `tail`, `replay`, `trim`, `produce`, `pending`, `dlq list`,
//! `dlq requeue`.

use super::RedisArgs;
use crate::config::{
    EventsConfig, InspectConfig, ProduceConfig, ReplayConfig, RequeueConfig, StreamConfig, Trim, TrimConfig,
};
use crate::settings::dead_letter_key;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub(super) enum DlqSub {
    /// List dead letters with their metadata and original fields.
    List(DlqListArgs),
    /// Move dead letters back onto their origin stream (atomically off the dead-letter stream).
    Requeue(DlqRequeueArgs),
}

#[derive(Args, Debug)]
pub(super) struct PendingArgs {
    /// Stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// Consumer group.
    #[arg(long, value_name = "NAME")]
    group: String,
    /// List at most N entries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    count: usize,
    /// STREAM is the base name of N partitions, STREAM:{0} .. STREAM:{N-1}:
    /// shown summed and per partition.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::keys::MAX_PARTITIONS as i64))]
    partitions: Option<u32>,
    #[command(flatten)]
    redis: RedisArgs,
}

impl PendingArgs {
    pub(super) fn config(self) -> InspectConfig {
        InspectConfig {
            redis_url: self.redis.url(),
            dead_letter: dead_letter_key(&self.stream),
            stream: self.stream,
            group: self.group,
            count: self.count,
            partitions: self.partitions,
            json: false,
        }
    }
}

#[derive(Args, Debug)]
pub(super) struct StreamArgs {
    /// Stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    redis: RedisArgs,
}

impl StreamArgs {
    pub(super) fn config(self) -> StreamConfig {
        StreamConfig { redis_url: self.redis.url(), stream: self.stream, json: self.json, partitions: None }
    }
}

#[derive(Args, Debug)]
pub(super) struct InfoArgs {
    #[command(flatten)]
    target: StreamArgs,
    /// STREAM is the base name of N partitions, STREAM:{0} .. STREAM:{N-1}:
    /// shown summed and per partition.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::keys::MAX_PARTITIONS as i64))]
    partitions: Option<u32>,
}

impl InfoArgs {
    pub(super) fn config(self) -> StreamConfig {
        StreamConfig { partitions: self.partitions, ..self.target.config() }
    }
}

#[derive(Args, Debug)]
pub(super) struct ReplayArgs {
    #[command(flatten)]
    target: StreamArgs,
    /// First id (inclusive; `(ID` exclusive) [default: the oldest].
    #[arg(long, value_name = "ID", default_value = "-")]
    from: String,
    /// Last id (inclusive) [default: the newest].
    #[arg(long, value_name = "ID", default_value = "+")]
    to: String,
    /// At most N entries.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// Run the entries through this plugin version in the sandbox, touching
    /// nothing in Redis (effects captured, not applied); report its verdicts.
    #[arg(long, value_name = "PLUGIN.wasm")]
    through: Option<std::path::PathBuf>,
    /// With --through: also through this version, and list the entries the two handle differently.
    #[arg(long, value_name = "OTHER.wasm", requires = "through")]
    against: Option<std::path::PathBuf>,
    /// With --through: the stream's dead letters instead of its entries.
    #[arg(long, requires = "through")]
    dlq: bool,
    /// With --dlq: the dead-letter stream [default: STREAM:dlq; on a cluster,
    /// {STREAM}:dlq unless STREAM has a hash tag, as `host run`].
    #[arg(long, value_name = "KEY", requires = "dlq")]
    dead_letter: Option<String>,
}

impl ReplayArgs {
    pub(super) fn config(self) -> ReplayConfig {
        let dlq = self.dlq.then(|| self.dead_letter.unwrap_or_else(|| dead_letter_key(&self.target.stream)));
        ReplayConfig {
            target: self.target.config(),
            from: self.from,
            to: self.to,
            count: self.count,
            through: self.through,
            against: self.against,
            dlq,
        }
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["maxlen", "minid"])))]
pub(super) struct TrimArgs {
    #[command(flatten)]
    target: StreamArgs,
    /// Keep about N newest entries (exactly N with --exact).
    #[arg(long, value_name = "N")]
    maxlen: Option<u64>,
    /// Drop entries with ids below ID.
    #[arg(long, value_name = "ID")]
    minid: Option<String>,
    /// Trim exactly (`=`) instead of whole nodes only (`~`, cheaper).
    #[arg(long)]
    exact: bool,
}

impl TrimArgs {
    pub(super) fn config(self) -> TrimConfig {
        TrimConfig {
            target: self.target.config(),
            trim: match (self.maxlen, self.minid) {
                (Some(n), _) => Trim::MaxLen(n),
                (None, id) => Trim::MinId(id.expect("clap requires --maxlen or --minid")),
            },
            exact: self.exact,
        }
    }
}

#[derive(Args, Debug)]
pub(super) struct DlqListArgs {
    /// Origin stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// One JSON object per dead letter (`host test --record` makes fixtures of them).
    #[arg(long)]
    json: bool,
    /// Dead-letter stream [default: STREAM:dlq].
    #[arg(long, value_name = "KEY")]
    dead_letter: Option<String>,
    /// List at most N dead letters.
    #[arg(long, value_name = "N", default_value_t = 100)]
    count: usize,
    /// STREAM is the base name of N partitions, STREAM:{0} .. STREAM:{N-1}:
    /// shown summed and per partition.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::keys::MAX_PARTITIONS as i64))]
    partitions: Option<u32>,
    #[command(flatten)]
    redis: RedisArgs,
}

impl DlqListArgs {
    pub(super) fn config(self) -> InspectConfig {
        InspectConfig {
            redis_url: self.redis.url(),
            dead_letter: self.dead_letter.unwrap_or_else(|| dead_letter_key(&self.stream)),
            stream: self.stream,
            group: String::new(),
            count: self.count,
            partitions: self.partitions,
            json: self.json,
        }
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
pub(super) struct DlqRequeueArgs {
    /// Origin stream key.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// Dead-letter stream [default: STREAM:dlq].
    #[arg(long, value_name = "KEY")]
    dead_letter: Option<String>,
    /// Dead-letter entry ids to requeue.
    #[arg(long, value_name = "ID", num_args = 1..)]
    id: Vec<String>,
    /// Requeue every dead letter.
    #[arg(long)]
    all: bool,
    /// At most N requeues a second (`50/s` or `50`).
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Requeue only the dead letters this plugin version now accepts (run in the
    /// sandbox first); the others stay, their dlq:error saying why now.
    #[arg(long, value_name = "PLUGIN.wasm")]
    through: Option<std::path::PathBuf>,
    /// STREAM is the base name of N partitions, STREAM:{0} .. STREAM:{N-1}:
    /// shown summed and per partition.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::keys::MAX_PARTITIONS as i64))]
    partitions: Option<u32>,
    #[command(flatten)]
    redis: RedisArgs,
}

impl DlqRequeueArgs {
    pub(super) fn config(self) -> RequeueConfig {
        RequeueConfig {
            redis_url: self.redis.url(),
            dead_letter: self.dead_letter.unwrap_or_else(|| dead_letter_key(&self.stream)),
            stream: self.stream,
            ids: if self.all { Vec::new() } else { self.id },
            partitions: self.partitions,
            rate: self.rate,
            through: self.through,
        }
    }
}

#[derive(Args, Debug)]
pub(super) struct ProduceArgs {
    /// Stream key to append to.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// Keep the stream at about N entries (XADD MAXLEN ~ N).
    #[arg(long, value_name = "N")]
    maxlen: Option<u64>,
    /// STREAM is the base name of N partitions: the entry goes to STREAM:{p},
    /// p chosen by --partition-key.
    #[arg(long, value_name = "N", requires = "partition_key",
        value_parser = clap::value_parser!(u32).range(1..=crate::keys::MAX_PARTITIONS as i64))]
    partitions: Option<u32>,
    /// The field whose value picks the partition (a stable hash: one value's
    /// entries all go to one partition, in order).
    #[arg(long, value_name = "FIELD", requires = "partitions")]
    partition_key: Option<String>,
    #[command(flatten)]
    redis: RedisArgs,
    /// Fields of the entry, in order.
    #[arg(value_name = "FIELD=VALUE", required = true, value_parser = parse_field)]
    fields: Vec<(String, String)>,
}

impl ProduceArgs {
    pub(super) fn config(self) -> ProduceConfig {
        ProduceConfig {
            redis_url: self.redis.url(),
            stream: self.stream,
            maxlen: self.maxlen,
            partition: self.partitions.zip(self.partition_key.map(String::into_bytes)),
            fields: self.fields.into_iter().map(|(f, v)| (f.into_bytes(), v.into_bytes())).collect(),
        }
    }
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((field, value)) if !field.is_empty() => Ok((field.to_string(), value.to_string())),
        _ => Err(format!("expected FIELD=VALUE, got {s:?}")),
    }
}

#[derive(Args, Debug)]
pub(super) struct EventsArgs {
    /// Show the newest N events first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    count: usize,
    /// Then print each new event as it comes, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// One JSON object per event instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    redis: RedisArgs,
}

impl EventsArgs {
    pub(super) fn config(self) -> EventsConfig {
        let target = StreamConfig {
            redis_url: self.redis.url(),
            stream: crate::keys::EVENTS.to_string(),
            json: self.json,
            partitions: None,
        };
        EventsConfig { target, count: self.count, follow: self.follow }
    }
}

/// `N/s` or `N`: a positive number of requeues a second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let n = text.strip_suffix("/s").unwrap_or(text);
    match n.trim().parse::<f64>() {
        Ok(rate) if (0.001..=1_000_000.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a rate: use N/s with N from 0.001 to 1000000, e.g. 50/s")),
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::try_parse;

    #[test]
    fn a_field_needs_a_value() {
        assert!(try_parse(["host", "produce", "--stream", "s", "novalue"]).is_err());
    }
}
