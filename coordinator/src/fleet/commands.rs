//! What admins change: silences, dry-run, manual actions, approvals and the end of a storm. Each command is
//! checked once here (the caller's role first, then its arguments), carried out through remediation, and
//! recorded with the admin's identity.

use std::time::SystemTime;

use hemostat_pki::Identity;

use super::validation::{
    check_action, check_approval_id, check_name, check_reason, check_silence_duration, check_silence_id, require_admin,
    require_name,
};
use super::{Fleet, FleetError};
use crate::alerting::probe::{ProbeError, ProbeResult};
use crate::events::{Action, EventKind, EventRecord, rfc3339, unix_ms};
use crate::remediation::{ApprovalError, ManualAction, TriggerError, operator};
use crate::silence::{Silence, new_silence_id};

/// A request to silence a container or a whole node.
#[derive(Clone, Debug, Default)]
pub struct SilenceRequest {
    /// The node.
    pub node: String,
    /// A container's name on it; empty silences the whole node.
    pub container: String,
    /// For how long.
    pub duration_seconds: u64,
    /// Why (required).
    pub reason: String,
}

/// A request for a manual action.
#[derive(Clone, Debug, Default)]
pub struct TriggerRequest {
    /// The node.
    pub node: String,
    /// The container: its name, id, or an id prefix of at least 12 characters.
    pub container: String,
    /// What to do; `None`: not said (refused).
    pub action: Option<Action>,
    /// For exec: the argument vector.
    pub argv: Vec<String>,
    /// Act past the coordinator's policy (the node's own checks still apply).
    pub force: bool,
    /// Why (optional).
    pub reason: String,
}

/// A command sent to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Its id: its result arrives as `remediation_complete` with it.
    pub command_id: String,
    /// What was sent, for people.
    pub detail: String,
}

/// What `release` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// The budget key released.
    pub key: String,
    /// Whether the container was quarantined (its breaker open).
    pub was_quarantined: bool,
    /// What its budget held, for people.
    pub detail: String,
}

impl Fleet {
    /// Silences a container or a whole node for a while; applies at once, recorded with who did it.
    pub async fn create_silence(&self, admin: &Identity, request: SilenceRequest) -> Result<Silence, FleetError> {
        require_admin(admin)?;
        require_name("node", &request.node)?;
        check_name("container", &request.container)?;
        check_reason(&request.reason, true)?;
        check_silence_duration(request.duration_seconds)?;
        let now = unix_ms(SystemTime::now());
        let silence = Silence {
            id: new_silence_id(),
            node: request.node,
            container: (!request.container.is_empty()).then_some(request.container),
            reason: request.reason,
            created_by: operator(admin),
            created_ms: now,
            expires_ms: now + request.duration_seconds * 1000,
        };
        self.settings().put_silence(&silence).await?;
        let until = rfc3339(silence.expires_ms);
        let reason = format!("{} silenced {} until {until}: {}", silence.created_by, silence.target(), silence.reason);
        let mut record = EventRecord::new(EventKind::OperatorAction, &silence.node, "", "", reason);
        record.container_name = silence.container.clone().unwrap_or_default();
        record.decided_by = Some(silence.created_by.clone());
        self.journal().append(&record).await?;
        tracing::warn!(%admin, target = ?silence.target(), "silence created");
        Ok(silence)
    }

    /// Ends the silence `id` before it expires, recorded with who did it.
    pub async fn end_silence(&self, admin: &Identity, id: &str) -> Result<Silence, FleetError> {
        require_admin(admin)?;
        check_silence_id(id)?;
        let Some(removed) = self.settings().remove_silence(id).await? else {
            return Err(FleetError::NotFound(format!("no silence has the id {id} (it may have expired)")));
        };
        let reason = format!("{} ended the silence of {} ({})", operator(admin), removed.target(), removed.id);
        let mut record = EventRecord::new(EventKind::OperatorAction, &removed.node, "", "", reason);
        record.container_name = removed.container.clone().unwrap_or_default();
        record.decided_by = Some(operator(admin));
        self.journal().append(&record).await?;
        Ok(removed)
    }

    /// Turns dry-run on or off for the fleet, recorded with who did it; returns what it was before.
    pub async fn set_dry_run(&self, admin: &Identity, enabled: bool) -> Result<bool, FleetError> {
        require_admin(admin)?;
        let previous = self.settings().set_dry_run(enabled).await?;
        let state = if enabled { "on" } else { "off" };
        tracing::warn!(%admin, enabled, "dry-run changed by an admin");
        let mut record = EventRecord::new(
            EventKind::OperatorAction,
            "",
            "",
            "",
            format!("{} turned dry-run {state}", operator(admin)),
        );
        record.decided_by = Some(operator(admin));
        self.journal().append(&record).await?;
        Ok(previous)
    }

    /// Ends every storm at an admin's word, recorded with who said so; returns the scopes that were in one.
    pub async fn end_storms(&self, admin: &Identity) -> Result<Vec<String>, FleetError> {
        require_admin(admin)?;
        let cleared = self.remediator.dispatcher().end_storms().await?;
        let reason = format!("automatic actions resumed by {admin}; storms cleared: {}", cleared.join(", "));
        tracing::warn!(%admin, ?cleared, "storm ended by an admin");
        let mut record = EventRecord::new(EventKind::Storm, "", "", "", reason);
        record.decided_by = Some(operator(admin));
        self.journal().append(&record).await?;
        Ok(cleared)
    }

    /// Releases a container from quarantine at an admin's word (its budget starts over), recorded with who
    /// did it and what its budget held.
    pub async fn release(&self, admin: &Identity, node: &str, container: &str) -> Result<Released, FleetError> {
        require_admin(admin)?;
        require_name("node", node)?;
        require_name("container", container)?;
        let entry = self.container(node, container).await?;
        let key = entry.facts.budget_key(&entry.node);
        let budget = self.remediator.dispatcher().policy().effective(&entry.facts.labels).budget();
        let before = self.remediator.dispatcher().release(&key).await?;
        let status = budget.status(&before, unix_ms(SystemTime::now()));
        let detail = format!(
            "{} attempt(s) in the last hour, {} failed verification(s) in a row, breaker {}",
            status.attempts_in_window,
            status.consecutive_failures,
            status.circuit.name()
        );
        let was_quarantined = status.quarantined();
        let what = if was_quarantined { "released from quarantine" } else { "reset the budget of" };
        let reason = format!("{} {what} {}/{} ({detail})", operator(admin), entry.node, entry.facts.name);
        tracing::warn!(%admin, node, container = ?entry.facts.name, was_quarantined, "released by an admin");
        let mut record =
            EventRecord::new(EventKind::OperatorAction, &entry.node, &entry.facts.id, &entry.facts.name, reason);
        record.decided_by = Some(operator(admin));
        self.journal().append(&record).await?;
        Ok(Released { key, was_quarantined, detail })
    }

    /// Sends a test notification, asked for by `admin`, through the sink named `sink` (every configured sink
    /// when empty), and returns what each answered (`hemostat notify test`).
    pub async fn test_notifications(&self, admin: &Identity, sink: &str) -> Result<Vec<ProbeResult>, FleetError> {
        require_admin(admin)?;
        self.journal().notifier().test(sink.trim(), &admin.to_string()).await.map_err(|error| match error {
            ProbeError::NoSinks => FleetError::Stopped(error.to_string()),
            ProbeError::UnknownSink { .. } => FleetError::Invalid(error.to_string()),
        })
    }

    /// Lets a decision waiting for approval go ahead, through the same policy.
    pub async fn approve(&self, admin: &Identity, approval_id: &str) -> Result<Sent, FleetError> {
        require_admin(admin)?;
        check_approval_id(approval_id)?;
        match self.remediator.manual().approve(approval_id, admin).await {
            Ok(detail) => {
                tracing::warn!(%admin, approval = %approval_id, "approved");
                Ok(Sent { command_id: approval_id.to_owned(), detail })
            }
            Err(error @ ApprovalError::Unknown) => Err(FleetError::NotFound(error.to_string())),
            Err(error @ (ApprovalError::Expired | ApprovalError::Rejected(_))) => {
                Err(FleetError::Stopped(error.to_string()))
            }
            Err(ApprovalError::Store(error)) => Err(error.into()),
        }
    }

    /// Sends an admin's manual action, through the policy unless forced.
    pub async fn trigger(&self, admin: &Identity, request: TriggerRequest) -> Result<Sent, FleetError> {
        require_admin(admin)?;
        let action = check_action(request.action, &request.argv)?;
        check_reason(&request.reason, false)?;
        let entry = self.container(&request.node, &request.container).await?;
        let name = entry.facts.name.clone();
        let manual = ManualAction {
            node: entry.node,
            container: entry.facts,
            action,
            argv: request.argv,
            force: request.force,
            reason: if request.reason.is_empty() { "no reason given".into() } else { request.reason },
        };
        match self.remediator.manual().trigger(manual, admin).await {
            Ok(command_id) => Ok(Sent {
                detail: format!(
                    "sent {} of {name} to node {}; its result arrives as remediation_complete",
                    action.name(),
                    request.node
                ),
                command_id,
            }),
            Err(error @ (TriggerError::NotPermitted(_) | TriggerError::Rejected(_))) => {
                Err(FleetError::Stopped(error.to_string()))
            }
            Err(TriggerError::NodeNotConnected(error)) => Err(FleetError::NodeUnreachable(error)),
            Err(TriggerError::Store(error)) => Err(error.into()),
        }
    }
}
