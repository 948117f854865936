//! Why the fleet service did not do what was asked: one error for every query and command, which each front
//! end maps to its own form (a gRPC status, an HTTP status).

use crate::store::StoreError;

/// Why a query or command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The request is wrong: a missing or malformed field, a value out of range.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this (a viewer asking for a change).
    #[error("{0}")]
    Forbidden(String),
    /// What the request names does not exist: a node's container, a silence, an approval, an event.
    #[error("{0}")]
    NotFound(String),
    /// The policy or the state of things stopped it: a cooldown, an expired approval, the container's label.
    #[error("{0}")]
    Stopped(String),
    /// The request is too broad to answer exactly (too many events in a period).
    #[error("{0}")]
    TooBroad(String),
    /// The node the command is for is not connected to any coordinator.
    #[error("{0}")]
    NodeUnreachable(String),
    /// The state store did not answer.
    #[error("the state store did not answer: {0}")]
    Store(#[from] StoreError),
}
