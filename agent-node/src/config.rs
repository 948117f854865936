//! The node's configuration: flags, environment and an optional TOML file, with precedence
//! flag > environment > file > default. Unknown keys in the file are an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use hemostat_pki::TlsFiles;
use serde::Deserialize;

use crate::actions::scale_up::DEFAULT_MAX_REPLICAS;
use crate::command_limits::{DEFAULT_CONCURRENCY, DEFAULT_PER_MINUTE};
use crate::detection::DetectionConfig;
use crate::executor::{DEFAULT_EXEC_ALLOWLIST, ExecutionPolicy, parse_allowlist};
use crate::inventory::ContainerSelector;
use crate::local_policy::LocalPolicyConfig;
use crate::outbox::DEFAULT_CAPACITY;

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
    /// The file is not valid TOML or has an unknown key.
    #[error("configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: toml::de::Error,
    },
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// Command-line flags and environment variables of `hemostat-node`.
#[derive(Debug, Default, Parser)]
#[command(name = "hemostat-node", version, about = "The HemoStat node: watches this Docker host")]
pub struct NodeArgs {
    /// A TOML configuration file (keys as the long flags, with underscores).
    #[arg(long, env = "HEMOSTAT_CONFIG")]
    pub config: Option<PathBuf>,
    /// The coordinator, `host:port` or `https://host:port`; several, comma-separated, to fail over between
    /// coordinators of one fleet, tried in order [default: https://localhost:50051].
    #[arg(long, env = "HEMOSTAT_COORDINATOR")]
    pub coordinator: Option<String>,
    /// The name the coordinator's certificate carries [default: the coordinator's host].
    #[arg(long, env = "HEMOSTAT_COORDINATOR_NAME")]
    pub coordinator_name: Option<String>,
    /// Folder with ca.pem, node.pem and node-key.pem [default: certs].
    #[arg(long, env = "HEMOSTAT_CERTS_DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Address to serve Prometheus metrics on, plain HTTP `/metrics` (e.g. 0.0.0.0:9465) [default: off].
    #[arg(long, env = "NODE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Watch only containers with this label, `key=value` [default: all containers].
    #[arg(long, env = "NODE_CONTAINER_SELECTOR")]
    pub select_label: Option<String>,
    /// Seconds between heartbeats [default: 5].
    #[arg(long, env = "NODE_HEARTBEAT_SECONDS")]
    pub heartbeat_seconds: Option<u64>,
    /// Longest pause between reconnect attempts, in seconds [default: 5].
    #[arg(long, env = "NODE_RECONNECT_MAX_SECONDS")]
    pub reconnect_max_seconds: Option<u64>,
    /// Most unacknowledged messages kept for the coordinator [default: 10000].
    #[arg(long, env = "NODE_SPOOL_CAPACITY")]
    pub spool_capacity: Option<usize>,
    /// Folder where unacknowledged messages are kept across node restarts [default: hemostat-data/spool].
    #[arg(long, env = "NODE_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Seconds between metrics samples, at least 1 [default: 30].
    #[arg(long, env = "AGENT_POLL_INTERVAL")]
    pub poll_interval: Option<u64>,
    /// CPU % (100 = one core) above which CPU is high [default: 85].
    #[arg(long, env = "THRESHOLD_CPU_PERCENT")]
    pub cpu_threshold: Option<f64>,
    /// Memory % of the limit above which memory is high [default: 80].
    #[arg(long, env = "THRESHOLD_MEMORY_PERCENT")]
    pub memory_threshold: Option<f64>,
    /// Window, in seconds, in which restarts are counted [default: 600].
    #[arg(long, env = "NODE_RESTART_WINDOW_SECONDS")]
    pub restart_window_seconds: Option<u64>,
    /// More restarts than this within the window are excessive [default: 5].
    #[arg(long, env = "NODE_RESTART_LIMIT")]
    pub restart_limit: Option<u32>,
    /// Seconds after which a standing anomaly is alerted again [default: 1800].
    #[arg(long, env = "NODE_REASSERT_SECONDS")]
    pub reassert_seconds: Option<u64>,
    /// Container name globs never watched, comma-separated (e.g. `hemostat-*,*-sidecar`) [default: none].
    #[arg(long, env = "MONITOR_CONTAINER_BLACKLIST")]
    pub blacklist: Option<String>,
    /// Log lines gathered at each failure as evidence, 0 for none [default: 50].
    #[arg(long, env = "NODE_EVIDENCE_LOG_LINES")]
    pub log_lines: Option<usize>,
    /// Actions this node executes, comma-separated [default: restart,exec,cleanup,scale_up].
    #[arg(long, env = "NODE_ALLOWED_ACTIONS")]
    pub allowed_actions: Option<String>,
    /// Diagnostic commands allowed for exec, `;`-separated, each matched as a whole argument vector
    /// [default: ps;top -b -n 1;df -h;free -m;uptime;uname -a].
    #[arg(long, env = "RESPONDER_EXEC_ALLOWLIST")]
    pub exec_allowlist: Option<String>,
    /// Longest an exec may run, in seconds [default: 10].
    #[arg(long, env = "RESPONDER_EXEC_TIMEOUT_SECONDS")]
    pub exec_timeout_seconds: Option<u64>,
    /// Seconds a restarted container is watched before it counts as a success [default: 30].
    #[arg(long, env = "RESPONDER_VERIFY_SECONDS")]
    pub verify_seconds: Option<u64>,
    /// Most commands accepted in any rolling minute; more are refused [default: 60].
    #[arg(long, env = "NODE_COMMANDS_PER_MINUTE")]
    pub commands_per_minute: Option<u32>,
    /// Most commands running at once; more are refused [default: 10].
    #[arg(long, env = "NODE_COMMAND_CONCURRENCY")]
    pub command_concurrency: Option<u32>,
    /// Most replicas scale_up makes of a service without a `hemostat.scale_up.max` label [default: 10].
    #[arg(long, env = "NODE_SCALE_UP_MAX_REPLICAS")]
    pub scale_up_max_replicas: Option<u64>,
    /// Whether the node restarts crashed containers on its own when cut off from every coordinator
    /// (true/false) [default: true].
    #[arg(long, env = "NODE_LOCAL_POLICY")]
    pub local_policy: Option<bool>,
    /// Seconds cut off before the local policy applies [default: 60].
    #[arg(long, env = "NODE_LOCAL_POLICY_AFTER_SECONDS")]
    pub local_policy_after_seconds: Option<u64>,
    /// At most one local action per container within this many seconds [default: 3600].
    #[arg(long, env = "RESPONDER_COOLDOWN_SECONDS")]
    pub cooldown_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    coordinator: Option<String>,
    coordinator_name: Option<String>,
    certs_dir: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    select_label: Option<String>,
    heartbeat_seconds: Option<u64>,
    reconnect_max_seconds: Option<u64>,
    spool_capacity: Option<usize>,
    spool_dir: Option<PathBuf>,
    poll_interval: Option<u64>,
    cpu_threshold: Option<f64>,
    memory_threshold: Option<f64>,
    restart_window_seconds: Option<u64>,
    restart_limit: Option<u32>,
    reassert_seconds: Option<u64>,
    blacklist: Option<String>,
    log_lines: Option<usize>,
    allowed_actions: Option<String>,
    exec_allowlist: Option<String>,
    exec_timeout_seconds: Option<u64>,
    verify_seconds: Option<u64>,
    commands_per_minute: Option<u32>,
    command_concurrency: Option<u32>,
    scale_up_max_replicas: Option<u64>,
    local_policy: Option<bool>,
    local_policy_after_seconds: Option<u64>,
    cooldown_seconds: Option<u64>,
}

/// One coordinator a node may connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorAddress {
    /// Its URL, `https://host:port`.
    pub url: String,
    /// The name its certificate must carry.
    pub server_name: String,
}

impl std::fmt::Display for CoordinatorAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The resolved node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The coordinators of the fleet, in the order they are tried (at least one).
    pub coordinators: Vec<CoordinatorAddress>,
    /// This node's certificate files.
    pub tls: TlsFiles,
    /// Where to serve Prometheus metrics (`/metrics`, plain HTTP); `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// Which containers to watch.
    pub selector: ContainerSelector,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Longest pause between reconnect attempts.
    pub reconnect_max: Duration,
    /// Most unacknowledged messages kept.
    pub spool_capacity: usize,
    /// Where they are kept across restarts; `None` keeps them in memory only.
    pub spool_dir: Option<PathBuf>,
    /// Time between metrics samples.
    pub poll_interval: Duration,
    /// Thresholds and windows of detection.
    pub detection: DetectionConfig,
    /// Log lines gathered at each failure.
    pub log_lines: usize,
    /// What the node allows, whatever the coordinator asks.
    pub execution: ExecutionPolicy,
    /// What the node does on its own when cut off.
    pub local_policy: LocalPolicyConfig,
}

impl NodeConfig {
    /// Resolves flags and environment over the file over defaults.
    pub fn resolve(args: NodeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => NodeFile::default(),
        };
        macro_rules! pick {
            ($field:ident) => {
                args.$field.or(file.$field)
            };
        }
        let name_override = pick!(coordinator_name);
        let coordinators = pick!(coordinator)
            .unwrap_or_else(|| "localhost:50051".into())
            .split(',')
            .map(str::trim)
            .filter(|spec| !spec.is_empty())
            .map(|spec| {
                let (url, host) = normalize_endpoint(spec)?;
                Ok(CoordinatorAddress { url, server_name: name_override.clone().unwrap_or(host) })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        if coordinators.is_empty() {
            return Err(ConfigError::Invalid("HEMOSTAT_COORDINATOR names no coordinator".into()));
        }
        let blacklist: Vec<String> = pick!(blacklist)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|glob| !glob.is_empty())
            .map(str::to_owned)
            .collect();
        let selector = match pick!(select_label) {
            Some(spec) => ContainerSelector::parse(&spec).map_err(|e| ConfigError::Invalid(e.to_string()))?,
            None => ContainerSelector::all(),
        }
        .with_blacklist(blacklist);
        let poll_interval = pick!(poll_interval).unwrap_or(30);
        if poll_interval == 0 {
            return Err(ConfigError::Invalid("AGENT_POLL_INTERVAL must be at least 1 second".into()));
        }
        let defaults = DetectionConfig::default();
        let percent = |name: &str, value: Option<f64>, default: f64| match value {
            Some(v) if !(v > 0.0 && v.is_finite()) => {
                Err(ConfigError::Invalid(format!("{name} must be a positive number, not {v}")))
            }
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let detection = DetectionConfig {
            cpu_threshold: percent("THRESHOLD_CPU_PERCENT", pick!(cpu_threshold), defaults.cpu_threshold)?,
            memory_threshold: percent("THRESHOLD_MEMORY_PERCENT", pick!(memory_threshold), defaults.memory_threshold)?,
            restart_window: pick!(restart_window_seconds).map_or(defaults.restart_window, Duration::from_secs),
            restart_limit: pick!(restart_limit).unwrap_or(defaults.restart_limit),
            reassert_every: pick!(reassert_seconds).map_or(defaults.reassert_every, |s| Duration::from_secs(s.max(1))),
        };
        let heartbeat = pick!(heartbeat_seconds).unwrap_or(5);
        if heartbeat == 0 {
            return Err(ConfigError::Invalid("NODE_HEARTBEAT_SECONDS must be at least 1".into()));
        }
        Ok(NodeConfig {
            coordinators,
            tls: TlsFiles::in_dir(&pick!(certs_dir).unwrap_or_else(|| PathBuf::from("certs")), "node"),
            metrics_listen: pick!(metrics_listen),
            selector,
            heartbeat: Duration::from_secs(heartbeat),
            reconnect_max: Duration::from_secs(pick!(reconnect_max_seconds).unwrap_or(5).max(1)),
            spool_capacity: pick!(spool_capacity).unwrap_or(DEFAULT_CAPACITY).max(1),
            spool_dir: Some(pick!(spool_dir).unwrap_or_else(|| PathBuf::from("hemostat-data/spool"))),
            poll_interval: Duration::from_secs(poll_interval),
            detection,
            log_lines: pick!(log_lines).unwrap_or(50).min(1000),
            execution: ExecutionPolicy {
                allowed_actions: match pick!(allowed_actions) {
                    Some(list) => {
                        list.split(',').map(|a| a.trim().to_ascii_lowercase()).filter(|a| !a.is_empty()).collect()
                    }
                    None => ExecutionPolicy::default().allowed_actions,
                },
                exec_allowlist: parse_allowlist(
                    &pick!(exec_allowlist).unwrap_or_else(|| DEFAULT_EXEC_ALLOWLIST.to_owned()),
                ),
                exec_timeout: Duration::from_secs(pick!(exec_timeout_seconds).unwrap_or(10).max(1)),
                verify_window: Duration::from_secs(pick!(verify_seconds).unwrap_or(30)),
                commands_per_minute: pick!(commands_per_minute).unwrap_or(DEFAULT_PER_MINUTE).max(1),
                command_concurrency: pick!(command_concurrency).unwrap_or(DEFAULT_CONCURRENCY).max(1),
                scale_up_max_replicas: pick!(scale_up_max_replicas).unwrap_or(DEFAULT_MAX_REPLICAS).max(1),
            },
            local_policy: LocalPolicyConfig {
                enabled: pick!(local_policy).unwrap_or(true),
                after: pick!(local_policy_after_seconds)
                    .map_or(LocalPolicyConfig::default().after, Duration::from_secs),
                cooldown: pick!(cooldown_seconds).map_or(LocalPolicyConfig::default().cooldown, Duration::from_secs),
            },
        })
    }
}

/// `host:port` or `https://host:port` → (`https://host:port`, host). Plaintext is refused.
pub fn normalize_endpoint(spec: &str) -> Result<(String, String), ConfigError> {
    let url = if spec.contains("://") { spec.to_owned() } else { format!("https://{spec}") };
    if !url.starts_with("https://") {
        return Err(ConfigError::Invalid(format!(
            "coordinator {spec:?}: HemoStat speaks only mutual TLS; use https://host:port or host:port"
        )));
    }
    let uri: tonic::transport::Uri =
        url.parse().map_err(|e| ConfigError::Invalid(format!("coordinator {spec:?} is not a valid address: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| ConfigError::Invalid(format!("coordinator {spec:?} names no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((url, host))
}

fn read_file(path: &Path) -> Result<NodeFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_tls_and_refuse_plaintext() {
        assert_eq!(
            normalize_endpoint("coord.example:50051").unwrap(),
            ("https://coord.example:50051".into(), "coord.example".into())
        );
        assert_eq!(normalize_endpoint("https://[::1]:7").unwrap().1, "::1");
        assert!(normalize_endpoint("http://coord:50051").unwrap_err().to_string().contains("mutual TLS"));
        assert!(normalize_endpoint("https://").is_err());
    }

    #[test]
    fn a_file_with_an_unknown_key_is_refused() {
        let path = std::env::temp_dir().join(format!("hemostat-node-{}.toml", std::process::id()));
        std::fs::write(&path, "coordinater = \"x:1\"\n").unwrap();
        let err = NodeConfig::resolve(NodeArgs { config: Some(path.clone()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("unknown field `coordinater`"), "{err}");
        std::fs::write(&path, "coordinator = \"c:1\"\nselect_label = \"team=a\"\n").unwrap();
        let config = NodeConfig::resolve(NodeArgs {
            config: Some(path.clone()),
            coordinator: Some("d:2".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.coordinators[0].url, "https://d:2");
        assert_eq!(config.selector, ContainerSelector::parse("team=a").unwrap());
        assert_eq!(config.poll_interval, Duration::from_secs(30), "the original's default");
        std::fs::write(&path, "poll_interval = 0\n").unwrap();
        let err = NodeConfig::resolve(NodeArgs { config: Some(path.clone()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("at least 1 second"), "{err}");
        let err = NodeConfig::resolve(NodeArgs { cpu_threshold: Some(f64::NAN), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("THRESHOLD_CPU_PERCENT"), "{err}");
        assert_eq!(NodeConfig::resolve(NodeArgs::default()).unwrap().metrics_listen, None, "off by default");
        std::fs::write(&path, "metrics_listen = \"127.0.0.1:9465\"\n").unwrap();
        let config = NodeConfig::resolve(NodeArgs { config: Some(path.clone()), ..Default::default() }).unwrap();
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9465".parse().unwrap()));
        std::fs::remove_file(path).unwrap();
    }
}
