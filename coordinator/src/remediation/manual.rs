//! Actions an admin starts: a manual action (`TriggerAction`), through the policy unless forced, and the
//! approval of a decision that waits for one. Both are recorded as `remediation_needed` decided by the
//! operator, then dispatched like any other action.

use std::sync::Arc;
use std::time::SystemTime;

use hemostat_pki::Identity;

use super::dispatch::{DispatchOutcome, Dispatcher};
use super::journal::Journal;
use super::node_commands::{NodeCommands, new_command_id};
use super::{Stop, Target, operator};
use crate::container::ContainerFacts;
use crate::events::{Action, EventKind, EventRecord, Rejection, unix_ms};
use crate::store::{PendingApproval, SettingsStore, StoreError};

/// An admin's manual action (`TriggerAction`), validated.
#[derive(Clone, Debug)]
pub struct ManualAction {
    /// The node the container is on.
    pub node: String,
    /// The container, as the node last reported it.
    pub container: ContainerFacts,
    /// What to do.
    pub action: Action,
    /// For `exec`: the argument vector.
    pub argv: Vec<String>,
    /// Act even where the coordinator's policy would not (the node's own checks still apply).
    pub force: bool,
    /// The admin's reason.
    pub reason: String,
}

/// Why a manual action was not sent.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The container's `hemostat.actions` label does not allow it (forcing overrides the label).
    #[error("the container's hemostat.actions label does not allow {0}; use force to override")]
    NotPermitted(&'static str),
    /// The policy stopped it (cooldown, breaker, storm, silence, dry-run, node gone).
    #[error("the policy stopped it: {0}")]
    Rejected(String),
    /// The node is not connected.
    #[error("{0}")]
    NodeNotConnected(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an approval did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No pending approval has this id (unknown, already approved, or long expired).
    #[error("no decision awaits approval under this id (unknown, already approved, or expired)")]
    Unknown,
    /// It expired.
    #[error("the approval expired; the container was not acted on")]
    Expired,
    /// The policy stopped it.
    #[error("approved, but the policy stopped it: {0}")]
    Rejected(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Manual actions and approvals.
pub struct ManualActions {
    approvals: Arc<dyn SettingsStore>,
    journal: Arc<Journal>,
    dispatcher: Arc<Dispatcher>,
    commands: Arc<NodeCommands>,
}

impl ManualActions {
    /// Actions taken from `approvals` or an admin's request, recorded in `journal`, sent by `dispatcher`
    /// (or, past the policy, by `commands`).
    pub fn new(
        approvals: Arc<dyn SettingsStore>,
        journal: Arc<Journal>,
        dispatcher: Arc<Dispatcher>,
        commands: Arc<NodeCommands>,
    ) -> Self {
        ManualActions { approvals, journal, dispatcher, commands }
    }

    /// Sends an admin's action, through the policy unless forced; returns the command id.
    pub async fn trigger(&self, manual: ManualAction, admin: &Identity) -> Result<String, TriggerError> {
        let ManualAction { node, container, action, argv, force, reason } = manual;
        if !force && crate::analysis::permitted_by_label(&container, &[action]).is_empty() {
            return Err(TriggerError::NotPermitted(action.name()));
        }
        let command_id = new_command_id();
        let forced = if force { " (forced past the coordinator's policy)" } else { "" };
        let mut record = EventRecord::new(
            EventKind::RemediationNeeded,
            &node,
            &container.id,
            &container.name,
            format!("requested by {admin}{forced}: {reason}"),
        );
        record.action = Some(action);
        record.analysis_method = Some("operator".into());
        record.decided_by = Some(operator(admin));
        record.command_id = Some(command_id.clone());
        record.arguments = self.commands.arguments(action, &argv, &container.labels);
        record.confidence = Some(1.0);
        self.journal.append(&record).await?;
        let target = Target::of(&node, &container);
        // A diagnostic command changes nothing: no budget, no silence or storm holds it (the node's
        // allow-list still decides whether it runs). A forced action skips the policy but counts.
        if force || action == Action::Exec {
            if action != Action::Exec {
                self.dispatcher.count_forced_action(&target).await?;
            }
            return match self.commands.send(&target, action, argv, command_id.clone()).await? {
                Ok(_) => Ok(command_id),
                Err(error) => Err(TriggerError::NodeNotConnected(error.to_string())),
            };
        }
        if let Some(stop) = self.dispatcher.hold(&target, action, &command_id).await? {
            return Err(TriggerError::Rejected(stop.reason));
        }
        match self.dispatcher.dispatch(&target, action, argv, command_id.clone()).await? {
            DispatchOutcome::Sent(_) => Ok(command_id),
            DispatchOutcome::Stopped(stop) => Err(TriggerError::Rejected(stop.reason)),
        }
    }

    /// Lets a decision that waits for approval go ahead, through the same policy (storm breaker, cooldown,
    /// circuit breaker), recording the approver; returns what was sent, for people.
    pub async fn approve(&self, approval_id: &str, approver: &Identity) -> Result<String, ApprovalError> {
        let approval = self.approvals.take_approval(approval_id).await?.ok_or(ApprovalError::Unknown)?;
        if unix_ms(SystemTime::now()) > approval.expires_ms {
            return Err(ApprovalError::Expired);
        }
        let target = Target {
            labels: self.commands.labels_of(&approval.node, &approval.container_id),
            node: approval.node.clone(),
            container_id: approval.container_id.clone(),
            container_name: approval.container_name.clone(),
            key: approval.budget_key.clone(),
        };
        let reason = format!("approved by {approver}");
        let mut record = EventRecord::new(
            EventKind::RemediationNeeded,
            &target.node,
            &target.container_id,
            &target.container_name,
            reason,
        );
        record.action = Some(approval.action);
        record.analysis_method = Some("operator".into());
        record.decided_by = Some(operator(approver));
        record.command_id = Some(approval_id.to_owned());
        self.journal.append(&record).await?;
        match self.dispatcher.dispatch(&target, approval.action, approval.argv.clone(), approval_id.to_owned()).await? {
            DispatchOutcome::Sent(_) => {
                Ok(format!("sent {} of {} to node {}", approval.action.name(), approval.container_name, approval.node))
            }
            DispatchOutcome::Stopped(stop) => Err(ApprovalError::Rejected(stop.reason)),
        }
    }
}

/// Parks an automatic decision (`action` on `target`, with `argv`) in `approvals` until an admin approves it
/// with `hemostat approve <command_id>` or `ttl` passes, and records through `dispatcher` that it waits
/// (`rejected: awaiting_approval`). The pipeline's decisions and dependents' restarts are parked this way.
pub async fn park_for_approval(
    approvals: &dyn SettingsStore,
    dispatcher: &Dispatcher,
    target: &Target,
    (action, argv): (Action, Vec<String>),
    command_id: String,
    ttl: std::time::Duration,
) -> Result<(), StoreError> {
    let approval = PendingApproval {
        node: target.node.clone(),
        container_id: target.container_id.clone(),
        container_name: target.container_name.clone(),
        budget_key: target.key.clone(),
        action,
        argv,
        expires_ms: unix_ms(SystemTime::now()) + ttl.as_millis() as u64,
    };
    approvals.put_approval(&command_id, &approval).await?;
    let reason = format!(
        "awaiting approval: an admin can approve it with `hemostat approve {command_id}` within {}s",
        ttl.as_secs()
    );
    let stop = Stop { rejection: Rejection::AwaitingApproval, reason };
    dispatcher.reject(target, action, &stop, command_id).await
}
