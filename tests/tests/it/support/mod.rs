//! What the tests share, by concern; every test file does `use crate::support::*`.
//! - `cluster`: a local Redis Cluster (3 masters, 3 replicas) stopped by pid
//! - `servers`: the test binary's redis-server and private ones (stopped by pid), connections, stream names
//! - `queries`: producing entries and the Redis queries tests assert on (XINFO, XPENDING, XLEN, XRANGE)
//! - `blocking`: the same queries on a blocking connection, for tests without a runtime
//! - `binary`: the `host` binary and [`Host`], the one way a test starts it
//! - `process`: [`HostProcess`], a started host whose log is read line by line
//! - `demo`: [`Demo`], a started `host demo` and calls to its dashboard's API
//! - `run`: `host::run` inside the test process and its run configurations
//! - `plugins`: fixture plugins, plugin folders, other versions of them, hand-made wasm
//! - `wait`: polling until something holds
//! - `webhook`: HTTP and HTTPS servers on loopback that plugins' requests reach
//!
//! It uses the `host` library, redis, tokio and libc; nothing of the tests themselves.

mod binary;
pub mod blocking;
mod cluster;
mod demo;
mod plugins;
mod process;
mod queries;
mod run;
mod servers;
mod wait;
mod webhook;

pub use binary::*;
pub use cluster::*;
pub use demo::*;
pub use plugins::*;
pub use process::*;
pub use queries::*;
pub use run::*;
pub use servers::*;
pub use wait::*;
pub use webhook::*;

use std::path::{Path, PathBuf};

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}
