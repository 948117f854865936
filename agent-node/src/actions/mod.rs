//! The node's actions, one module each behind one trait, [`ActionHandler`]: its name, the refusal checks it
//! owns, and its execution, which ends in an [`ActionOutcome`] (outcome, detail for people, output).
//!
//! - [`restart`]: graceful restart, then verified for `RESPONDER_VERIFY_SECONDS`; a verified one names the
//!   containers to restart after it ([`dependents`]).
//! - [`exec`]: a diagnostic command from the node's allow-list, its output capped and masked, with a timeout;
//!   [`exec::run_allowed`] is the same for other node code.
//! - [`cleanup`]: exited containers of the same Compose service (else image) that this node watches, and the
//!   dangling images only they used.
//! - [`scale_up`]: one more replica of a Compose service or of a replicated Swarm service, never past its
//!   replica cap.
//!
//! The dispatcher ([`crate::executor`]) does what every action shares: the allowed actions, once per command
//! id, the limits on commands, watched containers only, and reporting. A new action is a module here with
//! its handler, a [`NodeAction`] variant, and its arms in [`NodeAction::from_command`],
//! [`NodeAction::action`] and [`NodeAction::handler`]; nothing else on the node changes.

pub mod cleanup;
pub mod compose;
pub mod dependents;
pub mod exec;
pub mod restart;
pub mod scale_up;

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use hemostat_model::Action;
use hemostat_proto::v1 as pb;

use crate::executor::ExecutionPolicy;
use crate::inventory::ContainerSelector;

/// An action the node knows how to execute, with its parameters, as read from a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// Graceful restart.
    Restart {
        /// How long to wait for a graceful stop.
        stop_timeout: std::time::Duration,
    },
    /// A diagnostic command inside the container.
    Exec {
        /// The argument vector.
        argv: Vec<String>,
    },
    /// Remove exited containers of the same Compose service (else the same image) and the dangling images
    /// only they used.
    Cleanup,
    /// One more replica of the container's Compose or Swarm service.
    ScaleUp,
}

/// Every action's name, as in `NODE_ALLOWED_ACTIONS` (all allowed by default).
pub const ACTION_NAMES: [&str; 4] = Action::NAMES;

impl NodeAction {
    /// The action a wire command asks for; `Err` says why the node cannot execute it as sent.
    pub fn from_command(command: &pb::Command) -> Result<Self, String> {
        match Action::try_from(command.action()) {
            Ok(Action::Restart) => restart::from_command(command),
            Ok(Action::Exec) => exec::from_command(command),
            Ok(Action::Cleanup) => Ok(NodeAction::Cleanup),
            Ok(Action::ScaleUp) => Ok(NodeAction::ScaleUp),
            Err(_) if pb::Action::try_from(command.action).is_err() => Err(format!(
                "this node does not know the action {}; upgrade the node (it is older than the coordinator)",
                command.action
            )),
            Err(_) => Err(format!("action {} is not one this node executes", command.action().as_str_name())),
        }
    }

    /// Which action it is.
    pub fn action(&self) -> Action {
        match self {
            NodeAction::Restart { .. } => Action::Restart,
            NodeAction::Exec { .. } => Action::Exec,
            NodeAction::Cleanup => Action::Cleanup,
            NodeAction::ScaleUp => Action::ScaleUp,
        }
    }

    /// Its handler.
    pub fn handler(&self) -> Box<dyn ActionHandler + '_> {
        match self {
            NodeAction::Restart { stop_timeout } => Box::new(restart::Restart { stop_timeout: *stop_timeout }),
            NodeAction::Exec { argv } => Box::new(exec::Exec { argv }),
            NodeAction::Cleanup => Box::new(cleanup::Cleanup),
            NodeAction::ScaleUp => Box::new(scale_up::ScaleUp),
        }
    }

    /// The action's name, as in `NODE_ALLOWED_ACTIONS`, logs and metrics.
    pub fn name(&self) -> &'static str {
        self.action().name()
    }
}

/// How an action ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionOutcome {
    /// Success, failed, refused or not applicable.
    pub outcome: pb::Outcome,
    /// What the node saw, for people.
    pub detail: String,
    /// What a command printed (exec), capped and masked; empty otherwise.
    pub output: String,
    /// After a verified restart: the ids of the containers to restart after this one, in order
    /// ([`dependents`]).
    pub dependents: Vec<String>,
}

impl ActionOutcome {
    /// An outcome without output.
    pub fn new(outcome: pb::Outcome, detail: impl Into<String>) -> Self {
        ActionOutcome { outcome, detail: detail.into(), output: String::new(), dependents: Vec::new() }
    }

    /// A refusal: `refused: <why>`.
    pub fn refused(why: impl std::fmt::Display) -> Self {
        Self::new(pb::Outcome::Refused, format!("refused: {why}"))
    }

    /// A failure.
    pub fn failed(detail: impl Into<String>) -> Self {
        Self::new(pb::Outcome::Failed, detail)
    }

    /// Not applicable: `not applicable: <why>`.
    pub fn not_applicable(why: impl std::fmt::Display) -> Self {
        Self::new(pb::Outcome::NotApplicable, format!("not applicable: {why}"))
    }
}

/// What every action may use: the Docker engine, which containers the node watches, and its rules.
pub struct ActionContext {
    /// The engine.
    pub docker: Docker,
    /// The containers this node watches.
    pub selector: ContainerSelector,
    /// What the node allows.
    pub policy: ExecutionPolicy,
    /// The probes' verdicts, for verifying a probed container's restart.
    pub probes: crate::probe::ProbeHealth,
}

/// The container a command is for, inspected and checked to be watched by this node.
pub struct Target {
    /// Its full id.
    pub id: String,
    /// Its inspect document.
    pub inspect: ContainerInspectResponse,
}

impl Target {
    /// Its labels.
    pub fn labels(&self) -> HashMap<String, String> {
        self.inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default()
    }
}

/// One action of the node.
#[async_trait::async_trait]
pub trait ActionHandler: Send + Sync {
    /// Which action it executes.
    fn action(&self) -> Action;

    /// The action's name, as in `NODE_ALLOWED_ACTIONS`, logs and metrics.
    fn name(&self) -> &'static str {
        self.action().name()
    }

    /// Why the node refuses this request under `policy` before looking at the container, for the checks
    /// this action owns (the allow-list of exec); `None` to go ahead.
    fn refusal(&self, _policy: &ExecutionPolicy) -> Option<String> {
        None
    }

    /// Executes the action on `target`.
    async fn execute(&self, context: &ActionContext, target: &Target) -> ActionOutcome;
}
