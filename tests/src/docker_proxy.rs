//! A proxy in front of this machine's `/var/run/docker.sock` on a loopback TCP port, standing for a remote
//! Docker daemon (no second dockerd runs here): either TLS-terminating with client certificates required,
//! as `dockerd --tlsverify` on port 2376 (the kit's PKI: the coordinator's certificate serves, for
//! localhost; a node's is the client's), or plain HTTP, as a socket proxy on a private network. It counts
//! the connections it forwarded and the TLS handshakes it refused, so a test can tell the node went
//! through it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hemostat_pki::Role;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::pki::TestPki;

/// The Docker socket the proxy forwards to.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// What the proxy has done.
#[derive(Debug, Default)]
struct Counts {
    forwarded: AtomicU64,
    refused: AtomicU64,
}

/// A running proxy, stopped when dropped.
pub struct DockerProxy {
    port: u16,
    cert_path: Option<tempfile::TempDir>,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl DockerProxy {
    /// A TLS proxy requiring a client certificate of `pki`'s CA. [`DockerProxy::cert_path`] is a
    /// `DOCKER_CERT_PATH` folder (`ca.pem`, `cert.pem`, `key.pem`) with a client certificate it accepts.
    pub async fn tls(pki: &TestPki) -> Self {
        let server = pki.coordinator().load().expect("the server certificate loads");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server.ca_der()).expect("the CA is a trust root");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().expect("a client verifier");
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(server.cert_chain(), server.private_key())
            .expect("a TLS server configuration");
        let client = pki.issue(Role::Node, "docker-client", "docker-client");
        let dir = tempfile::tempdir().expect("temp dir");
        for (from, to) in [(&client.ca, "ca.pem"), (&client.cert, "cert.pem"), (&client.key, "key.pem")] {
            std::fs::copy(from, dir.path().join(to)).expect("copy a TLS file");
        }
        Self::start(Some(TlsAcceptor::from(Arc::new(config))), Some(dir)).await
    }

    /// A plain-HTTP proxy, as a socket proxy on a private network.
    pub async fn plain() -> Self {
        Self::start(None, None).await
    }

    async fn start(tls: Option<TlsAcceptor>, cert_path: Option<tempfile::TempDir>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn({
            let counts = counts.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (tls, counts) = (tls.clone(), counts.clone());
                    tokio::spawn(async move {
                        match tls {
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => forward(stream, &counts).await,
                                Err(_) => {
                                    counts.refused.fetch_add(1, Ordering::Relaxed);
                                }
                            },
                            None => forward(stream, &counts).await,
                        }
                    });
                }
            }
        });
        DockerProxy { port, cert_path, counts, task }
    }

    /// The `DOCKER_HOST` that reaches it: `tcp://localhost:<port>` (the name its certificate carries).
    pub fn docker_host(&self) -> String {
        format!("tcp://localhost:{}", self.port)
    }

    /// For a TLS proxy: the `DOCKER_CERT_PATH` folder with a client certificate it accepts.
    pub fn cert_path(&self) -> Option<&Path> {
        self.cert_path.as_ref().map(|dir| dir.path())
    }

    /// A `DOCKER_CERT_PATH` folder with a client certificate of another CA, which a TLS proxy refuses.
    pub fn foreign_cert_path(pki: &TestPki) -> tempfile::TempDir {
        let foreign = pki.foreign(Role::Node, "docker-stranger");
        let dir = tempfile::tempdir().expect("temp dir");
        for (from, to) in [(&foreign.ca, "ca.pem"), (&foreign.cert, "cert.pem"), (&foreign.key, "key.pem")] {
            std::fs::copy(from, dir.path().join(to)).expect("copy a TLS file");
        }
        dir
    }

    /// Connections forwarded to the Docker socket so far.
    pub fn forwarded(&self) -> u64 {
        self.counts.forwarded.load(Ordering::Relaxed)
    }

    /// TLS handshakes refused so far (no client certificate, or one of another CA).
    pub fn refused(&self) -> u64 {
        self.counts.refused.load(Ordering::Relaxed)
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes both ways between `client` and a new connection to the Docker socket, until either ends.
async fn forward(mut client: impl AsyncRead + AsyncWrite + Unpin, counts: &Counts) {
    let Ok(mut docker) = tokio::net::UnixStream::connect(DOCKER_SOCKET).await else { return };
    counts.forwarded.fetch_add(1, Ordering::Relaxed);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut docker).await;
}
