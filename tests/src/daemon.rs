//! A server program a test starts (Alertmanager, Prometheus): its own temporary folder, a free loopback
//! port, ready once its readiness URL answers 200, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server program.
pub struct Daemon {
    child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// Its folder (configuration, storage).
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Runs `command` (configured to listen on `port` and keep its files in `dir`), and waits until
    /// `ready_path` answers 200.
    pub async fn start(mut command: Command, port: u16, dir: tempfile::TempDir, ready_path: &str) -> Self {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} is installed (apt-get install {program}; .ci/run does it): {e}"));
        let daemon = Daemon { child, url: format!("http://127.0.0.1:{port}"), dir };
        let ready = format!("{}{ready_path}", daemon.url);
        crate::eventually(&format!("{program} ready"), Duration::from_secs(30), || async {
            match reqwest::get(&ready).await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("{}", response.status())),
                Err(error) => Err(error.to_string()),
            }
        })
        .await;
        daemon
    }

    /// GETs `path` and returns its JSON.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let response = reqwest::get(format!("{}{path}", self.url)).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
