//! Flags of stream ownership mode's tools: `host assign` (add an
//! assignment, in the seed library's message format) and `host owners`
//! (which worker owns which data stream). `host run --assignments` is in `run.rs`.

use super::RedisArgs;
use crate::config::OwnershipConfig;
use crate::settings::service_of;
use clap::Args;

#[derive(Args, Debug)]
pub(super) struct AssignArgs {
    /// The assignment (load-balancer) stream, `<service>-input`.
    #[arg(long, value_name = "KEY")]
    assignments: String,
    /// The data stream to assign.
    #[arg(long, value_name = "KEY")]
    stream: String,
    /// The assignment's Info, a JSON object handed to the plugin with each entry.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    info: String,
    #[command(flatten)]
    redis: RedisArgs,
}

#[derive(Args, Debug)]
pub(super) struct OwnersArgs {
    /// The assignment (load-balancer) stream, `<service>-input`.
    #[arg(long, value_name = "KEY")]
    assignments: String,
    /// The service (its group) [default: KEY without its -input suffix].
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    redis: RedisArgs,
}

/// The service of `key`, or the error saying to name it.
fn service(key: &str, given: Option<String>) -> Result<String, String> {
    given
        .or_else(|| service_of(key).map(str::to_string))
        .ok_or_else(|| format!("--assignments {key:?} does not end in -input: name the service with --service"))
}

impl AssignArgs {
    pub(super) fn config(self) -> Result<OwnershipConfig, String> {
        match serde_json::from_str::<serde_json::Value>(&self.info) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(other) => return Err(format!("--info must be a JSON object, not {other}")),
            Err(error) => return Err(format!("--info is not JSON: {error}")),
        }
        if self.stream.is_empty() {
            return Err("--stream is empty: name the data stream to assign".into());
        }
        Ok(OwnershipConfig {
            redis_url: self.redis.url(),
            service: service_of(&self.assignments).unwrap_or_default().to_string(),
            assignments: self.assignments,
            assign: Some((self.stream, self.info)),
            json: false,
        })
    }
}

impl OwnersArgs {
    pub(super) fn config(self) -> Result<OwnershipConfig, String> {
        Ok(OwnershipConfig {
            redis_url: self.redis.url(),
            service: service(&self.assignments, self.service)?,
            assignments: self.assignments,
            assign: None,
            json: self.json,
        })
    }
}
