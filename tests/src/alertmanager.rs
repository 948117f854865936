//! A real Alertmanager (Debian's `prometheus-alertmanager`) per test, on a free loopback port with its own
//! configuration and storage, clustering off. It routes every alert to one webhook receiver (a
//! [`WebhookServer`](crate::webhook::WebhookServer)), grouped by alert name, node and container, quickly
//! (group_wait and group_interval of one second), resolved notifications included, so a test sees both
//! what Alertmanager holds ([`Alertmanager::alerts`]) and what it sends on.

use std::process::Command;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::redis::free_port;

/// A running Alertmanager.
pub struct Alertmanager {
    daemon: Daemon,
}

impl Alertmanager {
    /// Starts one that sends its notifications to `receiver_url`.
    pub async fn start(receiver_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'node', 'container']\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      \
             - url: '{receiver_url}'\n        send_resolved: true\n"
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let port = free_port();
        let mut command =
            Command::new(std::env::var("ALERTMANAGER").unwrap_or_else(|_| "prometheus-alertmanager".into()));
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        Alertmanager { daemon: Daemon::start(command, port, dir, "/-/ready").await }
    }

    /// Its base URL (`ALERTMANAGER_URL`).
    pub fn url(&self) -> &str {
        &self.daemon.url
    }

    /// The alerts it holds now, through its own API (`GET /api/v2/alerts`): active, silenced and inhibited
    /// ones; resolved alerts are not listed.
    pub async fn alerts(&self) -> Result<Vec<Value>, String> {
        let alerts = self.daemon.get_json("/api/v2/alerts").await?;
        alerts.as_array().cloned().ok_or_else(|| format!("not a list: {alerts}"))
    }
}
