//! A real Prometheus (Debian's `prometheus`) per test, on a free loopback port with its own storage,
//! scraping the given `/metrics` endpoints every second; read back through its HTTP API.

use std::net::SocketAddr;
use std::process::Command;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::redis::free_port;

/// A running Prometheus.
pub struct Prometheus {
    daemon: Daemon,
}

impl Prometheus {
    /// Starts one scraping `targets` (job `hemostat`) every second.
    pub async fn start(targets: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: hemostat\n    \
             static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let mut command = Command::new(std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into()));
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        Prometheus { daemon: Daemon::start(command, port, dir, "/-/ready").await }
    }

    /// The scrape targets and their health (`GET /api/v1/targets`): `(scrapeUrl, health)` pairs.
    pub async fn targets(&self) -> Result<Vec<(String, String)>, String> {
        let answer = self.daemon.get_json("/api/v1/targets").await?;
        let targets = answer["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        Ok(targets
            .iter()
            .map(|t| {
                (
                    t["scrapeUrl"].as_str().unwrap_or_default().to_owned(),
                    t["health"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// The result of an instant query (`GET /api/v1/query`): each series' labels and value.
    pub async fn query(&self, query: &str) -> Result<Vec<(Value, f64)>, String> {
        let encoded: String = query
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let answer = self.daemon.get_json(&format!("/api/v1/query?query={encoded}")).await?;
        let results = answer["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(results
            .iter()
            .map(|r| (r["metric"].clone(), r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)))
            .collect())
    }
}
