//! The container engine the node watches and acts on: where it is, how to reach it, and what it is.
//!
//! Where: `DOCKER_HOST` (`unix:///path`, `tcp://host:port`, `http://` or `https://`), else the first socket
//! of [`DISCOVERED_SOCKETS`] that exists: Docker's `/var/run/docker.sock`, rootful Podman's
//! `/run/podman/podman.sock`, rootless Podman's `$XDG_RUNTIME_DIR/podman/podman.sock`. Over TCP, with
//! `DOCKER_TLS_VERIFY` set, the node speaks TLS with the client certificate of `DOCKER_CERT_PATH`
//! (`ca.pem`, `cert.pem`, `key.pem`; default `~/.docker`), as the docker CLI does; without it, plain HTTP
//! (a socket proxy on a private network, e.g. `tcp://docker-proxy:2375`).
//!
//! What: Docker, or Podman through its Docker-compatible API (the version's components say which). The
//! node reads events, inspects and restarts the same way on both; [`Engine::limitations`] says what Podman
//! does not do, and the node logs it once at start.

use std::path::{Path, PathBuf};

use bollard::Docker;

/// Seconds a request to the engine may take (bollard's default).
const REQUEST_TIMEOUT_SECONDS: u64 = 120;

/// Requests to the engine the node has in flight at once when it asks about many containers (inspects at a
/// snapshot, stats from the engine). The Docker client opens a connection for every request (it keeps none
/// idle), each with its own buffers and task, which outlive their request for a moment: at 16 in flight
/// a snapshot of 100 containers held about 100 connections at once, a third of the node's peak heap.
pub const REQUESTS_IN_FLIGHT: usize = 4;

/// The sockets tried, in order, when `DOCKER_HOST` is not set: Docker's, then rootful Podman's; rootless
/// Podman's (`$XDG_RUNTIME_DIR/podman/podman.sock`) comes last.
pub const DISCOVERED_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/podman/podman.sock"];

/// How to reach the engine, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineConfig {
    /// `DOCKER_HOST`; `None` discovers a local socket.
    pub host: Option<String>,
    /// `DOCKER_TLS_VERIFY`: TLS with a client certificate for a `tcp://` host.
    pub tls_verify: bool,
    /// `DOCKER_CERT_PATH`: the folder of `ca.pem`, `cert.pem` and `key.pem`; `None` for `~/.docker`.
    pub cert_path: Option<PathBuf>,
}

/// Where the engine is, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// Plain HTTP over TCP (`host:port`): a socket proxy, or a daemon on a trusted network.
    Http(String),
    /// TLS over TCP (`host:port`), with the client certificate and CA of this folder.
    Tls {
        /// `host:port`.
        address: String,
        /// The folder of `ca.pem`, `cert.pem`, `key.pem`.
        cert_path: PathBuf,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Http(address) => write!(f, "tcp://{address} (plain HTTP)"),
            Endpoint::Tls { address, cert_path } => {
                write!(f, "tcp://{address} (TLS, certificates in {})", cert_path.display())
            }
        }
    }
}

/// Why the engine cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `DOCKER_HOST` is not a form the node speaks.
    #[error("DOCKER_HOST {0:?} is not unix:///path, tcp://host:port, http://host:port or https://host:port")]
    BadHost(String),
    /// No `DOCKER_HOST`, and none of the usual sockets exists.
    #[error(
        "no container engine socket found (tried {tried}); set DOCKER_HOST (unix:///path or tcp://host:port) or \
         mount the socket"
    )]
    NotFound {
        /// The paths tried, comma-separated.
        tried: String,
    },
    /// A TLS file is missing or unreadable.
    #[error(
        "DOCKER_TLS_VERIFY is set but {path} cannot be read ({reason}); DOCKER_CERT_PATH names the folder of ca.pem, cert.pem and key.pem"
    )]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The engine did not answer, or refused.
    #[error("cannot reach the container engine at {endpoint}: {source}")]
    Unreachable {
        /// Where it was looked for.
        endpoint: String,
        /// What the client said.
        #[source]
        source: bollard::errors::Error,
    },
}

/// Which engine answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// Docker Engine.
    Docker,
    /// Podman, through its Docker-compatible API.
    Podman,
}

/// A connected engine.
#[derive(Clone, Debug)]
pub struct Engine {
    /// The client, its API version negotiated.
    pub docker: Docker,
    /// Where it is.
    pub endpoint: Endpoint,
    /// What it is.
    pub kind: EngineKind,
    /// Its version, as it says.
    pub version: String,
}

impl EngineConfig {
    /// Where the engine is: `DOCKER_HOST` as configured, else the first socket of [`DISCOVERED_SOCKETS`] and
    /// `$XDG_RUNTIME_DIR/podman/podman.sock` (from `env`) for which `exists`.
    pub fn endpoint(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        exists: &dyn Fn(&Path) -> bool,
    ) -> Result<Endpoint, EngineError> {
        let Some(host) = self.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) else {
            let mut tried: Vec<PathBuf> = DISCOVERED_SOCKETS.iter().map(PathBuf::from).collect();
            if let Some(runtime) = env("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
                tried.push(Path::new(&runtime).join("podman/podman.sock"));
            }
            return match tried.iter().find(|path| exists(path)) {
                Some(path) => Ok(Endpoint::Unix(path.clone())),
                None => Err(EngineError::NotFound {
                    tried: tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                }),
            };
        };
        let bad = || EngineError::BadHost(host.to_owned());
        if let Some(path) = host.strip_prefix("unix://") {
            return if path.starts_with('/') { Ok(Endpoint::Unix(PathBuf::from(path))) } else { Err(bad()) };
        }
        let (address, tls) = if let Some(address) = host.strip_prefix("tcp://") {
            (address, self.tls_verify)
        } else if let Some(address) = host.strip_prefix("https://") {
            (address, true)
        } else if let Some(address) = host.strip_prefix("http://") {
            (address, false)
        } else {
            return Err(bad());
        };
        let address = address.trim_end_matches('/');
        if address.is_empty() || address.contains('/') || !address.contains(':') {
            return Err(bad());
        }
        if !tls {
            return Ok(Endpoint::Http(address.to_owned()));
        }
        let cert_path = match &self.cert_path {
            Some(path) => path.clone(),
            None => {
                env("HOME").map(|home| Path::new(&home).join(".docker")).unwrap_or_else(|| PathBuf::from(".docker"))
            }
        };
        Ok(Endpoint::Tls { address: address.to_owned(), cert_path })
    }
}

impl Engine {
    /// Connects to the engine `config` describes (discovering it in the process environment), negotiates
    /// the API version and asks what it is.
    pub async fn connect(config: &EngineConfig) -> Result<Engine, EngineError> {
        let endpoint = config.endpoint(&hemostat_settings::process_env, &|path| path.exists())?;
        Self::connect_to(endpoint).await
    }

    /// Connects to `endpoint`.
    pub async fn connect_to(endpoint: Endpoint) -> Result<Engine, EngineError> {
        let unreachable = |source| EngineError::Unreachable { endpoint: endpoint.to_string(), source };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = match &endpoint {
            Endpoint::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECONDS, version)
            }
            Endpoint::Http(address) => Docker::connect_with_http(address, REQUEST_TIMEOUT_SECONDS, version),
            Endpoint::Tls { address, cert_path } => {
                let files = ["ca.pem", "cert.pem", "key.pem"].map(|name| cert_path.join(name));
                for file in &files {
                    check_pem(file)?;
                }
                let [ca, cert, key] = files;
                Docker::connect_with_ssl(address, &key, &cert, &ca, REQUEST_TIMEOUT_SECONDS, version)
            }
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let answer = docker.version().await.map_err(unreachable)?;
        let podman = answer.components.iter().flatten().any(|c| c.name.to_ascii_lowercase().contains("podman"));
        let kind = if podman { EngineKind::Podman } else { EngineKind::Docker };
        let version = answer.version.unwrap_or_else(|| "?".to_owned());
        Ok(Engine { docker, endpoint, kind, version })
    }

    /// What this engine does not do that the node would otherwise rely on, in words for the log; empty for
    /// Docker.
    pub fn limitations(&self) -> &'static [&'static str] {
        match self.kind {
            EngineKind::Docker => &[],
            EngineKind::Podman => PODMAN_LIMITATIONS,
        }
    }

    /// The engine's name and version, e.g. `Podman 4.3.1`.
    pub fn describe(&self) -> String {
        let name = match self.kind {
            EngineKind::Docker => "Docker",
            EngineKind::Podman => "Podman",
        };
        format!("{name} {}", self.version)
    }
}

/// What Podman's Docker-compatible API does not do for the node.
pub const PODMAN_LIMITATIONS: &[&str] = &[
    "health checks run only where Podman has systemd to schedule them (its timers); without systemd a \
     HEALTHCHECK never runs, so no container turns unhealthy and the node reports no `unhealthy` anomaly",
    "there is no swarm: scale_up of a swarm service answers not_applicable",
];

/// Fails unless `path` is a readable file holding a PEM block.
fn check_pem(path: &Path) -> Result<(), EngineError> {
    let error = |reason: String| EngineError::TlsFile { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    if !text.contains("-----BEGIN ") {
        return Err(error("no PEM block in it".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    fn host(host: &str) -> EngineConfig {
        EngineConfig { host: Some(host.to_owned()), ..EngineConfig::default() }
    }

    #[test]
    fn discovery_tries_docker_then_rootful_then_rootless_podman() {
        let env = env_of(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        let only = |wanted: &'static str| move |path: &Path| path == Path::new(wanted);
        let config = EngineConfig::default();
        let found = |exists: &dyn Fn(&Path) -> bool| config.endpoint(&env, exists).unwrap();
        assert_eq!(found(&|_| true), Endpoint::Unix("/var/run/docker.sock".into()));
        assert_eq!(found(&only("/run/podman/podman.sock")), Endpoint::Unix("/run/podman/podman.sock".into()));
        assert_eq!(
            found(&only("/run/user/1000/podman/podman.sock")),
            Endpoint::Unix("/run/user/1000/podman/podman.sock".into())
        );
        let error = config.endpoint(&env, &|_| false).unwrap_err().to_string();
        assert!(
            error.contains("/var/run/docker.sock, /run/podman/podman.sock, /run/user/1000/podman/podman.sock")
                && error.contains("DOCKER_HOST"),
            "{error}"
        );
    }

    #[test]
    fn docker_host_is_read_as_the_docker_cli_reads_it() {
        let env = env_of(&[("HOME", "/home/ops")]);
        let never = |_: &Path| false;
        let endpoint = |config: EngineConfig| config.endpoint(&env, &never);
        assert_eq!(
            endpoint(host("unix:///run/podman/podman.sock")).unwrap(),
            Endpoint::Unix("/run/podman/podman.sock".into())
        );
        assert_eq!(endpoint(host("tcp://proxy:2375")).unwrap(), Endpoint::Http("proxy:2375".into()));
        assert_eq!(endpoint(host("http://proxy:2375/")).unwrap(), Endpoint::Http("proxy:2375".into()));
        let tls = EngineConfig { tls_verify: true, ..host("tcp://docker.example:2376") };
        assert_eq!(
            endpoint(tls).unwrap(),
            Endpoint::Tls { address: "docker.example:2376".into(), cert_path: "/home/ops/.docker".into() }
        );
        let named = EngineConfig { tls_verify: true, cert_path: Some("/etc/certs".into()), ..host("tcp://d:2376") };
        assert_eq!(
            endpoint(named).unwrap(),
            Endpoint::Tls { address: "d:2376".into(), cert_path: "/etc/certs".into() }
        );
        assert!(matches!(endpoint(host("https://d:2376")).unwrap(), Endpoint::Tls { .. }), "https is TLS");
        for bad in ["ssh://me@host", "unix://relative.sock", "tcp://", "tcp://host", "d:2375", "tcp://h:1/path"] {
            let error = endpoint(host(bad)).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn a_missing_tls_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        let endpoint = Endpoint::Tls { address: "127.0.0.1:1".into(), cert_path: dir.path().to_owned() };
        let error = Engine::connect_to(endpoint).await.unwrap_err().to_string();
        assert!(
            error.contains(&dir.path().join("cert.pem").display().to_string()) && error.contains("DOCKER_CERT_PATH"),
            "{error}"
        );
    }
}
