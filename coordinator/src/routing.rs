//! Command routing between coordinators: a command for a node whose session another coordinator holds is
//! queued in the shared state store for that coordinator, which takes it within [`POLL_INTERVAL`], sends it
//! to its node, and records the result (both ends are
//! [`NodeCommands`](crate::remediation::node_commands::NodeCommands)). The policy was already checked (and
//! the attempt recorded) by the coordinator that decided, so the action still runs at most once per budget.
//! This module is the routed command's stored form.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::Action;
use crate::store::StoreError;

/// How often a coordinator looks for commands routed to it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A command on its way to the coordinator that holds the node's session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedCommand {
    /// The node.
    pub node: String,
    /// The command's id.
    pub command_id: String,
    /// The target container's id.
    pub container_id: String,
    /// The target container's name.
    pub container_name: String,
    /// What to do.
    pub action: Action,
    /// For restarts: seconds to wait for a graceful stop.
    pub stop_timeout_secs: u32,
    /// For exec: the argument vector.
    pub argv: Vec<String>,
    /// The container's budget key, for recording the verified result.
    pub budget_key: String,
    /// The action to take instead when this one does not succeed (an analyzer's `scale_up` falls back to a
    /// restart); absent in what older coordinators stored.
    #[serde(default)]
    pub fallback: Option<Action>,
}

impl RoutedCommand {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("routed commands serialize")
    }

    /// From the stored form.
    pub fn decode(raw: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("routed command: {e}")))
    }
}
