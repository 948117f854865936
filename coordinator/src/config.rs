//! The coordinator's configuration: flags, environment (the original's variable names), and an optional
//! TOML file, with precedence flag > environment > file > default. Unknown keys in the file are an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use hemostat_pki::TlsFiles;
use serde::Deserialize;

use crate::alerting::{AlertingConfig, AlertingSettings};
use crate::analysis::AnalyzerConfig;
use crate::analysis::llm::LlmConfig;
use crate::analysis::patterns::PatternConfig;
use crate::dashboard::DashboardConfig;
use crate::dashboard::auth::DashboardTokens;
use crate::events::EventRetention;
use crate::policy::Budget;
use crate::remediation::RemediationConfig;
use crate::store::{StoreConfig, StormConfig};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its position.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Command-line flags and environment variables of `hemostat-coordinator`.
#[derive(Debug, Default, Parser)]
#[command(name = "hemostat-coordinator", version, about = "The HemoStat coordinator")]
pub struct CoordinatorArgs {
    /// A TOML configuration file (keys as the long flags, with underscores).
    #[arg(long, env = "HEMOSTAT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve gRPC on (nodes, operators, health, reflection) [default: 0.0.0.0:50051].
    #[arg(long, env = "HEMOSTAT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address to serve Prometheus metrics on, plain HTTP `/metrics` (e.g. 0.0.0.0:9464) [default: off].
    #[arg(long, env = "HEMOSTAT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Address to serve the web dashboard on, plain HTTP (e.g. 127.0.0.1:8080) [default: off]. Any
    /// non-loopback address needs dashboard tokens.
    #[arg(long, env = "HEMOSTAT_DASHBOARD_LISTEN")]
    pub dashboard_listen: Option<SocketAddr>,
    /// Dashboard tokens, comma-separated `role:token` or `name:role:token` (role viewer or admin).
    #[arg(long, env = "HEMOSTAT_DASHBOARD_TOKENS", hide_env_values = true)]
    pub dashboard_tokens: Option<String>,
    /// A file of dashboard tokens, one `role:token` or `name:role:token` a line.
    #[arg(long, env = "HEMOSTAT_DASHBOARD_TOKENS_FILE")]
    pub dashboard_tokens_file: Option<PathBuf>,
    /// Folder with ca.pem, coordinator.pem and coordinator-key.pem [default: certs].
    #[arg(long, env = "HEMOSTAT_CERTS_DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Folder for the embedded state store, used when no Redis is configured [default: hemostat-data].
    #[arg(long, env = "HEMOSTAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Redis URL (redis://[:password@]host:port/db); takes precedence over REDIS_HOST.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Redis host; with neither this nor REDIS_URL, the embedded store is used.
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<String>,
    /// Redis port [default: 6379].
    #[arg(long, env = "REDIS_PORT")]
    pub redis_port: Option<u16>,
    /// Redis password.
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// Seconds between two actions on one container [default: 3600].
    #[arg(long, env = "RESPONDER_COOLDOWN_SECONDS")]
    pub cooldown_seconds: Option<u64>,
    /// Most actions on one container in any rolling hour [default: 3].
    #[arg(long, env = "RESPONDER_MAX_RETRIES_PER_HOUR")]
    pub max_retries_per_hour: Option<u32>,
    /// Seconds a restart waits for a graceful stop before killing [default: 10].
    #[arg(long, env = "RESPONDER_STOP_TIMEOUT_SECONDS")]
    pub stop_timeout_seconds: Option<u32>,
    /// More containers than this needing remediation within the storm window stops automatic actions [default: 5].
    #[arg(long, env = "RESPONDER_STORM_THRESHOLD")]
    pub storm_threshold: Option<u32>,
    /// The storm window, in seconds [default: 60].
    #[arg(long, env = "RESPONDER_STORM_WINDOW_SECONDS")]
    pub storm_window_seconds: Option<u64>,
    /// Decisions wait for an admin's approval (`hemostat approve <id>`) (true/false) [default: false].
    #[arg(long, env = "RESPONDER_REQUIRE_APPROVAL")]
    pub require_approval: Option<bool>,
    /// Seconds a decision waits for approval before it expires [default: 3600].
    #[arg(long, env = "RESPONDER_APPROVAL_TTL_SECONDS")]
    pub approval_ttl_seconds: Option<u64>,
    /// Seconds the audit log keeps its records [default: 604800, 7 days].
    #[arg(long, env = "RESPONDER_AUDIT_RETENTION_SECONDS")]
    pub audit_retention_seconds: Option<u64>,
    /// Record what would be done and do nothing (true/false) [default: false].
    #[arg(long, env = "RESPONDER_DRY_RUN")]
    pub dry_run: Option<bool>,
    /// Decisions below this confidence are false alarms [default: 0.7].
    #[arg(long, env = "ANALYZER_CONFIDENCE_THRESHOLD")]
    pub confidence_threshold: Option<f64>,
    /// Alerts kept per container for pattern analysis [default: 10].
    #[arg(long, env = "ANALYZER_HISTORY_SIZE")]
    pub history_size: Option<usize>,
    /// Seconds alerts are kept [default: 3600].
    #[arg(long, env = "ANALYZER_HISTORY_TTL")]
    pub history_ttl: Option<u64>,
    /// Seconds a value must stay above its threshold to be sustained [default: 60].
    #[arg(long, env = "ANALYZER_SUSTAIN_SECONDS")]
    pub sustain_seconds: Option<u64>,
    /// Seconds of samples a memory leak is fitted over [default: 1800].
    #[arg(long, env = "ANALYZER_LEAK_WINDOW_SECONDS")]
    pub leak_window_seconds: Option<u64>,
    /// A leak matters when it reaches the limit within this many seconds [default: 3600].
    #[arg(long, env = "ANALYZER_LEAK_HORIZON_SECONDS")]
    pub leak_horizon_seconds: Option<u64>,
    /// Events of each type the event log keeps; older ones are trimmed as new ones arrive [default: 10000].
    #[arg(long, env = "ALERT_MAX_EVENTS")]
    pub max_events: Option<u64>,
    /// Seconds the event log keeps an event [default: 604800, 7 days].
    #[arg(long, env = "ALERT_EVENT_TTL")]
    pub event_ttl: Option<u64>,
    /// Seconds without a heartbeat after which a node is reported lost [default: 30].
    #[arg(long, env = "NODE_LOST_SECONDS")]
    pub node_lost_seconds: Option<u64>,
    /// Notifications: where they go, how they look, each sink's filters.
    #[command(flatten)]
    pub alerting: AlertingSettings,
}

/// The configuration file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoordinatorFile {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    dashboard_listen: Option<SocketAddr>,
    dashboard_tokens: Option<String>,
    dashboard_tokens_file: Option<PathBuf>,
    certs_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    redis_url: Option<String>,
    redis_host: Option<String>,
    redis_port: Option<u16>,
    redis_password: Option<String>,
    cooldown_seconds: Option<u64>,
    max_retries_per_hour: Option<u32>,
    stop_timeout_seconds: Option<u32>,
    dry_run: Option<bool>,
    audit_retention_seconds: Option<u64>,
    require_approval: Option<bool>,
    approval_ttl_seconds: Option<u64>,
    storm_threshold: Option<u32>,
    storm_window_seconds: Option<u64>,
    confidence_threshold: Option<f64>,
    history_size: Option<usize>,
    history_ttl: Option<u64>,
    sustain_seconds: Option<u64>,
    leak_window_seconds: Option<u64>,
    leak_horizon_seconds: Option<u64>,
    max_events: Option<u64>,
    event_ttl: Option<u64>,
    node_lost_seconds: Option<u64>,
    #[serde(flatten)]
    alerting: AlertingSettings,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where to serve Prometheus metrics (`/metrics`, plain HTTP); `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// The web dashboard; `None` serves none.
    pub dashboard: Option<DashboardConfig>,
    /// The coordinator's certificate files.
    pub tls: TlsFiles,
    /// The state store.
    pub store: StoreConfig,
    /// Remediation policy.
    pub remediation: RemediationConfig,
    /// Analysis (rules, patterns, history, LLM from the `AI_*` and provider key variables).
    pub analyzer: AnalyzerConfig,
    /// Notifications.
    pub alerting: AlertingConfig,
    /// A node silent for this long is reported lost (`node_lost`).
    pub node_lost_after: Duration,
}

impl CoordinatorConfig {
    /// Resolves flags and environment over the file (if `args.config` names one) over defaults.
    pub fn resolve(args: CoordinatorArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => CoordinatorFile::default(),
        };
        macro_rules! pick {
            ($field:ident) => {
                args.$field.or(file.$field)
            };
        }
        let certs_dir = pick!(certs_dir).unwrap_or_else(|| PathBuf::from("certs"));
        let data_dir = pick!(data_dir).unwrap_or_else(|| PathBuf::from("hemostat-data"));
        let store = match (pick!(redis_url), pick!(redis_host)) {
            (Some(url), _) => StoreConfig::Redis { url },
            (None, Some(host)) => StoreConfig::Redis {
                url: redis_url(&host, pick!(redis_port).unwrap_or(6379), pick!(redis_password).as_deref()),
            },
            (None, None) => StoreConfig::Embedded { path: data_dir.join("state.redb") },
        };
        let max_attempts = pick!(max_retries_per_hour).unwrap_or(Budget::DEFAULT.max_attempts);
        if max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "RESPONDER_MAX_RETRIES_PER_HOUR must be at least 1 (to stop all actions, use dry-run)".into(),
            ));
        }
        let stop_timeout = pick!(stop_timeout_seconds).unwrap_or(10);
        if stop_timeout > 3600 {
            return Err(ConfigError::Invalid("RESPONDER_STOP_TIMEOUT_SECONDS must be at most 3600".into()));
        }
        let confidence_threshold = pick!(confidence_threshold).unwrap_or(0.7);
        if !(0.0..=1.0).contains(&confidence_threshold) {
            return Err(ConfigError::Invalid(format!(
                "ANALYZER_CONFIDENCE_THRESHOLD must be between 0 and 1, not {confidence_threshold}"
            )));
        }
        let defaults = AnalyzerConfig::default();
        let analyzer = AnalyzerConfig {
            confidence_threshold,
            patterns: PatternConfig {
                sustain: pick!(sustain_seconds).map_or(defaults.patterns.sustain, Duration::from_secs),
                leak_window: pick!(leak_window_seconds).map_or(defaults.patterns.leak_window, Duration::from_secs),
                leak_horizon: pick!(leak_horizon_seconds).map_or(defaults.patterns.leak_horizon, Duration::from_secs),
            },
            history_size: pick!(history_size).unwrap_or(defaults.history_size).max(1),
            history_ttl: pick!(history_ttl).map_or(defaults.history_ttl, Duration::from_secs),
            llm: LlmConfig::from_env(|k| std::env::var(k).ok()),
        };
        let max_per_type = pick!(max_events).unwrap_or(EventRetention::default().max_per_type);
        if max_per_type == 0 {
            return Err(ConfigError::Invalid("ALERT_MAX_EVENTS must be at least 1".into()));
        }
        let event_retention = EventRetention {
            max_per_type,
            max_age: pick!(event_ttl).map_or(EventRetention::default().max_age, |s| Duration::from_secs(s.max(60))),
        };
        let approval_ttl = pick!(require_approval)
            .unwrap_or(false)
            .then(|| Duration::from_secs(pick!(approval_ttl_seconds).unwrap_or(3600).max(1)));
        let alerting = args.alerting.resolve(&file.alerting).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let alerting = AlertingConfig { approval_ttl: approval_ttl.unwrap_or(alerting.approval_ttl), ..alerting };
        let dashboard = match pick!(dashboard_listen) {
            Some(listen) => {
                let mut tokens = match pick!(dashboard_tokens) {
                    Some(spec) => DashboardTokens::parse(&spec).map_err(|e| ConfigError::Invalid(e.to_string()))?,
                    None => DashboardTokens::default(),
                };
                if tokens.is_empty()
                    && let Some(path) = pick!(dashboard_tokens_file)
                {
                    tokens = DashboardTokens::from_file(&path).map_err(|e| ConfigError::Invalid(e.to_string()))?;
                }
                Some(DashboardConfig::new(listen, tokens).map_err(|e| ConfigError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        Ok(CoordinatorConfig {
            dashboard,
            alerting,
            node_lost_after: Duration::from_secs(pick!(node_lost_seconds).unwrap_or(30).max(1)),
            analyzer,
            listen: pick!(listen).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 50051))),
            metrics_listen: pick!(metrics_listen),
            tls: TlsFiles::in_dir(&certs_dir, "coordinator"),
            store,
            remediation: RemediationConfig {
                budget: Budget {
                    cooldown: Duration::from_secs(pick!(cooldown_seconds).unwrap_or(3600)),
                    max_attempts,
                    window: Budget::DEFAULT.window,
                },
                stop_timeout: Duration::from_secs(u64::from(stop_timeout)),
                event_retention,
                dry_run: pick!(dry_run).unwrap_or(false),
                audit_retention: Duration::from_secs(pick!(audit_retention_seconds).unwrap_or(7 * 24 * 3600).max(60)),
                approval_ttl,
                storm: StormConfig {
                    threshold: pick!(storm_threshold).unwrap_or(StormConfig::default().threshold),
                    window: pick!(storm_window_seconds)
                        .map_or(StormConfig::default().window, |s| Duration::from_secs(s.max(1))),
                },
            },
        })
    }
}

fn read_file(path: &Path) -> Result<CoordinatorFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
}

/// A Redis URL with the password percent-encoded.
fn redis_url(host: &str, port: u16, password: Option<&str>) -> String {
    let auth = match password {
        Some(password) if !password.is_empty() => {
            let encoded: String = password
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!(":{encoded}@")
        }
        _ => String::new(),
    };
    format!("redis://{auth}{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("hemostat-config-{}-{}.toml", std::process::id(), rand::random::<u32>()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let path = write("cooldown_seconds = 60\nmax_retries_per_hour = 5\nredis_host = \"cache\"\n");
        let args = CoordinatorArgs { config: Some(path.clone()), cooldown_seconds: Some(30), ..Default::default() };
        let config = CoordinatorConfig::resolve(args).unwrap();
        assert_eq!(config.remediation.budget.cooldown, Duration::from_secs(30));
        assert_eq!(config.remediation.budget.max_attempts, 5);
        assert!(matches!(config.store, StoreConfig::Redis { ref url } if url == "redis://cache:6379"));
        std::fs::remove_file(path).unwrap();

        let config = CoordinatorConfig::resolve(CoordinatorArgs::default()).unwrap();
        assert_eq!(config.remediation.budget, Budget::DEFAULT);
        assert!(matches!(config.store, StoreConfig::Embedded { .. }));
    }

    #[test]
    fn bad_files_and_values_are_clear_errors() {
        let path = write("cooldown_secs = 60\n");
        let err = CoordinatorConfig::resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `cooldown_secs`"), "{err}");
        std::fs::write(&path, "cooldown_seconds = \"soon\"\n").unwrap();
        let err = CoordinatorConfig::resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("cooldown_seconds"), "{err}");
        std::fs::remove_file(path).unwrap();
        let err = CoordinatorConfig::resolve(CoordinatorArgs { max_retries_per_hour: Some(0), ..Default::default() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1"), "{err}");
    }

    #[test]
    fn metrics_are_off_unless_an_address_is_given() {
        assert_eq!(CoordinatorConfig::resolve(CoordinatorArgs::default()).unwrap().metrics_listen, None);
        let path = write("metrics_listen = \"127.0.0.1:9464\"\n");
        let config = CoordinatorConfig::resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() });
        assert_eq!(config.unwrap().metrics_listen, Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
        std::fs::remove_file(path).unwrap();
        let args = CoordinatorArgs::try_parse_from(["hemostat-coordinator", "--metrics-listen", "0.0.0.0:9464"]);
        let args = args.unwrap();
        assert_eq!(args.metrics_listen, Some(SocketAddr::from(([0, 0, 0, 0], 9464))));
    }

    #[test]
    fn dashboard_is_off_by_default_and_refuses_a_non_loopback_address_without_tokens() {
        assert!(CoordinatorConfig::resolve(CoordinatorArgs::default()).unwrap().dashboard.is_none());
        let local = CoordinatorArgs::try_parse_from(["hemostat-coordinator", "--dashboard-listen", "127.0.0.1:8080"]);
        let dashboard = CoordinatorConfig::resolve(local.unwrap()).unwrap().dashboard.unwrap();
        assert_eq!(dashboard.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(dashboard.tokens.is_empty());
        let open =
            CoordinatorArgs { dashboard_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))), ..Default::default() };
        let err = CoordinatorConfig::resolve(open).unwrap_err().to_string();
        assert!(err.contains("not a loopback address") && err.contains("HEMOSTAT_DASHBOARD_TOKENS"), "{err}");
        let path = write("viewer:viewer-token-0123456789\nalice:admin:admin-token-0123456789\n");
        let args = CoordinatorArgs {
            dashboard_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            dashboard_tokens_file: Some(path.clone()),
            ..Default::default()
        };
        let tokens = CoordinatorConfig::resolve(args).unwrap().dashboard.unwrap().tokens;
        assert!(tokens.user("admin-token-0123456789").is_some_and(|u| u.name == "alice"));
        std::fs::remove_file(path).unwrap();
        let weak = CoordinatorArgs {
            dashboard_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            dashboard_tokens: Some("admin:secret".into()),
            ..Default::default()
        };
        let err = CoordinatorConfig::resolve(weak).unwrap_err().to_string();
        assert!(err.contains("shorter than 16"), "{err}");
    }

    #[test]
    fn redis_passwords_are_encoded() {
        assert_eq!(redis_url("r", 6380, Some("p@ss:w/rd")), "redis://:p%40ss%3Aw%2Frd@r:6380");
        assert_eq!(redis_url("r", 6379, None), "redis://r:6379");
    }
}
