//! The coordinator's side of mutual TLS: accepting connections, and refusing the ones that cannot prove who
//! they are, with a log line a person can act on.
//!
//! tonic's built-in TLS drops failed handshakes silently; this acceptor performs the handshake itself and
//! hands only authenticated streams to the gRPC server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hemostat_pki::TlsMaterial;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How long a client has to complete the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA certificate was not accepted as a trust root.
    #[error("the CA certificate cannot be used as a trust root: {0}")]
    Roots(String),
    /// rustls refused the certificate/key pair or the verifier.
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server configuration that requires a client certificate signed by our CA and speaks HTTP/2.
pub fn server_config(material: &TlsMaterial) -> Result<rustls::ServerConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(material.ca_der()).map_err(|e| TlsSetupError::Roots(e.to_string()))?;
    let verifier =
        WebPkiClientVerifier::builder(Arc::new(roots)).build().map_err(|e| TlsSetupError::Roots(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.cert_chain(), material.private_key())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts TCP connections on `listener`, completes the TLS handshake on each, and yields the ones that
/// succeed. Refused handshakes are logged at `warn` with the peer's address and the likely cause.
pub fn accept(
    listener: TcpListener,
    config: rustls::ServerConfig,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // The server stopped listening for streams: stop accepting, and free the port.
                _ = tx.closed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => log_refusal(peer, &error),
                    Err(_) => tracing::warn!(
                        %peer,
                        "refused connection: no TLS handshake within {}s (a plaintext or stalled client?)",
                        HANDSHAKE_TIMEOUT.as_secs()
                    ),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Logs a failed handshake in words a person can act on.
fn log_refusal(peer: SocketAddr, error: &std::io::Error) {
    tracing::warn!(%peer, %error, "refused connection: {}", explain_handshake_error(error));
}

/// What a handshake error most likely means, and what to do about it.
pub fn explain_handshake_error(error: &std::io::Error) -> &'static str {
    use rustls::{AlertDescription, CertificateError, Error};
    let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return "the connection closed during the TLS handshake";
    };
    match tls {
        Error::NoCertificatesPresented => {
            "the client sent no certificate; every client needs one issued by `hemostat certs` (grpcurl: -cert/-key)"
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
        | Error::InvalidCertificate(CertificateError::BadSignature) => {
            "the client's certificate is not signed by this coordinator's CA; issue it from the same ca.pem"
        }
        Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            "the client's certificate has expired; issue a new one with `hemostat certs`"
        }
        Error::InvalidCertificate(CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }) => {
            "the client's certificate is not valid yet; check the clocks"
        }
        Error::InvalidCertificate(_) => "the client's certificate was rejected (wrong usage, or damaged)",
        Error::InvalidMessage(_) => {
            "the client did not speak TLS (plaintext gRPC or HTTP?); HemoStat only accepts mutual TLS"
        }
        Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate) => {
            "the client does not trust this coordinator's certificate; give it this coordinator's ca.pem"
        }
        Error::AlertReceived(_) => "the client aborted the handshake",
        Error::NoApplicationProtocol => "the client does not speak HTTP/2 (ALPN h2), which gRPC needs",
        _ => "the TLS handshake failed",
    }
}
