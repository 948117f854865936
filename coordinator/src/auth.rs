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

/// Interceptor for AgentService: only node certificates may open a session.
pub fn require_node(mut request: Request<()>) -> Result<Request<()>, Status> {
    let caller = caller(&request)?;
    if caller.identity.role != Role::Node {
        tracing::warn!(
            address = ?caller.address,
            caller = %caller.identity,
            "refused AgentService call: it needs a node certificate (`hemostat certs issue node <name>`)"
        );
        return Err(Status::permission_denied(format!(
            "AgentService needs a node certificate; this one is for {}",
            caller.identity
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// Interceptor for FleetService: only operator certificates may call it.
pub fn require_operator(mut request: Request<()>) -> Result<Request<()>, Status> {
    let caller = caller(&request)?;
    if !matches!(caller.identity.role, Role::Operator(_)) {
        tracing::warn!(
            address = ?caller.address,
            caller = %caller.identity,
            "refused FleetService call: it needs an operator certificate (`hemostat certs issue operator <name>`)"
        );
        return Err(Status::permission_denied(format!(
            "FleetService needs an operator certificate; this one is for {}",
            caller.identity
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// The caller an interceptor authenticated.
pub fn authenticated<T>(request: &Request<T>) -> Result<&Caller, Status> {
    request.extensions().get::<Caller>().ok_or_else(|| Status::internal("request was not authenticated"))
}
