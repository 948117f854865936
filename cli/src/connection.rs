//! How the CLI reaches the coordinator: its address and the operator's certificate, from flags, the
//! environment, the configuration file ([`crate::config_file`]) or defaults, in that order of precedence,
//! each setting on its own.
//!
//! | flag | environment | file key | default |
//! |---|---|---|---|
//! | `--config` | `HEMOSTAT_CONFIG` | | `~/.config/hemostat/config.toml` (when it exists) |
//! | `--coordinator` | `HEMOSTAT_COORDINATOR`, `HEMOSTAT_ADDR` | `coordinator` | `localhost:50051` |
//! | `--coordinator-name` | `HEMOSTAT_COORDINATOR_NAME` | `coordinator_name` | the coordinator's host |
//! | `--certs-dir` | `HEMOSTAT_CERTS_DIR` | `certs_dir` | `hemostat-data/certs` |
//! | `--cert-name` | `HEMOSTAT_CERT_NAME` | `cert_name` | `operator` |
//! | `--ca` | `HEMOSTAT_CA` | `ca` | `<certs_dir>/ca.pem` |
//! | `--cert` | `HEMOSTAT_CERT` | `cert` | `<certs_dir>/<cert_name>.pem` |
//! | `--key` | `HEMOSTAT_KEY` | `key` | `<certs_dir>/<cert_name>-key.pem` |

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hemostat_pki::TlsFiles;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::config_file::{self, ConfigFile};
use crate::render::Format;

/// The coordinator's address when nothing says otherwise.
pub const DEFAULT_COORDINATOR: &str = "localhost:50051";
/// The operator certificate's file stem when nothing says otherwise.
pub const DEFAULT_CERT_NAME: &str = "operator";
/// How long connecting to the coordinator may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection flags every command that talks to the coordinator takes.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Configuration file [env: HEMOSTAT_CONFIG] [default: ~/.config/hemostat/config.toml, when it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The coordinator, `host:port` or `https://host:port` [env: HEMOSTAT_COORDINATOR or HEMOSTAT_ADDR]
    /// [default: localhost:50051].
    #[arg(long, global = true, value_name = "ADDR")]
    pub coordinator: Option<String>,
    /// The name the coordinator's certificate carries [env: HEMOSTAT_COORDINATOR_NAME] [default: the
    /// coordinator's host].
    #[arg(long, global = true, value_name = "NAME")]
    pub coordinator_name: Option<String>,
    /// Folder with ca.pem and the operator certificate [env: HEMOSTAT_CERTS_DIR] [default: hemostat-data/certs].
    #[arg(long, global = true, value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// The operator certificate's file stem: <stem>.pem and <stem>-key.pem [env: HEMOSTAT_CERT_NAME]
    /// [default: operator].
    #[arg(long, global = true, value_name = "STEM")]
    pub cert_name: Option<String>,
    /// The CA certificate file [env: HEMOSTAT_CA] [default: <certs-dir>/ca.pem].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The operator certificate file [env: HEMOSTAT_CERT] [default: <certs-dir>/<cert-name>.pem].
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The operator's private key file [env: HEMOSTAT_KEY] [default: <certs-dir>/<cert-name>-key.pem].
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// The flags of every command that asks the coordinator something: where it is, and how to print.
#[derive(Clone, Debug, Default, Args)]
pub struct ClientArgs {
    /// Output format: a table for people, or JSON for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t)]
    pub output: Format,
    /// Where the coordinator is, and the operator's certificate.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// The resolved connection settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The coordinator's address as given (`host:port` or `https://host:port`).
    pub coordinator: String,
    /// The name the coordinator's certificate must carry; `None` for the address's host.
    pub coordinator_name: Option<String>,
    /// The CA, certificate and key files.
    pub tls: TlsFiles,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
}

/// The process environment, with empty variables read as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl ConnectionArgs {
    /// The settings from these flags, the process environment and the configuration file.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        self.resolve(&process_env)
    }

    /// The settings from these flags, the environment `env` (a variable's value, `None` when unset) and
    /// the configuration file, each setting taken from the first of them that has it.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let (file, config_file) = match self.config.clone().or_else(|| env("HEMOSTAT_CONFIG").map(PathBuf::from)) {
            Some(path) => (ConfigFile::load(&path)?, Some(path)),
            None => match config_file::default_path(env) {
                Some(path) if path.exists() => (ConfigFile::load(&path)?, Some(path)),
                _ => (ConfigFile::default(), None),
            },
        };
        let coordinator = self
            .coordinator
            .clone()
            .or_else(|| env("HEMOSTAT_COORDINATOR"))
            .or_else(|| env("HEMOSTAT_ADDR"))
            .or(file.coordinator)
            .unwrap_or_else(|| DEFAULT_COORDINATOR.to_owned());
        let coordinator_name =
            self.coordinator_name.clone().or_else(|| env("HEMOSTAT_COORDINATOR_NAME")).or(file.coordinator_name);
        let certs_dir = self
            .certs_dir
            .clone()
            .or_else(|| env("HEMOSTAT_CERTS_DIR").map(PathBuf::from))
            .or(file.certs_dir)
            .unwrap_or_else(crate::default_certs_dir);
        let cert_name = self
            .cert_name
            .clone()
            .or_else(|| env("HEMOSTAT_CERT_NAME"))
            .or(file.cert_name)
            .unwrap_or_else(|| DEFAULT_CERT_NAME.to_owned());
        let defaults = TlsFiles::in_dir(&certs_dir, &cert_name);
        let path = |flag: &Option<PathBuf>, var: &str, from_file: Option<PathBuf>, default: PathBuf| {
            flag.clone().or_else(|| env(var).map(PathBuf::from)).or(from_file).unwrap_or(default)
        };
        let tls = TlsFiles {
            ca: path(&self.ca, "HEMOSTAT_CA", file.ca, defaults.ca),
            cert: path(&self.cert, "HEMOSTAT_CERT", file.cert, defaults.cert),
            key: path(&self.key, "HEMOSTAT_KEY", file.key, defaults.key),
        };
        Ok(Settings { coordinator, coordinator_name, tls, config_file })
    }
}

impl Settings {
    /// A FleetService client connected over mutual TLS with the operator's certificate.
    pub async fn client(&self) -> anyhow::Result<FleetServiceClient<Channel>> {
        Ok(FleetServiceClient::new(self.channel().await?))
    }

    /// A mutual-TLS channel to the coordinator with the configured certificate.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let tls = self.tls.load().with_context(|| {
            format!(
                "cannot use the operator certificate (make one with `hemostat certs issue operator <name>`, or \
                 point --certs-dir, --cert, --key or the configuration file at yours{})",
                self.config_file.as_ref().map(|f| format!("; read {}", f.display())).unwrap_or_default()
            )
        })?;
        let (url, host) = hemostat_node::config::normalize_endpoint(&self.coordinator)?;
        let server_name = self.coordinator_name.clone().unwrap_or(host);
        let channel = Endpoint::from_shared(url.clone())?
            .tls_config(tls.client_config(&server_name))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|error| {
                let said = error_chain(&error);
                let hint = if said.contains("invalid peer certificate") {
                    format!(
                        " (the coordinator's certificate does not chain to {}, or does not name {server_name:?})",
                        self.tls.ca.display()
                    )
                } else {
                    String::new()
                };
                anyhow::anyhow!("cannot connect to the coordinator at {url}: {said}{hint}")
            })?;
        Ok(channel)
    }
}

/// An error and its sources on one line, a source left out when what is already said holds it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    extend_chain(error.to_string(), error.source())
}

/// `said`, then each error of the chain from `source` that `said` does not hold yet, `: `-separated.
pub fn extend_chain(mut said: String, mut source: Option<&dyn std::error::Error>) -> String {
    while let Some(error) = source {
        let text = error.to_string();
        if !said.contains(&text) {
            if !said.is_empty() {
                said.push_str(": ");
            }
            said.push_str(&text);
        }
        source = error.source();
    }
    said
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_without_flags_environment_or_file() {
        let settings = ConnectionArgs::default().resolve(&env_of(&[])).unwrap();
        assert_eq!(settings.coordinator, DEFAULT_COORDINATOR);
        assert_eq!(settings.coordinator_name, None);
        assert_eq!(settings.tls.ca, Path::new("hemostat-data/certs/ca.pem"));
        assert_eq!(settings.tls.cert, Path::new("hemostat-data/certs/operator.pem"));
        assert_eq!(settings.tls.key, Path::new("hemostat-data/certs/operator-key.pem"));
        assert_eq!(settings.config_file, None);
    }

    #[test]
    fn flag_beats_environment_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "coordinator = \"file:1\"\ncert_name = \"from-file\"\ncerts_dir = \"c\"\nkey = \"k.pem\"\n",
        )
        .unwrap();
        let config = file.display().to_string();
        let env =
            env_of(&[("HEMOSTAT_CONFIG", &config), ("HEMOSTAT_ADDR", "env:2"), ("HEMOSTAT_CERT_NAME", "from-env")]);

        let from_env = ConnectionArgs::default().resolve(&env).unwrap();
        assert_eq!(from_env.coordinator, "env:2", "env beats file");
        assert_eq!(from_env.tls.cert, dir.path().join("c/from-env.pem"), "env cert name, file certs dir");
        assert_eq!(from_env.tls.key, dir.path().join("k.pem"), "file key, relative to the file");
        assert_eq!(from_env.config_file.as_deref(), Some(file.as_path()));

        let flags = ConnectionArgs {
            coordinator: Some("flag:3".into()),
            cert_name: Some("from-flag".into()),
            key: Some("/flag/key.pem".into()),
            ..Default::default()
        };
        let from_flags = flags.resolve(&env).unwrap();
        assert_eq!(from_flags.coordinator, "flag:3");
        assert_eq!(from_flags.tls.cert, dir.path().join("c/from-flag.pem"));
        assert_eq!(from_flags.tls.key, Path::new("/flag/key.pem"));

        let coordinator_env =
            env_of(&[("HEMOSTAT_CONFIG", &config), ("HEMOSTAT_COORDINATOR", "env:4"), ("HEMOSTAT_ADDR", "env:2")]);
        assert_eq!(ConnectionArgs::default().resolve(&coordinator_env).unwrap().coordinator, "env:4");
    }

    #[test]
    fn the_default_file_is_read_when_it_exists_and_a_named_one_must_exist() {
        let home = tempfile::tempdir().unwrap();
        let home_text = home.path().display().to_string();
        let env = env_of(&[("HOME", &home_text)]);
        assert_eq!(ConnectionArgs::default().resolve(&env).unwrap().config_file, None, "no file, no error");

        let file = home.path().join(".config/hemostat/config.toml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "coordinator = \"home:5\"\n").unwrap();
        let settings = ConnectionArgs::default().resolve(&env).unwrap();
        assert_eq!((settings.coordinator.as_str(), settings.config_file), ("home:5", Some(file.clone())));

        let missing = ConnectionArgs { config: Some(home.path().join("nope.toml")), ..Default::default() };
        let error = format!("{:#}", missing.resolve(&env).unwrap_err());
        assert!(error.contains("nope.toml"), "{error}");

        std::fs::write(&file, "coordinator = \"home:5\"\nport = 1\n").unwrap();
        let error = format!("{:#}", ConnectionArgs::default().resolve(&env).unwrap_err());
        assert!(error.contains(&file.display().to_string()) && error.contains("unknown field `port`"), "{error}");
    }
}
