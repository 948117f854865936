//! A failed gRPC call as one clear line: the RPC, the status code as gRPC names it, and the coordinator's
//! message (e.g. `ApproveAction: NOT_FOUND: no decision waits for approval under that id`).

use std::fmt;

use tonic::{Code, Status};

use crate::connection::extend_chain;

/// A call the coordinator answered with an error status (or that failed on the way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The RPC's name, e.g. `ListEvents`.
    pub rpc: &'static str,
    /// The status code.
    pub code: Code,
    /// The coordinator's message, with what the transport said when the call did not get through.
    pub message: String,
}

impl RpcError {
    /// The error of `rpc` from its status.
    pub fn new(rpc: &'static str, status: &Status) -> Self {
        let message = extend_chain(status.message().to_owned(), std::error::Error::source(status));
        RpcError { rpc, code: status.code(), message }
    }
}

/// The canonical upper-case name of a gRPC status code (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.replace(['\r', '\n'], " ");
        write!(f, "{}: {}: {message}", self.rpc, code_name(self.code))?;
        match self.code {
            Code::Unimplemented => {
                write!(f, " (this coordinator does not offer {} yet; is it older than this CLI?)", self.rpc)
            }
            // The call did not get through: nothing listening, or a TLS handshake that failed (an
            // operator certificate the coordinator does not trust shows only on the first call, in
            // many forms: CertificateRequired, a TLS alert, a closed connection, a broken pipe).
            Code::Unknown | Code::Unavailable | Code::Cancelled
                if message.contains("transport error") || message.contains("connection") =>
            {
                write!(f, " (is the coordinator running there, and does it trust this operator certificate?)")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for RpcError {}

/// `map_err` adapter: `client.list_nodes(request).await.map_err(rpc("ListNodes"))?`.
pub fn rpc(name: &'static str) -> impl FnOnce(Status) -> anyhow::Error {
    move |status| RpcError::new(name, &status).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_the_code_name() {
        let error = RpcError::new("ApproveAction", &Status::not_found("no approval 'ab'\nwaits"));
        assert_eq!(error.to_string(), "ApproveAction: NOT_FOUND: no approval 'ab' waits");
        let error = RpcError::new("GetDryRun", &Status::unimplemented(""));
        assert!(error.to_string().starts_with("GetDryRun: UNIMPLEMENTED: "), "{error}");
    }
}
