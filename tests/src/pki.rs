//! Throw-away certificates for tests.

use std::path::Path;

use hemostat_pki::{CertificateAuthority, Identity, IssueRequest, OperatorRole, Role, TlsFiles};

/// A CA in a temporary folder, issuing certificates on demand. A second, unrelated CA stands for an
/// attacker's.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
    foreign: CertificateAuthority,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A new CA with a coordinator certificate for localhost, and an unrelated foreign CA.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = CertificateAuthority::create("HemoStat test CA").expect("CA");
        let foreign = CertificateAuthority::create("Someone else's CA").expect("foreign CA");
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("ca-key.pem"), ca.key_pem()).expect("write ca-key.pem");
        let pki = TestPki { dir, ca, foreign };
        pki.issue(Role::Coordinator, "coordinator", "coordinator");
        pki
    }

    /// The folder holding ca.pem and every issued certificate.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a certificate for `role`/`name` into `<stem>.pem` and `<stem>-key.pem`.
    pub fn issue(&self, role: Role, name: &str, stem: &str) -> TlsFiles {
        write(&self.ca, self.dir(), role, name, stem)
    }

    /// The coordinator's files.
    pub fn coordinator(&self) -> TlsFiles {
        TlsFiles::in_dir(self.dir(), "coordinator")
    }

    /// A node certificate for `name` (stem `node-<name>`).
    pub fn node(&self, name: &str) -> TlsFiles {
        self.issue(Role::Node, name, &format!("node-{name}"))
    }

    /// An operator certificate with `role` (stem `operator-<role>`).
    pub fn operator(&self, role: OperatorRole) -> TlsFiles {
        self.issue(Role::Operator(role), &format!("op-{}", role.as_str()), &format!("operator-{}", role.as_str()))
    }

    /// A certificate for `role`/`name` signed by the foreign CA, with our ca.pem as its trust root (so only
    /// the coordinator's check can refuse it).
    pub fn foreign(&self, role: Role, name: &str) -> TlsFiles {
        let files = write(&self.foreign, self.dir(), role, name, &format!("foreign-{name}"));
        TlsFiles { ca: self.dir().join("ca.pem"), ..files }
    }
}

fn write(ca: &CertificateAuthority, dir: &Path, role: Role, name: &str, stem: &str) -> TlsFiles {
    let issued = ca.issue(&IssueRequest::new(Identity::new(role, name).expect("valid name"))).expect("issue");
    let files = TlsFiles::in_dir(dir, stem);
    std::fs::write(&files.cert, issued.cert_pem).expect("write cert");
    std::fs::write(&files.key, issued.key_pem).expect("write key");
    files
}
