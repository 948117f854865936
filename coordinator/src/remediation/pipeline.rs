//! The decision pipeline: from a node's health alert to a recorded decision and, when one is needed, an
//! action handed to dispatch.
//!
//! For each alert: assess an exit once (a requested or clean exit, or an opted-out container, records
//! nothing); record the `health_alert`; count a restart the node made on its own; let the [`Analyzer`] decide
//! with the container's alert history; record the decision (`false_alarm` or `remediation_needed`, with its
//! evidence); then let a silence or dry-run hold it, park it for an admin's approval when approvals are
//! required, or dispatch it. With an LLM configured the decision runs in the background (bounded by the
//! LLM's own concurrency), so a slow model never holds up the node's other reports.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::dispatch::Dispatcher;
use super::journal::Journal;
use super::node_commands::{NodeCommands, new_command_id};
use super::{Stop, Target};
use crate::analysis::exit::{Assessment, assess_exit};
use crate::analysis::{Analyzer, HistoryEntry, Verdict, alert_samples};
use crate::container::{AlertReport, ContainerFacts};
use crate::events::{Action, EventKind, EventRecord, Rejection, unix_ms};
use crate::store::{HistoryStore, PendingApproval, SettingsStore, StoreError};

/// Alerts in, decisions out.
pub struct Pipeline {
    analyzer: Analyzer,
    history: Arc<dyn HistoryStore>,
    approvals: Arc<dyn SettingsStore>,
    journal: Arc<Journal>,
    dispatcher: Arc<Dispatcher>,
    commands: Arc<NodeCommands>,
    /// `RESPONDER_REQUIRE_APPROVAL`: how long decisions wait for an admin; `None` acts at once.
    approval_ttl: Option<Duration>,
}

impl Pipeline {
    /// A pipeline deciding with `analyzer` and the history in `history`, parking decisions for approval in
    /// `approvals` for `approval_ttl` (when set), recording in `journal`, acting through `dispatcher`.
    pub fn new(
        analyzer: Analyzer,
        history: Arc<dyn HistoryStore>,
        approvals: Arc<dyn SettingsStore>,
        journal: Arc<Journal>,
        dispatcher: Arc<Dispatcher>,
        commands: Arc<NodeCommands>,
        approval_ttl: Option<Duration>,
    ) -> Self {
        Pipeline { analyzer, history, approvals, journal, dispatcher, commands, approval_ttl }
    }

    /// Handles a node's health alert: records it, then decides and acts within the policy.
    pub async fn on_alert(self: &Arc<Self>, node: &str, alert: AlertReport) -> Result<(), StoreError> {
        if let Some(exit) = &alert.exit
            && let Assessment::Ignore { reason } = assess_exit(&alert.container, exit)
        {
            tracing::debug!(node, container = %alert.container.name, reason, "exit needs no action");
            return Ok(());
        }
        let container = &alert.container;
        let mut record =
            EventRecord::new(EventKind::HealthAlert, node, &container.id, &container.name, alert.summary());
        record.anomalies = alert.anomalies.clone();
        record.exit_code = alert.exit.map(|e| e.exit_code);
        record.observed_ms = alert.observed_at.map(unix_ms);
        self.journal.append(&record).await?;
        if let Some(command_id) = &alert.local_restart {
            return self.on_local_restart(node, &alert, command_id).await;
        }
        if self.analyzer.is_slow() {
            let (this, node) = (self.clone(), node.to_owned());
            tokio::spawn(async move {
                if let Err(error) = this.decide(&node, &alert).await {
                    tracing::error!(node, %error, "could not record a decision; no action was taken");
                }
            });
            Ok(())
        } else {
            self.decide(node, &alert).await
        }
    }

    /// Analyzes the alert with the container's history, keeps the alert in it, and acts on the verdict.
    async fn decide(&self, node: &str, alert: &AlertReport) -> Result<(), StoreError> {
        let container = &alert.container;
        let key = container.budget_key(node);
        let config = self.analyzer.config();
        let now = unix_ms(SystemTime::now());
        let history = self.history.history(&key, now, config.history_ttl).await?;
        let verdict = self.analyzer.analyze(alert, &history, now).await;
        let entry = HistoryEntry { time_ms: now, anomalies: alert.anomalies.clone(), samples: alert_samples(alert) };
        self.history.append_history(&key, &entry, config.history_size, config.history_ttl).await?;
        match verdict {
            Some(verdict) => self.act(node, container, verdict).await,
            None => Ok(()),
        }
    }

    /// Records a restart the node made on its own while cut off, and counts it in the container's budget.
    async fn on_local_restart(&self, node: &str, alert: &AlertReport, command_id: &str) -> Result<(), StoreError> {
        let container = &alert.container;
        let key = container.budget_key(node);
        let at = alert.observed_at.map_or_else(|| unix_ms(SystemTime::now()), unix_ms);
        self.dispatcher.count_local_action(&key, at).await?;
        let reason = "the node restarted it on its own local policy, cut off from every coordinator".to_owned();
        let mut record = EventRecord::new(EventKind::RemediationNeeded, node, &container.id, &container.name, reason);
        record.action = Some(Action::Restart);
        record.analysis_method = Some("local".into());
        record.decided_by = Some("node_local_policy".into());
        record.command_id = Some(command_id.to_owned());
        self.journal.append(&record).await?;
        self.commands.expect_result(command_id, &container.name, Action::Restart, key);
        Ok(())
    }

    /// Records a decision and, for an action, holds, parks or dispatches it.
    async fn act(&self, node: &str, container: &ContainerFacts, verdict: Verdict) -> Result<(), StoreError> {
        let mut decision =
            EventRecord::new(EventKind::FalseAlarm, node, &container.id, &container.name, verdict.reason);
        decision.confidence = Some(verdict.confidence);
        decision.analysis_method = Some(verdict.method.to_owned());
        decision.decided_by = Some(verdict.decided_by);
        decision.evidence = Some(verdict.evidence);
        let Some(action) = verdict.action else {
            self.journal.append(&decision).await?;
            return Ok(());
        };
        let mut needed = EventRecord { kind: EventKind::RemediationNeeded, action: Some(action), ..decision };
        let command_id = new_command_id();
        needed.command_id = Some(command_id.clone());
        needed.arguments = self.commands.arguments(action, &[]);
        self.journal.append(&needed).await?;

        let target = Target::of(node, container);
        if self.dispatcher.hold(&target, action, &command_id).await?.is_some() {
            return Ok(());
        }
        if let Some(ttl) = self.approval_ttl {
            return self.await_approval(&target, action, command_id, ttl).await;
        }
        self.dispatcher.dispatch_or_retry(&target, action, command_id).await.map(|_| ())
    }

    /// Parks a decision until an admin approves it (or `ttl` passes), and records that it waits.
    async fn await_approval(
        &self,
        target: &Target,
        action: Action,
        command_id: String,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let expires_ms = unix_ms(SystemTime::now()) + ttl.as_millis() as u64;
        let approval = PendingApproval {
            node: target.node.clone(),
            container_id: target.container_id.clone(),
            container_name: target.container_name.clone(),
            budget_key: target.key.clone(),
            action,
            expires_ms,
        };
        self.approvals.put_approval(&command_id, &approval).await?;
        let reason = format!(
            "awaiting approval: an admin can approve it with `hemostat approve {command_id}` within {}s",
            ttl.as_secs()
        );
        let stop = Stop { rejection: Rejection::AwaitingApproval, reason };
        self.dispatcher.reject(target, action, &stop, command_id).await
    }
}
