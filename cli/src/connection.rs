//! How the CLI reaches the coordinator: its address and the operator's certificate, each setting from its
//! flag, else its environment variable, else the configuration file ([`crate::config_file`]), else its
//! default ([`hemostat_settings`], as for the coordinator and the node).
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
//!
//! Relative paths in the file are relative to the file's folder.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hemostat_pki::TlsFiles;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use hemostat_settings::{Endpoint, Layers, Sourced, config_path};
use tonic::transport::{Channel, Endpoint as ChannelEndpoint};

use crate::config_file;
use crate::render::Format;

/// The coordinator's address when nothing says otherwise.
pub const DEFAULT_COORDINATOR: &str = "localhost:50051";
/// The operator certificate's file stem when nothing says otherwise.
pub const DEFAULT_CERT_NAME: &str = "operator";
/// How long connecting to the coordinator may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

hemostat_settings::settings! {
    /// The connection flags every command that talks to the coordinator takes.
    #[derive(Clone, Debug, Default, Args)]
    #[command(next_help_heading = "Connection")]
    pub struct ConnectionArgs {
        /// Configuration file [env: HEMOSTAT_CONFIG] [default: ~/.config/hemostat/config.toml, when it exists].
        #[arg(long, global = true, value_name = "FILE")]
        pub config: Option<PathBuf>,
    }

    /// The connection settings, each with where its value came from.
    #[derive(Clone, Debug)]
    pub struct ConnectionSettings {
        /// The coordinator, `host:port` or `https://host:port` [default: localhost:50051].
        coordinator: String = DEFAULT_COORDINATOR.to_owned(), env "HEMOSTAT_COORDINATOR" | "HEMOSTAT_ADDR",
            arg(global = true, value_name = "ADDR");
        /// The name the coordinator's certificate carries [default: the coordinator's host].
        coordinator_name: String, env "HEMOSTAT_COORDINATOR_NAME", arg(global = true, value_name = "NAME");
        /// Folder with ca.pem and the operator certificate [default: hemostat-data/certs].
        certs_dir: PathBuf = crate::default_certs_dir(), env "HEMOSTAT_CERTS_DIR", arg(global = true, value_name = "DIR");
        /// The operator certificate's file stem: <stem>.pem and <stem>-key.pem [default: operator].
        cert_name: String = DEFAULT_CERT_NAME.to_owned(), env "HEMOSTAT_CERT_NAME", arg(global = true, value_name = "STEM");
        /// The CA certificate file [default: <certs-dir>/ca.pem].
        ca: PathBuf, env "HEMOSTAT_CA", arg(global = true, value_name = "FILE");
        /// The operator certificate file [default: <certs-dir>/<cert-name>.pem].
        cert: PathBuf, env "HEMOSTAT_CERT", arg(global = true, value_name = "FILE");
        /// The operator's private key file [default: <certs-dir>/<cert-name>-key.pem].
        key: PathBuf, env "HEMOSTAT_KEY", arg(global = true, value_name = "FILE");
    }
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

impl ConnectionArgs {
    /// The settings from these flags, the process environment and the configuration file.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        self.resolve(&hemostat_settings::process_env)
    }

    /// The settings from these flags, the environment `env` (a variable's value, `None` when unset) and
    /// the configuration file, each setting taken from the first of them that has it.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let file = config_path(self.config.as_deref(), env)
            .or_else(|| config_file::default_path(env).filter(|path| path.exists()));
        let layers = Layers::read(env, file.as_deref(), &[ConnectionSettings::KEYS])?;
        Ok(Settings::from_settings(ConnectionSettings::resolve(self, &layers)?, layers.file().map(PathBuf::from)))
    }
}

impl Settings {
    /// The settings `s` describe, read with the configuration file `config_file`; relative paths from the
    /// file are relative to its folder.
    pub fn from_settings(s: ConnectionSettings, config_file: Option<PathBuf>) -> Self {
        let defaults = TlsFiles::in_dir(&s.certs_dir.relative_to_file(), &s.cert_name);
        let path =
            |setting: Option<Sourced<PathBuf>>, default: PathBuf| setting.map_or(default, Sourced::relative_to_file);
        Settings {
            coordinator: s.coordinator.into_value(),
            coordinator_name: s.coordinator_name.map(Sourced::into_value),
            tls: TlsFiles {
                ca: path(s.ca, defaults.ca),
                cert: path(s.cert, defaults.cert),
                key: path(s.key, defaults.key),
            },
            config_file,
        }
    }

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
        let Endpoint { url, host } = Endpoint::parse(&self.coordinator).map_err(anyhow::Error::msg)?;
        let server_name = self.coordinator_name.clone().unwrap_or(host);
        let channel = ChannelEndpoint::from_shared(url.clone())?
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
