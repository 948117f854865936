//! Who a certificate names.
//!
//! A HemoStat certificate carries its holder's identity as a URI subject alternative name:
//! `hemostat://node/<name>`, `hemostat://coordinator/<name>` or `hemostat://operator/<role>/<name>` with
//! role `viewer` or `admin`. The subject's common name repeats the name for people reading the certificate;
//! only the URI counts.

use std::fmt;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The URI scheme of identity names.
const SCHEME: &str = "hemostat://";

/// What an operator certificate allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperatorRole {
    /// May read everything, change nothing.
    Viewer,
    /// May read and change.
    Admin,
}

impl OperatorRole {
    /// The role's name in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Viewer => "viewer",
            OperatorRole::Admin => "admin",
        }
    }
}

impl std::str::FromStr for OperatorRole {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(OperatorRole::Viewer),
            "admin" => Ok(OperatorRole::Admin),
            other => Err(IdentityError::UnknownRole(other.to_owned())),
        }
    }
}

/// The kind of party a certificate belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A coordinator (server certificate).
    Coordinator,
    /// A node on one Docker host.
    Node,
    /// A person or their tool.
    Operator(OperatorRole),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Coordinator => f.write_str("coordinator"),
            Role::Node => f.write_str("node"),
            Role::Operator(role) => write!(f, "operator ({})", role.as_str()),
        }
    }
}

/// A party's identity, as its certificate states it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// What kind of party it is.
    pub role: Role,
    /// Its name: a node's or coordinator's name, an operator's user name.
    pub name: String,
}

/// Why a certificate does not name a valid identity, or a name is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The bytes are not an X.509 certificate.
    #[error("the certificate cannot be parsed: {0}")]
    Unparsable(String),
    /// No `hemostat://` URI in the subject alternative names.
    #[error("the certificate names no HemoStat identity (no hemostat:// URI); issue it with `hemostat certs`")]
    Missing,
    /// The URI is not one of the known forms.
    #[error("the certificate's identity URI {0:?} is not of a known form")]
    Malformed(String),
    /// An operator role other than viewer or admin.
    #[error("unknown operator role {0:?}: expected viewer or admin")]
    UnknownRole(String),
    /// A name with characters outside the allowed set.
    #[error("invalid name {0:?}: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit")]
    InvalidName(String),
}

/// Checks a node, coordinator or operator name: 1 to 63 of `[A-Za-z0-9._-]`, starting alphanumeric.
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(()) } else { Err(IdentityError::InvalidName(name.to_owned())) }
}

impl Identity {
    /// A validated identity.
    pub fn new(role: Role, name: impl Into<String>) -> Result<Self, IdentityError> {
        let name = name.into();
        validate_name(&name)?;
        Ok(Identity { role, name })
    }

    /// The URI that carries this identity in a certificate.
    pub fn to_uri(&self) -> String {
        match self.role {
            Role::Coordinator => format!("{SCHEME}coordinator/{}", self.name),
            Role::Node => format!("{SCHEME}node/{}", self.name),
            Role::Operator(role) => format!("{SCHEME}operator/{}/{}", role.as_str(), self.name),
        }
    }

    /// Parses an identity URI.
    pub fn from_uri(uri: &str) -> Result<Self, IdentityError> {
        let malformed = || IdentityError::Malformed(uri.to_owned());
        let rest = uri.strip_prefix(SCHEME).ok_or_else(malformed)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["coordinator", name] => Identity::new(Role::Coordinator, *name),
            ["node", name] => Identity::new(Role::Node, *name),
            ["operator", role, name] => Identity::new(Role::Operator(role.parse()?), *name),
            _ => Err(malformed()),
        }
    }

    /// Reads the identity from a DER-encoded certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::Unparsable(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::Unparsable(e.to_string()))?
            .ok_or(IdentityError::Missing)?;
        let uri = san
            .value
            .general_names
            .iter()
            .find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with(SCHEME) => Some(*uri),
                _ => None,
            })
            .ok_or(IdentityError::Missing)?;
        Identity::from_uri(uri)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.role, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for identity in [
            Identity::new(Role::Node, "web-1").unwrap(),
            Identity::new(Role::Coordinator, "coord.a").unwrap(),
            Identity::new(Role::Operator(OperatorRole::Admin), "alice").unwrap(),
            Identity::new(Role::Operator(OperatorRole::Viewer), "bob_2").unwrap(),
        ] {
            assert_eq!(Identity::from_uri(&identity.to_uri()).unwrap(), identity);
        }
    }

    #[test]
    fn hostile_names_and_uris_are_refused() {
        for name in ["", "-x", "a/b", "a b", "x\n", &"a".repeat(64), "é"] {
            assert_eq!(validate_name(name), Err(IdentityError::InvalidName(name.to_owned())));
        }
        assert!(matches!(Identity::from_uri("hemostat://node/a/b"), Err(IdentityError::Malformed(_))));
        assert!(matches!(Identity::from_uri("https://node/a"), Err(IdentityError::Malformed(_))));
        assert_eq!(Identity::from_uri("hemostat://operator/root/eve"), Err(IdentityError::UnknownRole("root".into())));
    }
}
