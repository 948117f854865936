//! The certificate authority: makes the CA and issues coordinator, node and operator certificates.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::{Identity, IdentityError, Role};

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// rcgen refused the parameters or could not sign.
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The identity is not acceptable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A DNS name that cannot go in a certificate.
    #[error("invalid DNS name {0:?} for the certificate")]
    DnsName(String),
    /// A validity period of zero days.
    #[error("a certificate must be valid for at least one day")]
    Validity,
}

/// A certificate with its private key, both PEM-encoded.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// What to put in a new certificate.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// Whom it names.
    pub identity: Identity,
    /// For coordinators: the DNS names clients reach it by.
    pub dns_names: Vec<String>,
    /// For coordinators: the IP addresses clients reach it by.
    pub ip_addresses: Vec<IpAddr>,
    /// How many days from now it is valid.
    pub validity_days: u32,
}

impl IssueRequest {
    /// A request with the default validity for the role: a year for coordinators and nodes, 90 days for
    /// operators. A coordinator certificate defaults to `localhost`, 127.0.0.1 and ::1.
    pub fn new(identity: Identity) -> Self {
        let (dns_names, ip_addresses, validity_days) = match identity.role {
            Role::Coordinator => (
                vec!["localhost".to_owned()],
                vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)],
                365,
            ),
            Role::Node => (Vec::new(), Vec::new(), 365),
            Role::Operator(_) => (Vec::new(), Vec::new(), 90),
        };
        IssueRequest { identity, dns_names, ip_addresses, validity_days }
    }
}

/// A CA certificate and its key, able to issue certificates.
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").finish_non_exhaustive()
    }
}

/// How long a new CA is valid.
const CA_VALIDITY_DAYS: i64 = 3650;

impl CertificateAuthority {
    /// Makes a new CA with an ECDSA P-256 key, valid for ten years.
    pub fn create(common_name: &str) -> Result<Self, AuthorityError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.distinguished_name.push(DnType::OrganizationName, "HemoStat");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// Loads a CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, AuthorityError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(CertificateAuthority { cert_pem: cert_pem.to_owned(), issuer })
    }

    /// The CA's certificate, PEM-encoded: what every party trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM-encoded. Keep it off the hosts.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `request`, with a new key.
    pub fn issue(&self, request: &IssueRequest) -> Result<IssuedCertificate, AuthorityError> {
        if request.validity_days == 0 {
            return Err(AuthorityError::Validity);
        }
        let identity = &request.identity;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, identity.name.as_str());
        params.distinguished_name.push(DnType::OrganizationName, "HemoStat");
        params.distinguished_name.push(DnType::OrganizationalUnitName, identity.role.to_string());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match identity.role {
            // Coordinators serve, and reach each other as clients.
            Role::Coordinator => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            Role::Node | Role::Operator(_) => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        let mut sans = vec![SanType::URI(identity.to_uri().try_into()?)];
        for dns in &request.dns_names {
            sans.push(SanType::DnsName(dns.clone().try_into().map_err(|_| AuthorityError::DnsName(dns.clone()))?));
        }
        sans.extend(request.ip_addresses.iter().copied().map(SanType::IpAddress));
        params.subject_alt_names = sans;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(i64::from(request.validity_days));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::OperatorRole;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn der(pem: &str) -> Vec<u8> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        pem.contents
    }

    #[test]
    fn issued_certificates_carry_identity_usage_and_validity() {
        let ca = CertificateAuthority::create("test CA").unwrap();
        let node = Identity::new(Role::Node, "host-a").unwrap();
        let issued = ca.issue(&IssueRequest::new(node.clone())).unwrap();
        let node_der = der(&issued.cert_pem);
        assert_eq!(Identity::from_certificate(&node_der).unwrap(), node);
        let (_, cert) = X509Certificate::from_der(&node_der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth, "a node certificate is for clients only");
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
        assert_eq!(days, 365);

        let op = Identity::new(Role::Operator(OperatorRole::Viewer), "bob").unwrap();
        let issued = ca.issue(&IssueRequest::new(op.clone())).unwrap();
        assert_eq!(Identity::from_certificate(&der(&issued.cert_pem)).unwrap(), op);
    }

    #[test]
    fn a_ca_reloaded_from_pem_issues_certificates_it_verifies() {
        let ca = CertificateAuthority::create("test CA").unwrap();
        let reloaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let coordinator = Identity::new(Role::Coordinator, "c1").unwrap();
        let issued = reloaded.issue(&IssueRequest::new(coordinator)).unwrap();
        let (leaf_der, root_der) = (der(&issued.cert_pem), der(ca.cert_pem()));
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        let (_, root) = X509Certificate::from_der(&root_der).unwrap();
        leaf.verify_signature(Some(root.public_key())).expect("signed by the original CA");
        assert!(matches!(
            reloaded.issue(&IssueRequest {
                validity_days: 0,
                ..IssueRequest::new(Identity::new(Role::Node, "n").unwrap())
            }),
            Err(AuthorityError::Validity)
        ));
    }
}
