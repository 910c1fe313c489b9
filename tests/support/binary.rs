//! The real `platos-host` binary as a child process: started until it
//! listens, its log read line by line, signalled, stopped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `platos-host serve`.
pub struct Binary {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Binary {
    /// Spawns `command` (its stderr piped) and waits until it says it
    /// listens; panics with its log if it does not within two minutes.
    pub fn start(mut command: Command) -> Binary {
        let mut child = command.spawn().expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (sender, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut binary =
            Binary { child, address: "127.0.0.1:0".parse().unwrap(), log, seen: Vec::new() };
        let line = binary.wait_for("listening on http://", Duration::from_secs(120));
        let address = line.split("listening on http://").nth(1).unwrap();
        let address: String =
            address.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
        binary.address = address.parse().unwrap();
        binary
    }

    /// Waits for a log line containing `needle`; panics with the log so far
    /// after `timeout`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no `{needle}` in the log:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Sends signal `name` (`TERM`, `HUP`, `KILL`...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL (no shutdown of any kind), then the whole log.
    pub fn kill(mut self) -> String {
        self.signal("KILL");
        self.child.wait().unwrap();
        while let Ok(line) = self.log.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// SIGTERM, then the exit status and the whole log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}
