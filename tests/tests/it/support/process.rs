//! [`HostProcess`]: a `host` child process (started with [`Host::start`](super::Host::start))
//! whose stderr is collected line by line, stopped by pid (SIGTERM on
//! request, SIGKILL when dropped still running).

use std::process::Child;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `host` binary as a child process, its stderr collected line by line.
pub struct HostProcess {
    pub child: Child,
    lines: Receiver<String>,
    reader: Option<JoinHandle<()>>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
}

impl HostProcess {
    /// Takes over `child`, whose stderr must be piped: a thread reads it line by line.
    pub(super) fn new(mut child: Child) -> Self {
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        HostProcess { child, lines, reader: Some(reader), log: Vec::new() }
    }

    /// Collects the log lines that have arrived so far.
    pub fn collect(&mut self) {
        self.log.extend(self.lines.try_iter());
    }

    /// Collects log lines until `done(log)` holds; fails after `limit`.
    pub fn wait_log(&mut self, limit: Duration, what: &str, done: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        while !done(&self.log) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}; log: {:#?}", self.log);
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.log.push(line);
                // Take whatever else has arrived before checking again: checks scan the whole log.
                self.log.extend(self.lines.try_iter());
            }
        }
    }

    /// The log of a process that already exited (e.g. killed): everything it wrote.
    pub fn drain_log(&mut self) -> Vec<String> {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        self.log.extend(self.lines.try_iter());
        self.log.clone()
    }

    /// Sends SIGTERM and waits (at most 5 s) for the exit; returns the status
    /// and how long the exit took. The rest of the log is collected.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        // SAFETY: signalling the child this helper started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let signalled = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for host") {
                break status;
            }
            if signalled.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!("host did not exit within 5 s of SIGTERM; log: {:#?}", self.log);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = signalled.elapsed();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        self.log.extend(self.lines.try_iter());
        (status, took)
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
