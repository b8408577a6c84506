//! The `host` binary: its path (brought up to date once per run) and
//! [`Host`], the one way a test starts it.

use super::{HostProcess, plugin, redis_url, root};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The `host` binary of this build, brought up to date once per run (cargo
/// does not rebuild another package's binary for this test crate).
fn host_bin() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "host", "--bin", "host"])
            .current_dir(root())
            .status()
            .expect("cannot run cargo to build the host binary");
        assert!(status.success(), "building the host binary failed");
    });
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash> → target/<profile>/host
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("host");
    assert!(bin.exists(), "{} not found: run `cargo build -p host` first (`make test` does)", bin.display());
    bin
}

/// `host ARGS…` being set up, then run in one of three ways:
/// - [`Host::output`]: to its exit, stdin closed, stdout and stderr captured;
/// - [`Host::start`]: a [`HostProcess`] whose stderr is read line by line;
/// - [`Host::spawn`]: a bare child, its streams as set (inherited otherwise),
///   for tests that read them or reap it themselves.
///
/// Only what is asked for is set: the environment and working directory are
/// the test's own unless [`Host::env`], [`Host::logging`] or [`Host::dir`]
/// change them.
pub struct Host {
    command: Command,
}

impl Host {
    /// `host ARGS…`.
    pub fn new<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Self {
        let mut command = Command::new(host_bin());
        command.args(args);
        Host { command }
    }

    /// `host run` on `stream` (group `g`) with the fixture plugin
    /// `plugin_name` against the test Redis, plus `extra` flags, in the
    /// environment of [`Host::logging`].
    pub fn run(stream: &str, plugin_name: &str, extra: &[&str]) -> Self {
        let plugin = plugin(plugin_name);
        let plugin = plugin.to_str().expect("UTF-8 path");
        Host::new(["run", "--stream", stream, "--group", "g", "--plugin", plugin, "--redis", redis_url()])
            .args(extra)
            .logging()
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.command.args(args);
        self
    }

    /// Sets environment variable `key`.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Unsets environment variable `key`.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// The environment of a test that reads the log: `RUST_LOG=info`,
    /// colours off and no `REDIS_URL` (the flags name the server).
    pub fn logging(self) -> Self {
        self.env("RUST_LOG", "info").env("NO_COLOR", "1").env_remove("REDIS_URL")
    }

    /// Runs it in `dir` (relative paths resolve there).
    pub fn dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Where its stdout goes.
    pub fn stdout(mut self, to: Stdio) -> Self {
        self.command.stdout(to);
        self
    }

    /// Where its stderr goes.
    pub fn stderr(mut self, to: Stdio) -> Self {
        self.command.stderr(to);
        self
    }

    /// Runs it to its exit: stdin closed, stdout and stderr captured.
    pub fn output(mut self) -> Output {
        self.command.output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.command))
    }

    /// Starts it. The caller stops it by pid (`Child::kill` or a signal) and reaps it.
    pub fn spawn(mut self) -> Child {
        self.command.spawn().unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.command))
    }

    /// Starts it with its stderr read line by line (stdout stays the test's);
    /// killed by pid when the [`HostProcess`] is dropped still running.
    pub fn start(self) -> HostProcess {
        HostProcess::new(self.stderr(Stdio::piped()).spawn())
    }
}
