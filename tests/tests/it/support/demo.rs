//! [`Demo`]: `host demo` started (with [`Host::start`]) on the test Redis
//! with its dashboard on a free port, and calls to the dashboard's JSON API
//! with the run's token.

use super::{Host, HostProcess, plugin, redis_url, unique_stream};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// A `host demo` process on the test Redis, with its dashboard on a free port.
pub struct Demo {
    pub process: HostProcess,
    /// `http://ADDR`.
    pub base: String,
    pub stream: String,
    /// The run's API token (from `--token-file`), sent with every call.
    pub token: String,
    token_file: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The demo removes it on a clean exit, not when killed.
        let _ = std::fs::remove_file(&self.token_file);
        if std::thread::panicking() {
            self.process.collect();
            let tail = self.process.log.len().saturating_sub(40);
            eprintln!("the demo's last log lines:\n{}", self.process.log[tail..].join("\n"));
        }
    }
}

impl Demo {
    /// The claim threshold the demo runs with (ms).
    pub const CLAIM_IDLE_MS: u64 = 1000;

    /// Starts the demo on a fresh stream: no sample orders, claim threshold
    /// [`Demo::CLAIM_IDLE_MS`], reapers that only run at start (claims are the
    /// test's to make; unless `extra` sets `--reap-interval-ms`), plus `extra` flags.
    pub fn start(name: &str, extra: &[&str]) -> Self {
        Self::start_in(None, name, extra)
    }

    /// Like [`Demo::start`], run in `dir` (so relative plugin paths are resolved there).
    pub fn start_in(dir: Option<&Path>, name: &str, extra: &[&str]) -> Self {
        let stream = unique_stream(name);
        let token_file =
            std::env::temp_dir().join(format!("host-token-{}-{}", std::process::id(), stream.replace(':', "-")));
        let token_arg = token_file.to_str().unwrap().to_string();
        let notifications = plugin("notifier");
        let analytics = plugin("python-analytics");
        let claim = Self::CLAIM_IDLE_MS.to_string();
        let mut args = vec!["demo", "--stream-key", &stream, "--port", "0", "--seed", "0"];
        args.extend_from_slice(&["--claim-idle-ms", &claim]);
        if !extra.contains(&"--reap-interval-ms") {
            args.extend_from_slice(&["--reap-interval-ms", "600000"]);
        }
        for (flag, file) in [("--notifications-plugin", &notifications), ("--analytics-plugin", &analytics)] {
            if !extra.contains(&flag) {
                args.extend_from_slice(&[flag, file.to_str().unwrap()]);
            }
        }
        args.extend_from_slice(extra);
        if !extra.contains(&"--probe-redis") && !extra.contains(&"--redis") {
            args.extend_from_slice(&["--redis", redis_url()]);
        }
        args.extend_from_slice(&["--token-file", &token_arg]);
        let mut host = Host::new(&args).logging();
        if let Some(dir) = dir {
            host = host.dir(dir);
        }
        let mut process = host.start();
        process.wait_log(MINUTE, "the dashboard", |log| log.iter().any(|l| l.contains("dashboard on http://")));
        let line = process.log.iter().find(|l| l.contains("dashboard on http://")).unwrap();
        let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
        let token = std::fs::read_to_string(&token_file).expect("the demo wrote its token file").trim().to_string();
        Demo { process, base: format!("http://{addr}"), stream, token, token_file }
    }

    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// A JSON API call with the run's token; returns the HTTP status and the JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let token = self.token.as_str();
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).header("X-Host-Token", token).call(),
            (_, Some(body)) => agent.post(&url).header("X-Host-Token", token).send_json(body),
            (_, None) => agent.post(&url).header("X-Host-Token", token).send_empty(),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let json: Value = response.body_mut().read_json().unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        (status, json)
    }

    /// A call that must succeed.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {json}");
        json
    }

    pub fn state(&self) -> Value {
        self.ok("GET", "/api/state", None)
    }

    pub fn produce(&self, count: usize, kind: &str) -> Value {
        self.ok("POST", "/api/produce", Some(json!({"count": count, "kind": kind})))
    }

    /// A consumer's entry in `/api/state`.
    pub fn consumer(&self, group: &str, name: &str) -> Value {
        let state = self.state();
        group_of(&state, group)["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Produces 4 entries at a time until `consumer` has dropped every
    /// delivery its crash drill asked for.
    pub fn until_crashed(&self, group: &str, consumer: &str) {
        for _ in 0..50 {
            if self.consumer(group, consumer)["crash_due"] == 0 {
                return;
            }
            self.produce(4, "order.placed");
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("{consumer} never received the deliveries its crash drill drops");
    }
}

/// Group `group` of an `/api/state` reply.
pub fn group_of<'a>(state: &'a Value, group: &str) -> &'a Value {
    state["groups"].as_array().unwrap().iter().find(|g| g["name"] == group).expect("group in state")
}
