//! HemoStat's public-key infrastructure.
//!
//! Every gRPC connection in HemoStat is mutual TLS with certificates from the project's own CA. This crate
//! issues those certificates ([`authority`]), reads who a certificate names ([`identity`]), and loads and
//! validates certificate files before anything uses them ([`files`]).

pub mod authority;
pub mod files;
pub mod identity;

pub use authority::{CertificateAuthority, IssueRequest, IssuedCertificate};
pub use files::{TlsFiles, TlsMaterial};
pub use identity::{Identity, OperatorRole, Role};

/// Installs aws-lc-rs as the process's rustls crypto provider. Call first in every `main` (and test);
/// calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
