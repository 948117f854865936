//! The node's configuration: flags, environment and an optional TOML file, with precedence
//! flag > environment > file > default. Unknown keys in the file are an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use hemostat_pki::TlsFiles;
use serde::Deserialize;

use crate::inventory::ContainerSelector;
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
    /// The coordinator, `host:port` or `https://host:port` [default: https://localhost:50051].
    #[arg(long, env = "HEMOSTAT_COORDINATOR")]
    pub coordinator: Option<String>,
    /// The name the coordinator's certificate carries [default: the coordinator's host].
    #[arg(long, env = "HEMOSTAT_COORDINATOR_NAME")]
    pub coordinator_name: Option<String>,
    /// Folder with ca.pem, node.pem and node-key.pem [default: certs].
    #[arg(long, env = "HEMOSTAT_CERTS_DIR")]
    pub certs_dir: Option<PathBuf>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    coordinator: Option<String>,
    coordinator_name: Option<String>,
    certs_dir: Option<PathBuf>,
    select_label: Option<String>,
    heartbeat_seconds: Option<u64>,
    reconnect_max_seconds: Option<u64>,
    spool_capacity: Option<usize>,
}

/// The resolved node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The coordinator's URL, `https://host:port`.
    pub coordinator: String,
    /// The name its certificate must carry.
    pub coordinator_name: String,
    /// This node's certificate files.
    pub tls: TlsFiles,
    /// Which containers to watch.
    pub selector: ContainerSelector,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Longest pause between reconnect attempts.
    pub reconnect_max: Duration,
    /// Most unacknowledged messages kept.
    pub spool_capacity: usize,
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
        let (coordinator, host) = normalize_endpoint(&pick!(coordinator).unwrap_or_else(|| "localhost:50051".into()))?;
        let selector = match pick!(select_label) {
            Some(spec) => ContainerSelector::parse(&spec).map_err(|e| ConfigError::Invalid(e.to_string()))?,
            None => ContainerSelector::all(),
        };
        let heartbeat = pick!(heartbeat_seconds).unwrap_or(5);
        if heartbeat == 0 {
            return Err(ConfigError::Invalid("NODE_HEARTBEAT_SECONDS must be at least 1".into()));
        }
        Ok(NodeConfig {
            coordinator,
            coordinator_name: pick!(coordinator_name).unwrap_or(host),
            tls: TlsFiles::in_dir(&pick!(certs_dir).unwrap_or_else(|| PathBuf::from("certs")), "node"),
            selector,
            heartbeat: Duration::from_secs(heartbeat),
            reconnect_max: Duration::from_secs(pick!(reconnect_max_seconds).unwrap_or(5).max(1)),
            spool_capacity: pick!(spool_capacity).unwrap_or(DEFAULT_CAPACITY).max(1),
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
        assert_eq!(config.coordinator, "https://d:2");
        assert_eq!(config.selector, ContainerSelector::parse("team=a").unwrap());
        std::fs::remove_file(path).unwrap();
    }
}
