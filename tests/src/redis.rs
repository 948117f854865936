//! A real `redis-server` per test, on a free loopback port, in its own folder; stopped when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server with append-only persistence on (as the coordinator requires), and waits until it
    /// answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut server = RedisServer { child: None, port, dir };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server; .ci/run does it)");
        self.child = Some(child);
        wait_until_answering(self.port, self.dir.path());
    }

    /// The URL the coordinator connects with.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (loopback).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id; `None` while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `redis-cli` against the server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commands the server has processed so far (`INFO stats`).
    pub fn commands_processed(&self) -> u64 {
        let info = self.cli(&["info", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO stats has total_commands_processed")
    }

    /// How many times the server ran `command` (`INFO commandstats`).
    pub fn command_calls(&self, command: &str) -> u64 {
        let info = self.cli(&["info", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Sets `key` to the bytes `value`, expiring in `ttl` (as a coordinator writes what it stores).
    pub fn set_bytes(&self, key: &str, value: &[u8], ttl: Duration) {
        use std::io::Write;
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-x", "set", key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-cli");
        child.stdin.take().expect("stdin").write_all(value).expect("write to redis-cli");
        assert!(child.wait().expect("redis-cli").success(), "redis-cli set {key}");
        self.cli(&["pexpire", key, &ttl.as_millis().to_string()]);
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and data (append-only file).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills the server (SIGKILL); [`RedisServer::resume`] starts it again on the same port and data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again, on the same port and data (append-only file).
    pub fn resume(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `INFO` sections `sections` (`stats`, `commandstats`, ...) of the Redis server on loopback `port`, as
/// `redis-cli` prints them.
pub fn info(port: u16, sections: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info"])
        .args(sections)
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!("redis-cli -p {port} info: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_until_answering(port: u16, dir: &Path) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let ok = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "ping"])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "PONG");
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server on port {port} (dir {}) did not answer within 10s", dir.display());
}
