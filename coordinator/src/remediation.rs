//! Remediation: from a node's report to a recorded decision and, when the policy allows, a command.
//!
//! For each problem: record a `health_alert`; record the decision (`remediation_needed` or `false_alarm`);
//! check and record the budget in one atomic store step; then either record `rejected` with the reason, or
//! send the command to the node. The node's result becomes `remediation_complete`. Nothing is sent to a node
//! unless the store has recorded it first: with the store down, nothing is acted on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::analysis::{Assessment, Decision, assess_exit};
use crate::container::{AlertReport, Anomaly, AnomalyKind, ContainerFacts, Severity};
use crate::events::{Action, EventKind, EventRecord, Outcome, Rejection, unix_ms};
use crate::policy::{Budget, BudgetVerdict};
use crate::registry::{Command, Outbound, Registry};
use crate::store::{StateStore, StoreError};

/// The remediation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemediationConfig {
    /// Cooldown and breaker limits per container.
    pub budget: Budget,
    /// How long a restart waits for a graceful stop.
    pub stop_timeout: Duration,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig { budget: Budget::DEFAULT, stop_timeout: Duration::from_secs(10) }
    }
}

/// A command sent and not yet answered.
struct Pending {
    container_name: String,
    action: Action,
}

/// Turns reports into decisions, policy checks, commands and events.
pub struct Remediator {
    store: Arc<dyn StateStore>,
    registry: Arc<Registry>,
    config: RemediationConfig,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Remediator {
    /// A remediator recording in `store` and reaching nodes through `registry`.
    pub fn new(store: Arc<dyn StateStore>, registry: Arc<Registry>, config: RemediationConfig) -> Self {
        Remediator { store, registry, config, pending: Mutex::new(HashMap::new()) }
    }

    /// Handles a node's health alert: records it, decides, and acts within the policy.
    pub async fn on_alert(&self, node: &str, alert: &AlertReport) -> Result<(), StoreError> {
        let container = &alert.container;
        let decision = match &alert.exit {
            Some(exit) => match assess_exit(container, exit) {
                Assessment::Ignore { reason } => {
                    tracing::debug!(node, container = %container.name, reason, "exit needs no action");
                    return Ok(());
                }
                Assessment::Decide(decision) => Some(decision),
            },
            // Standing anomalies are recorded; deciding on them is the analyzer's work.
            None => None,
        };
        let mut record =
            EventRecord::new(EventKind::HealthAlert, node, &container.id, &container.name, alert.summary());
        record.anomalies = alert.anomalies.clone();
        record.exit_code = alert.exit.map(|e| e.exit_code);
        record.observed_ms = alert.observed_at.map(unix_ms);
        self.store.append_event(&record).await?;
        match decision {
            Some(decision) => self.decide(node, container, decision).await,
            None => Ok(()),
        }
    }

    /// Records that a container's standing anomalies cleared.
    pub async fn on_resolved(
        &self,
        node: &str,
        container: &ContainerFacts,
        cleared: &[AnomalyKind],
    ) -> Result<(), StoreError> {
        let names: Vec<&str> = cleared.iter().map(|k| k.name()).collect();
        let mut record = EventRecord::new(
            EventKind::Resolved,
            node,
            &container.id,
            &container.name,
            format!("cleared: {}", names.join(", ")),
        );
        record.anomalies = cleared
            .iter()
            .map(|kind| Anomaly { kind: *kind, severity: Severity::Medium, threshold: 0.0, actual: 0.0 })
            .collect();
        self.store.append_event(&record).await?;
        Ok(())
    }

    /// Records a decision and, for an action, checks the budget and sends the command.
    async fn decide(&self, node: &str, container: &ContainerFacts, decision: Decision) -> Result<(), StoreError> {
        let event = |kind, reason: String| EventRecord::new(kind, node, &container.id, &container.name, reason);
        let (action, reason, confidence) = match decision {
            Decision::FalseAlarm { reason, confidence } => {
                let mut record = event(EventKind::FalseAlarm, reason);
                record.confidence = Some(confidence);
                record.analysis_method = Some("rules".into());
                self.store.append_event(&record).await?;
                return Ok(());
            }
            Decision::Remediate { action, reason, confidence } => (action, reason, confidence),
        };
        let command_id = new_command_id();
        let mut needed = event(EventKind::RemediationNeeded, reason);
        needed.action = Some(action);
        needed.confidence = Some(confidence);
        needed.analysis_method = Some("rules".into());
        needed.command_id = Some(command_id.clone());
        self.store.append_event(&needed).await?;

        let key = container.budget_key(node);
        let verdict = self.store.try_begin_action(&key, unix_ms(SystemTime::now()), &self.config.budget).await?;
        let rejection = match verdict {
            BudgetVerdict::Allowed { attempts_in_window } => {
                tracing::info!(node, container = %container.name, ?action, attempts_in_window, "remediating");
                None
            }
            BudgetVerdict::CooldownActive { retry_after } => Some((
                Rejection::CooldownActive,
                format!(
                    "cooldown active: {key} was acted on less than {}s ago; next action allowed in {}s",
                    self.config.budget.cooldown.as_secs(),
                    retry_after.as_secs().max(1)
                ),
            )),
            BudgetVerdict::CircuitOpen { retry_after } => Some((
                Rejection::CircuitOpen,
                format!(
                    "circuit open: {key} had {} attempts in the last hour; closes in {}s",
                    self.config.budget.max_attempts,
                    retry_after.as_secs().max(1)
                ),
            )),
        };
        if let Some((rejection, reason)) = rejection {
            tracing::info!(node, container = %container.name, reason = %reason, "action rejected");
            let mut record = event(EventKind::Rejected, reason);
            record.action = Some(action);
            record.rejection = Some(rejection);
            record.command_id = Some(command_id);
            self.store.append_event(&record).await?;
            return Ok(());
        }

        let command = Command {
            id: command_id.clone(),
            container_id: container.id.clone(),
            container_name: container.name.clone(),
            action,
            stop_timeout_secs: self.config.stop_timeout.as_secs() as u32,
        };
        self.pending
            .lock()
            .expect("pending lock")
            .insert(command_id.clone(), Pending { container_name: container.name.clone(), action });
        if let Err(error) = self.registry.send(node, Outbound::Command(command)) {
            self.pending.lock().expect("pending lock").remove(&command_id);
            let mut record = event(EventKind::Rejected, format!("{error} any more; the command was not sent"));
            record.action = Some(action);
            record.rejection = Some(Rejection::NodeDisconnected);
            record.command_id = Some(command_id);
            self.store.append_event(&record).await?;
        }
        Ok(())
    }

    /// Handles a node's report on a command.
    pub async fn on_command_result(
        &self,
        node: &str,
        command_id: &str,
        container_id: &str,
        outcome: Outcome,
        detail: &str,
        duration: Duration,
    ) -> Result<(), StoreError> {
        let pending = self.pending.lock().expect("pending lock").remove(command_id);
        let (name, action) = match &pending {
            Some(p) => (p.container_name.as_str(), Some(p.action)),
            None => ("", None),
        };
        tracing::info!(node, container = name, command_id, ?outcome, ?duration, detail, "command finished");
        let mut record = EventRecord::new(EventKind::RemediationComplete, node, container_id, name, detail);
        record.outcome = Some(outcome);
        record.action = action;
        record.command_id = Some(command_id.to_owned());
        self.store.append_event(&record).await?;
        Ok(())
    }
}

/// A new random command id (128 bits, hex).
fn new_command_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
