//! Certificate files on disk: loading them, and refusing bad ones at start-up with a clear message
//! (rustls would silently skip an unparsable CA file and fail later, obscurely).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::identity::{Identity, IdentityError};

/// Why certificate files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no PEM certificate, or a broken one.
    #[error("{path} holds no valid PEM certificate{detail}")]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said, if anything.
        detail: String,
    },
    /// A key file holds no PEM private key.
    #[error("{path} holds no valid PEM private key")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The certificate names no usable identity.
    #[error("{path}: {source}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        source: IdentityError,
    },
}

/// The three files a party needs for mutual TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate that every peer's certificate must chain to.
    pub ca: PathBuf,
    /// This party's certificate.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

/// Validated TLS material, ready for a server or client configuration.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// This party's certificate, PEM.
    pub cert_pem: String,
    /// This party's private key, PEM.
    pub key_pem: String,
    /// Who this party's certificate says it is.
    pub identity: Identity,
}

impl TlsFiles {
    /// The conventional names inside a directory: `ca.pem`, `<stem>.pem`, `<stem>-key.pem`.
    pub fn in_dir(dir: &Path, stem: &str) -> Self {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
        }
    }

    /// Reads and checks the three files: each must parse, and the certificate must name an identity.
    pub fn load(&self) -> Result<TlsMaterial, FilesError> {
        let ca_pem = read(&self.ca)?;
        first_certificate(&self.ca, &ca_pem)?;
        let cert_pem = read(&self.cert)?;
        let cert = first_certificate(&self.cert, &cert_pem)?;
        let identity = Identity::from_certificate(&cert)
            .map_err(|source| FilesError::Identity { path: self.cert.clone(), source })?;
        let key_pem = read(&self.key)?;
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| FilesError::NoKey { path: self.key.clone() })?;
        Ok(TlsMaterial { ca_pem, cert_pem, key_pem, identity })
    }
}

impl TlsMaterial {
    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("checked in TlsFiles::load")
    }

    /// This party's certificate chain, DER.
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).filter_map(Result::ok).collect()
    }

    /// This party's private key, DER.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("checked in TlsFiles::load")
    }

    /// A tonic client configuration that presents this party's certificate and trusts only the CA.
    /// `server_name` is the name the coordinator's certificate must carry.
    pub fn client_config(&self, server_name: &str) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(server_name)
    }
}

fn read(path: &Path) -> Result<String, FilesError> {
    std::fs::read_to_string(path).map_err(|source| FilesError::Read { path: path.to_owned(), source })
}

fn first_certificate(path: &Path, pem: &str) -> Result<CertificateDer<'static>, FilesError> {
    let cert = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| FilesError::NoCertificate { path: path.to_owned(), detail: format!(": {e}") })?;
    x509_parser::parse_x509_certificate(&cert)
        .map_err(|e| FilesError::NoCertificate { path: path.to_owned(), detail: format!(": {e}") })?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateAuthority, IssueRequest, Role};

    #[test]
    fn broken_files_are_refused_with_the_path() {
        let dir = std::env::temp_dir().join(format!("hemostat-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = CertificateAuthority::create("t").unwrap();
        let issued = ca.issue(&IssueRequest::new(Identity::new(Role::Node, "n1").unwrap())).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.join("node.pem"), &issued.cert_pem).unwrap();
        std::fs::write(dir.join("node-key.pem"), &issued.key_pem).unwrap();
        let files = TlsFiles::in_dir(&dir, "node");
        assert_eq!(files.load().unwrap().identity.name, "n1");

        std::fs::write(dir.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
            .unwrap();
        let err = files.load().unwrap_err().to_string();
        assert!(err.contains("ca.pem") && err.contains("no valid PEM certificate"), "{err}");

        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.join("node-key.pem"), "garbage").unwrap();
        let err = files.load().unwrap_err().to_string();
        assert!(err.contains("node-key.pem") && err.contains("private key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
