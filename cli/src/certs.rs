//! `hemostat certs`: make a CA and issue coordinator, node and operator certificates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hemostat_pki::{CertificateAuthority, Identity, IssueRequest, OperatorRole, Role};

/// Arguments of `hemostat certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// The folder holding ca.pem and ca-key.pem, where new files are written.
    #[arg(long, global = true, env = "HEMOSTAT_CERTS_DIR", default_value_os_t = crate::default_certs_dir())]
    dir: PathBuf,
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Make a new CA (ca.pem, ca-key.pem). Refuses to overwrite an existing one.
    Init,
    /// Issue a certificate signed by the CA.
    Issue {
        #[command(subcommand)]
        kind: IssueKind,
        /// Days of validity [default: 365 for coordinators and nodes, 90 for operators].
        #[arg(long, global = true)]
        days: Option<u32>,
        /// File name stem: writes <stem>.pem and <stem>-key.pem [default: coordinator, node or operator].
        #[arg(long, global = true)]
        out: Option<String>,
    },
    /// Make everything one host needs for development: CA, coordinator (localhost), node and admin
    /// operator certificates. Existing files are kept.
    Dev {
        /// The node's name [default: this host's name].
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IssueKind {
    /// A coordinator's server certificate.
    Coordinator {
        /// The coordinator's name.
        #[arg(long, default_value = "coordinator")]
        name: String,
        /// DNS names nodes and operators reach it by (repeatable) [default: localhost].
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP addresses nodes and operators reach it by (repeatable) [default: 127.0.0.1, ::1].
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
    },
    /// A node's client certificate: it names the node, and speaks for no other.
    Node {
        /// The node's name.
        name: String,
    },
    /// An operator's client certificate.
    Operator {
        /// The operator's name.
        name: String,
        /// What the operator may do: viewer (read) or admin (read and change).
        #[arg(long, default_value = "viewer")]
        role: String,
    },
}

/// Runs `hemostat certs ...`.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::Init => {
            init_ca(&args.dir)?;
            println!("made a new CA in {}: ca.pem (give to every host), ca-key.pem (keep safe)", args.dir.display());
        }
        CertsCommand::Issue { kind, days, out } => {
            let ca = load_ca(&args.dir)?;
            let (request, stem) = match kind {
                IssueKind::Coordinator { name, dns, ip } => {
                    let mut request = IssueRequest::new(Identity::new(Role::Coordinator, name)?);
                    if !dns.is_empty() || !ip.is_empty() {
                        request.dns_names = dns;
                        request.ip_addresses = ip;
                    }
                    (request, "coordinator")
                }
                IssueKind::Node { name } => (IssueRequest::new(Identity::new(Role::Node, name)?), "node"),
                IssueKind::Operator { name, role } => {
                    let role: OperatorRole = role.parse()?;
                    (IssueRequest::new(Identity::new(Role::Operator(role), name)?), "operator")
                }
            };
            let request = IssueRequest { validity_days: days.unwrap_or(request.validity_days), ..request };
            let stem = out.unwrap_or_else(|| stem.to_owned());
            issue(&ca, &request, &args.dir, &stem, true)?;
        }
        CertsCommand::Dev { node } => {
            let node = dev_bundle(&args.dir, node.as_deref())?;
            println!("development certificates for node {node:?} are in {}", args.dir.display());
        }
    }
    Ok(())
}

/// Makes the development bundle in `dir`, keeping whatever exists. Returns the node's name.
pub fn dev_bundle(dir: &Path, node: Option<&str>) -> anyhow::Result<String> {
    if !dir.join("ca.pem").exists() {
        init_ca(dir)?;
    }
    let ca = load_ca(dir)?;
    let node = match node {
        Some(name) => name.to_owned(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host = host.trim();
            if hemostat_pki::identity::validate_name(host).is_ok() { host.to_owned() } else { "local".to_owned() }
        }
    };
    let requests = [
        (IssueRequest::new(Identity::new(Role::Coordinator, "coordinator")?), "coordinator"),
        (IssueRequest::new(Identity::new(Role::Node, node.clone())?), "node"),
        (IssueRequest::new(Identity::new(Role::Operator(OperatorRole::Admin), "admin")?), "operator"),
    ];
    for (request, stem) in &requests {
        if !dir.join(format!("{stem}.pem")).exists() {
            issue(&ca, request, dir, stem, false)?;
        }
    }
    Ok(node)
}

fn init_ca(dir: &Path) -> anyhow::Result<()> {
    if dir.join("ca.pem").exists() || dir.join("ca-key.pem").exists() {
        bail!("{} already holds a CA; remove ca.pem and ca-key.pem first to make a new one", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca = CertificateAuthority::create("HemoStat CA")?;
    write_secret(&dir.join("ca-key.pem"), &ca.key_pem())?;
    std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
    Ok(())
}

fn load_ca(dir: &Path) -> anyhow::Result<CertificateAuthority> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("cannot read {} (make a CA with `hemostat certs init`)", dir.join(name).display()))
    };
    CertificateAuthority::from_pem(&read("ca.pem")?, &read("ca-key.pem")?)
        .with_context(|| format!("the CA in {} cannot be loaded", dir.display()))
}

fn issue(
    ca: &CertificateAuthority,
    request: &IssueRequest,
    dir: &Path,
    stem: &str,
    report: bool,
) -> anyhow::Result<()> {
    let issued = ca.issue(request)?;
    let (cert, key) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}-key.pem")));
    std::fs::write(&cert, &issued.cert_pem).with_context(|| format!("cannot write {}", cert.display()))?;
    write_secret(&key, &issued.key_pem)?;
    if report {
        println!(
            "issued {} for {} days: {} and {}",
            request.identity,
            request.validity_days,
            cert.display(),
            key.display()
        );
    }
    Ok(())
}

/// Writes a private key readable by its owner only.
fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
