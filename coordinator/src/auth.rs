//! Who may call what: the identity of each caller comes from its client certificate, never from a message.
//!
//! | service | allowed |
//! |---|---|
//! | `hemostat.v1.AgentService` | node certificates |
//! | `hemostat.v1.FleetService` | operator certificates (viewer or admin) |
//! | health, reflection | any certificate of our CA (already enforced by TLS) |

use hemostat_pki::{Identity, Role};
use tonic::{Request, Status};

/// The authenticated caller, put in each request's extensions by the service's interceptor.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who the certificate names.
    pub identity: Identity,
    /// Where the connection comes from.
    pub address: Option<std::net::SocketAddr>,
}

/// Reads the caller's identity from its certificate.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    let address = request.remote_addr();
    let certs = request.peer_certs().ok_or_else(|| {
        tracing::warn!(?address, "refused call: no client certificate on the connection");
        Status::unauthenticated("no client certificate")
    })?;
    let leaf = certs.first().ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let identity = Identity::from_certificate(leaf).map_err(|error| {
        tracing::warn!(?address, %error, "refused call: the client certificate names no HemoStat identity");
        Status::unauthenticated(format!("client certificate: {error}"))
    })?;
    Ok(Caller { identity, address })
}

/// Lets the call through if the caller's role passes `allowed`; otherwise refuses it, logging which
/// certificate `service` needs and how to get one.
fn require(
    mut request: Request<()>,
    service: &str,
    allowed: fn(Role) -> bool,
    needed: &str,
    how: &str,
) -> Result<Request<()>, Status> {
    let caller = caller(&request)?;
    if !allowed(caller.identity.role) {
        tracing::warn!(
            address = ?caller.address,
            caller = %caller.identity,
            "refused {service} call: it needs {needed} (`{how}`)"
        );
        return Err(Status::permission_denied(format!(
            "{service} needs {needed}; this one is for {}",
            caller.identity
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// Interceptor for AgentService: only node certificates may open a session.
pub fn require_node(request: Request<()>) -> Result<Request<()>, Status> {
    require(
        request,
        "AgentService",
        |role| role == Role::Node,
        "a node certificate",
        "hemostat certs issue node <name>",
    )
}

/// Interceptor for FleetService: only operator certificates may call it.
pub fn require_operator(request: Request<()>) -> Result<Request<()>, Status> {
    require(
        request,
        "FleetService",
        |role| matches!(role, Role::Operator(_)),
        "an operator certificate",
        "hemostat certs issue operator <name>",
    )
}

/// The caller an interceptor authenticated.
pub fn authenticated<T>(request: &Request<T>) -> Result<&Caller, Status> {
    request.extensions().get::<Caller>().ok_or_else(|| Status::internal("request was not authenticated"))
}
