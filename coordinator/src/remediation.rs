//! Remediation: from a node's report to a recorded decision and, when the policy allows, a command.
//!
//! For each problem: record a `health_alert`; let the [`Analyzer`] decide, with the container's alert history
//! from the store; record the decision (`remediation_needed` or `false_alarm`, with its evidence);
//! check the storm breaker (more than `RESPONDER_STORM_THRESHOLD` containers needing remediation within
//! `RESPONDER_STORM_WINDOW_SECONDS`, on one node or in the fleet, stops automatic actions and raises one
//! `storm` event listing them, until the rate falls); check and record the budget in one atomic store step;
//! then either record `rejected` with the reason (once per episode), or
//! send the command to the node. The node's result becomes `remediation_complete`. Nothing is sent to a node
//! unless the store has recorded it first: with the store down, nothing is acted on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hemostat_proto::v1 as pb;

use crate::alerting::Notifier;
use crate::analysis::exit::{Assessment, assess_exit};
use crate::analysis::{Analyzer, HistoryEntry, Verdict, alert_samples};
use crate::container::{AlertReport, Anomaly, AnomalyKind, ContainerFacts, Severity};
use crate::directory::Directory;
use crate::events::{Action, EventId, EventKind, EventRecord, EventRetention, Outcome, Rejection, unix_ms};
use crate::policy::{Budget, BudgetVerdict};
use crate::registry::{Command, Outbound, Registry};
use crate::routing::RoutedCommand;
use crate::silence::Silence;
use crate::store::{PendingApproval, StateStore, StoreError, StormConfig, StormVerdict};
use hemostat_pki::Identity;

/// The remediation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemediationConfig {
    /// Cooldown and breaker limits per container.
    pub budget: Budget,
    /// How long a restart waits for a graceful stop.
    pub stop_timeout: Duration,
    /// `RESPONDER_DRY_RUN`: record what would be done, do nothing, use no budget.
    pub dry_run: bool,
    /// The storm breaker's limits.
    pub storm: StormConfig,
    /// `RESPONDER_REQUIRE_APPROVAL`: decisions wait this long for an admin's approval; `None` acts at once.
    pub approval_ttl: Option<Duration>,
    /// `RESPONDER_AUDIT_RETENTION_SECONDS`: how long the audit log keeps records (7 days).
    pub audit_retention: Duration,
    /// `ALERT_MAX_EVENTS`, `ALERT_EVENT_TTL`: how long the event log keeps events.
    pub event_retention: EventRetention,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            budget: Budget::DEFAULT,
            stop_timeout: Duration::from_secs(10),
            dry_run: false,
            storm: StormConfig::default(),
            approval_ttl: None,
            audit_retention: Duration::from_secs(7 * 24 * 3600),
            event_retention: EventRetention::default(),
        }
    }
}

/// A node's report on a command, converted from the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandReport {
    /// The command's id.
    pub command_id: String,
    /// The container it was for.
    pub container_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What the node saw.
    pub detail: String,
    /// A diagnostic command's output.
    pub output: String,
    /// How long it took.
    pub duration: Duration,
}

impl CommandReport {
    /// From the wire.
    pub fn from_proto(result: pb::CommandResult) -> Self {
        CommandReport {
            outcome: Outcome::from_proto(result.outcome()),
            duration: Duration::from_millis(result.duration_ms),
            command_id: result.command_id,
            container_id: result.container_id,
            detail: result.detail,
            output: result.output,
        }
    }
}

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

/// How long the runtime settings read from the store (silences, dry-run) are trusted before being read again.
const SETTINGS_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

/// What operators set at runtime, as last read from the store.
#[derive(Clone)]
struct RuntimeSettings {
    /// When it was read.
    read_at: std::time::Instant,
    /// The silences in force.
    silences: Vec<Silence>,
    /// Dry-run as an admin set it; `None`: as configured.
    dry_run: Option<bool>,
}

/// The container an action is for.
struct Target<'a> {
    node: &'a str,
    container_id: &'a str,
    container_name: &'a str,
    /// Its budget key.
    key: String,
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

/// A command sent and not yet answered.
struct Pending {
    container_name: String,
    action: Action,
    budget_key: String,
}

/// Turns reports into decisions, policy checks, commands and events.
pub struct Remediator {
    store: Arc<dyn StateStore>,
    registry: Arc<Registry>,
    analyzer: Analyzer,
    config: RemediationConfig,
    pending: Mutex<HashMap<String, Pending>>,
    /// The last rejection recorded per budget key, until an action is allowed again.
    episodes: Mutex<HashMap<String, Rejection>>,
    /// Woken at every event this coordinator records, for live readers.
    appended: tokio::sync::Notify,
    /// Silences and dry-run as last read from the store; `None` after this coordinator changed them.
    settings: Mutex<Option<RuntimeSettings>>,
    /// Where the nodes connected to other coordinators are, for routing commands to them.
    directory: Option<Arc<Directory>>,
    /// Since when the state store has not answered (Unix ms), while it does not.
    store_down_since: Mutex<Option<u64>>,
    /// Told of every stored event; sends the notifications (never waits).
    notifier: Notifier,
}

impl Remediator {
    /// A remediator deciding with `analyzer`, recording in `store` and reaching nodes through `registry`.
    pub fn new(
        store: Arc<dyn StateStore>,
        registry: Arc<Registry>,
        analyzer: Analyzer,
        config: RemediationConfig,
    ) -> Self {
        Remediator {
            store,
            registry,
            analyzer,
            config,
            pending: Mutex::new(HashMap::new()),
            episodes: Mutex::new(HashMap::new()),
            appended: tokio::sync::Notify::new(),
            settings: Mutex::new(None),
            directory: None,
            store_down_since: Mutex::new(None),
            notifier: Notifier::disabled(),
        }
    }

    /// Routes commands for nodes connected to other coordinators through `directory`.
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Sends notifications of the events it records through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The notifier it sends through (for `hemostat notify test`).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Handles a node's health alert: records it, then decides and acts within the policy. With an LLM
    /// configured the decision runs in the background (bounded by the LLM's own concurrency), so a slow
    /// model never holds up the node's other reports.
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
        self.log(&record).await?;
        if let Some(command_id) = &alert.local_restart {
            return self.on_local_restart(node, &alert, command_id).await;
        }
        if self.analyzer.is_slow() {
            let (this, node) = (self.clone(), node.to_owned());
            tokio::spawn(async move {
                if let Err(error) = this.analyze_and_act(&node, &alert).await {
                    tracing::error!(node, %error, "could not record a decision; no action was taken");
                }
            });
            Ok(())
        } else {
            self.analyze_and_act(node, &alert).await
        }
    }

    async fn analyze_and_act(&self, node: &str, alert: &AlertReport) -> Result<(), StoreError> {
        let container = &alert.container;
        let key = container.budget_key(node);
        let config = self.analyzer.config();
        let now = unix_ms(SystemTime::now());
        let history = self.store.history(&key, now, config.history_ttl).await?;
        let verdict = self.analyzer.analyze(alert, &history, now).await;
        let entry = HistoryEntry { time_ms: now, anomalies: alert.anomalies.clone(), samples: alert_samples(alert) };
        self.store.append_history(&key, &entry, config.history_size, config.history_ttl).await?;
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
        self.store.record_attempt(&key, at, &self.config.budget).await?;
        self.episodes.lock().expect("episodes lock").remove(&key);
        let reason = "the node restarted it on its own local policy, cut off from every coordinator".to_owned();
        let mut record = EventRecord::new(EventKind::RemediationNeeded, node, &container.id, &container.name, reason);
        record.action = Some(Action::Restart);
        record.analysis_method = Some("local".into());
        record.decided_by = Some("node_local_policy".into());
        record.command_id = Some(command_id.to_owned());
        self.log(&record).await?;
        self.pending.lock().expect("pending lock").insert(
            command_id.to_owned(),
            Pending { container_name: container.name.clone(), action: Action::Restart, budget_key: key },
        );
        Ok(())
    }

    /// Appends a record to the event log and, for decisions, actions and results, to the audit log.
    async fn log(&self, record: &EventRecord) -> Result<(), StoreError> {
        let marked;
        let record =
            if !record.node.is_empty() && self.silence_for(&record.node, &record.container_name).await?.is_some() {
                marked = EventRecord { silenced: true, ..record.clone() };
                &marked
            } else {
                record
            };
        let id = self.store.append_event(record, &self.config.event_retention).await?;
        self.notifier.notify(id, record);
        crate::instruments::observe(record);
        self.appended.notify_waiters();
        if record.kind.audited() {
            self.store.append_audit(record, self.config.audit_retention).await?;
        }
        Ok(())
    }

    /// Silences and dry-run as operators set them, read through a one-second cache: a burst of events and
    /// decisions costs one read of each, not one per event (other coordinators' changes show within a second;
    /// this one's at once).
    async fn settings(&self) -> Result<RuntimeSettings, StoreError> {
        let cached = self.settings.lock().expect("settings lock").clone();
        if let Some(settings) = cached.filter(|s| s.read_at.elapsed() < SETTINGS_CACHE) {
            return Ok(settings);
        }
        let settings = RuntimeSettings {
            read_at: std::time::Instant::now(),
            silences: self.store.silences(unix_ms(SystemTime::now())).await?,
            dry_run: self.store.dry_run_override().await?,
        };
        *self.settings.lock().expect("settings lock") = Some(settings.clone());
        Ok(settings)
    }

    /// The silence covering the container `name` on `node` (an empty name: only whole-node silences).
    pub async fn silence_for(&self, node: &str, name: &str) -> Result<Option<Silence>, StoreError> {
        let now = unix_ms(SystemTime::now());
        Ok(self.settings().await?.silences.into_iter().find(|s| s.covers(node, name, now)))
    }

    /// Creates a silence, records who did, and applies it at once on this coordinator.
    pub async fn silence(&self, silence: Silence) -> Result<Silence, StoreError> {
        self.store.put_silence(&silence).await?;
        *self.settings.lock().expect("settings lock") = None;
        let until = crate::events::rfc3339(silence.expires_ms);
        let reason = format!("{} silenced {} until {until}: {}", silence.created_by, silence.target(), silence.reason);
        let mut record = EventRecord::new(EventKind::OperatorAction, &silence.node, "", "", reason);
        record.container_name = silence.container.clone().unwrap_or_default();
        record.decided_by = Some(silence.created_by.clone());
        self.log(&record).await?;
        Ok(silence)
    }

    /// Ends the silence `id` before it expires; `None` if there is none.
    pub async fn unsilence(&self, id: &str, admin: &Identity) -> Result<Option<Silence>, StoreError> {
        let Some(removed) = self.store.remove_silence(id).await? else { return Ok(None) };
        *self.settings.lock().expect("settings lock") = None;
        let reason = format!("{} ended the silence of {} ({})", operator(admin), removed.target(), removed.id);
        let mut record = EventRecord::new(EventKind::OperatorAction, &removed.node, "", "", reason);
        record.container_name = removed.container.clone().unwrap_or_default();
        record.decided_by = Some(operator(admin));
        self.log(&record).await?;
        Ok(Some(removed))
    }

    /// The budget limits every container is held to.
    pub fn budget(&self) -> crate::policy::Budget {
        self.config.budget
    }

    /// Whether the fleet is in dry-run now: as an admin set it at runtime, else as configured. The second
    /// value says which (`operator` or `configuration`).
    pub async fn dry_run(&self) -> Result<(bool, &'static str), StoreError> {
        Ok(match self.settings().await?.dry_run {
            Some(enabled) => (enabled, "operator"),
            None => (self.config.dry_run, "configuration"),
        })
    }

    /// Turns dry-run on or off for the fleet, records who did, and returns what it was before.
    pub async fn set_dry_run(&self, enabled: bool, admin: &Identity) -> Result<bool, StoreError> {
        let previous = self.store.dry_run_override().await?.unwrap_or(self.config.dry_run);
        self.store.set_dry_run_override(enabled).await?;
        *self.settings.lock().expect("settings lock") = None;
        let state = if enabled { "on" } else { "off" };
        tracing::warn!(%admin, enabled, "dry-run changed by an admin");
        let reason = format!("{} turned dry-run {state}", operator(admin));
        let mut record = EventRecord::new(EventKind::OperatorAction, "", "", "", reason);
        record.decided_by = Some(operator(admin));
        self.log(&record).await?;
        Ok(previous)
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
        record.arguments = self.arguments(action, &argv);
        record.confidence = Some(1.0);
        self.log(&record).await?;
        let target = Target {
            node: &node,
            container_id: &container.id,
            container_name: &container.name,
            key: container.budget_key(&node),
        };
        // A diagnostic command changes nothing: no budget, no silence or storm holds it (the node's
        // allow-list still decides whether it runs). A forced action skips the policy but counts.
        if force || action == Action::Exec {
            if action != Action::Exec {
                self.store.record_attempt(&target.key, unix_ms(SystemTime::now()), &self.config.budget).await?;
            }
            return match self.send(&target, action, argv, command_id.clone()).await? {
                Ok(()) => Ok(command_id),
                Err(error) => Err(TriggerError::NodeNotConnected(error.to_string())),
            };
        }
        if let Some(reason) = self.policy_hold(&target, action, &command_id).await? {
            return Err(TriggerError::Rejected(reason));
        }
        match self.dispatch(&target, action, argv, command_id.clone()).await? {
            None => Ok(command_id),
            Some(reason) => Err(TriggerError::Rejected(reason)),
        }
    }

    /// Records and returns the reason when a silence or dry-run holds the action back.
    async fn policy_hold(
        &self,
        target: &Target<'_>,
        action: Action,
        command_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let (rejection, reason) = if let Some(silence) = self.silence_for(target.node, target.container_name).await? {
            let until = crate::events::rfc3339(silence.expires_ms);
            (Rejection::Silenced, format!("silenced by {} until {until}: {}", silence.created_by, silence.reason))
        } else if self.dry_run().await?.0 {
            let reason =
                format!("dry run: would {} {}; nothing was done and no budget was used", action.name(), target.key);
            (Rejection::DryRun, reason)
        } else {
            return Ok(None);
        };
        self.reject(target, action, rejection, reason.clone(), command_id.to_owned()).await?;
        Ok(Some(reason))
    }

    /// The arguments an action is sent with, for the event and audit logs.
    fn arguments(&self, action: Action, argv: &[String]) -> Vec<String> {
        match action {
            Action::Restart => vec![format!("stop_timeout={}s", self.config.stop_timeout.as_secs())],
            Action::Exec => argv.to_vec(),
            Action::Cleanup | Action::ScaleUp => Vec::new(),
        }
    }

    /// Notes that the state store failed to record a node's report: the first failure of an outage sends
    /// one `store_unavailable` notification saying why (the log itself cannot be written).
    pub fn store_failed(&self, error: &StoreError) {
        let now = unix_ms(SystemTime::now());
        {
            let mut down_since = self.store_down_since.lock().expect("store outage lock");
            if down_since.is_some() {
                return;
            }
            *down_since = Some(now);
        }
        tracing::error!(%error, "the state store does not answer: nothing is acted on until it does");
        let reason = format!(
            "the state store does not answer ({error}); nothing is acted on until it does, and the nodes keep \
             their reports and send them again"
        );
        let record = EventRecord::new(EventKind::StoreUnavailable, "", "", "", reason);
        self.notifier.notify(EventId { ms: now, seq: 0 }, &record);
    }

    /// Notes that the state store answered; after an outage, records in the log how long it lasted.
    pub async fn store_answered(&self) {
        let Some(since) = self.store_down_since.lock().expect("store outage lock").take() else { return };
        let now = unix_ms(SystemTime::now());
        let reason = format!(
            "the state store did not answer from {} to {} ({}s); nothing was acted on meanwhile, and the nodes' \
             reports were processed once it answered",
            crate::events::rfc3339(since),
            crate::events::rfc3339(now),
            (now - since) / 1000
        );
        tracing::warn!("the state store answers again: resuming");
        let record = EventRecord::new(EventKind::StoreUnavailable, "", "", "", reason);
        if let Err(error) = self.store.append_event(&record, &self.config.event_retention).await {
            tracing::warn!(%error, "could not record the end of the state store's outage");
        }
    }

    /// Completes when this coordinator records its next event (create it before reading, so none is
    /// missed). Events recorded by other coordinators on the same store are found by polling.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.appended.notified()
    }

    /// Records an event that needs no decision.
    pub async fn record(&self, record: EventRecord) -> Result<(), StoreError> {
        self.log(&record).await
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
        self.log(&record).await?;
        Ok(())
    }

    /// Records a decision and, for an action, checks the budget and sends the command.
    async fn act(&self, node: &str, container: &ContainerFacts, verdict: Verdict) -> Result<(), StoreError> {
        let mut decision =
            EventRecord::new(EventKind::FalseAlarm, node, &container.id, &container.name, verdict.reason);
        decision.confidence = Some(verdict.confidence);
        decision.analysis_method = Some(verdict.method.to_owned());
        decision.decided_by = Some(verdict.decided_by);
        decision.evidence = Some(verdict.evidence);
        let Some(action) = verdict.action else {
            self.log(&decision).await?;
            return Ok(());
        };
        let mut needed = EventRecord { kind: EventKind::RemediationNeeded, action: Some(action), ..decision };
        let command_id = new_command_id();
        needed.command_id = Some(command_id.clone());
        needed.arguments = self.arguments(action, &[]);
        self.log(&needed).await?;

        let target = Target {
            node,
            container_id: &container.id,
            container_name: &container.name,
            key: container.budget_key(node),
        };
        if self.policy_hold(&target, action, &command_id).await?.is_some() {
            return Ok(());
        }
        if let Some(ttl) = self.config.approval_ttl {
            let expires_ms = unix_ms(SystemTime::now()) + ttl.as_millis() as u64;
            let approval = PendingApproval {
                node: node.to_owned(),
                container_id: container.id.clone(),
                container_name: container.name.clone(),
                budget_key: target.key.clone(),
                action,
                expires_ms,
            };
            self.store.put_approval(&command_id, &approval).await?;
            let reason = format!(
                "awaiting approval: an admin can approve it with `hemostat approve {command_id}` within {}s",
                ttl.as_secs()
            );
            return self.reject(&target, action, Rejection::AwaitingApproval, reason, command_id).await;
        }
        self.dispatch(&target, action, Vec::new(), command_id).await.map(|_| ())
    }

    /// Ends every storm at an admin's word, and records who said so.
    pub async fn end_storms(&self, admin: &Identity) -> Result<Vec<String>, StoreError> {
        let cleared = self.store.end_storms().await?;
        let reason = format!("automatic actions resumed by {admin}; storms cleared: {}", cleared.join(", "));
        tracing::warn!(%admin, ?cleared, "storm ended by an admin");
        let mut record = EventRecord::new(EventKind::Storm, "", "", "", reason);
        record.decided_by = Some(operator(admin));
        self.log(&record).await?;
        Ok(cleared)
    }

    /// Lets a decision that waits for approval go ahead, through the same policy (storm breaker, cooldown,
    /// circuit breaker), recording the approver.
    pub async fn approve(&self, approval_id: &str, approver: &Identity) -> Result<String, ApprovalError> {
        let approval = self.store.take_approval(approval_id).await?.ok_or(ApprovalError::Unknown)?;
        if unix_ms(SystemTime::now()) > approval.expires_ms {
            return Err(ApprovalError::Expired);
        }
        let target = Target {
            node: &approval.node,
            container_id: &approval.container_id,
            container_name: &approval.container_name,
            key: approval.budget_key.clone(),
        };
        let reason = format!("approved by {approver}");
        let mut record = EventRecord::new(
            EventKind::RemediationNeeded,
            target.node,
            target.container_id,
            target.container_name,
            reason,
        );
        record.action = Some(approval.action);
        record.analysis_method = Some("operator".into());
        record.decided_by = Some(operator(approver));
        record.command_id = Some(approval_id.to_owned());
        self.log(&record).await?;
        match self.dispatch(&target, approval.action, Vec::new(), approval_id.to_owned()).await? {
            None => {
                Ok(format!("sent {} of {} to node {}", approval.action.name(), approval.container_name, approval.node))
            }
            Some(reason) => Err(ApprovalError::Rejected(reason)),
        }
    }

    /// Checks the storm breaker and the budget and sends the command; returns the rejection's reason when
    /// the policy stopped it.
    async fn dispatch(
        &self,
        target: &Target<'_>,
        action: Action,
        argv: Vec<String>,
        command_id: String,
    ) -> Result<Option<String>, StoreError> {
        let (node, key) = (target.node, &target.key);
        let now = unix_ms(SystemTime::now());
        let scopes = ["fleet".to_owned(), format!("node:{node}")];
        if let StormVerdict::Storm { scope, started, members } =
            self.store.note_need(&scopes, key, now, &self.config.storm).await?
        {
            let window = self.config.storm.window.as_secs();
            if started {
                let list = members.iter().map(|m| m.escape_debug().to_string()).collect::<Vec<_>>().join(", ");
                let reason = format!(
                    "storm in {scope}: {} containers needed remediation within {window}s (more than {}); automatic actions \
                     stop until the rate falls: {list}",
                    members.len(),
                    self.config.storm.threshold
                );
                tracing::warn!(%scope, containers = members.len(), "storm: automatic actions stopped");
                let mut record =
                    EventRecord::new(EventKind::Storm, node, target.container_id, target.container_name, reason);
                record.action = Some(action);
                self.log(&record).await?;
            }
            let reason =
                format!("storm in {scope}: too many containers need remediation at once; not acting automatically");
            self.reject(target, action, Rejection::Storm, reason.clone(), command_id).await?;
            return Ok(Some(reason));
        }
        let verdict = self.store.try_begin_action(key, now, &self.config.budget).await?;
        let rejection = match verdict {
            BudgetVerdict::Allowed { attempts_in_window } => {
                tracing::info!(node, container = %target.container_name, ?action, attempts_in_window, "remediating");
                self.episodes.lock().expect("episodes lock").remove(key);
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
                    "circuit open: {key} reached {} attempts in the last hour or {} failed verifications in a row; \
                     next attempt possible in {}s",
                    self.config.budget.max_attempts,
                    self.config.budget.max_attempts,
                    retry_after.as_secs().max(1)
                ),
            )),
        };
        if let Some((rejection, reason)) = rejection {
            self.reject(target, action, rejection, reason.clone(), command_id).await?;
            return Ok(Some(reason));
        }

        if let Err(error) = self.send(target, action, argv, command_id.clone()).await? {
            let reason = format!("{error} any more; the command was not sent");
            self.reject(target, action, Rejection::NodeDisconnected, reason.clone(), command_id).await?;
            return Ok(Some(reason));
        }
        Ok(None)
    }

    /// Hands the command to the node's session and remembers it until the node reports on it; for a node
    /// connected to another coordinator, routes it there through the store.
    async fn send(
        &self,
        target: &Target<'_>,
        action: Action,
        argv: Vec<String>,
        command_id: String,
    ) -> Result<Result<(), crate::registry::NodeNotConnected>, StoreError> {
        let routed = RoutedCommand {
            node: target.node.to_owned(),
            command_id,
            container_id: target.container_id.to_owned(),
            container_name: target.container_name.to_owned(),
            action,
            stop_timeout_secs: self.config.stop_timeout.as_secs() as u32,
            argv,
            budget_key: target.key.clone(),
        };
        let Err(not_here) = self.hand_to_node(routed.clone()) else { return Ok(Ok(())) };
        if let Some(directory) = &self.directory
            && let Some(owner) = directory.owner(target.node).await?
        {
            tracing::info!(node = target.node, coordinator = %owner, command_id = %routed.command_id, "routing a command to the node's coordinator");
            self.store.route_command(&owner, &routed.encode()).await?;
            return Ok(Ok(()));
        }
        Ok(Err(not_here))
    }

    /// Gives a command to a node connected here, remembering it until the node reports on it.
    fn hand_to_node(&self, routed: RoutedCommand) -> Result<(), crate::registry::NodeNotConnected> {
        let RoutedCommand {
            node,
            command_id,
            container_id,
            container_name,
            action,
            stop_timeout_secs,
            argv,
            budget_key,
        } = routed;
        self.pending
            .lock()
            .expect("pending lock")
            .insert(command_id.clone(), Pending { container_name: container_name.clone(), action, budget_key });
        let command = Command { id: command_id.clone(), container_id, container_name, action, stop_timeout_secs, argv };
        let sent = self.registry.send(&node, Outbound::Command(command));
        if sent.is_err() {
            self.pending.lock().expect("pending lock").remove(&command_id);
        }
        sent
    }

    /// Takes one command another coordinator routed to this one (instance `instance`) and hands it to its
    /// node; returns whether there was one.
    pub async fn take_routed(&self, instance: &str) -> Result<bool, StoreError> {
        let Some(raw) = self.store.take_routed_command(instance).await? else { return Ok(false) };
        let routed = RoutedCommand::decode(&raw)?;
        tracing::info!(node = %routed.node, command_id = %routed.command_id, "a command routed from another coordinator");
        if let Err(error) = self.hand_to_node(routed.clone()) {
            let reason = format!("{error} to this coordinator any more; the routed command was not sent");
            let mut record = EventRecord::new(
                EventKind::Rejected,
                &routed.node,
                &routed.container_id,
                &routed.container_name,
                reason,
            );
            record.action = Some(routed.action);
            record.rejection = Some(Rejection::NodeDisconnected);
            record.command_id = Some(routed.command_id);
            self.log(&record).await?;
        }
        Ok(true)
    }

    /// Records a rejection, unless the same rejection of the same container was already recorded in this
    /// episode (since its last allowed action): one event per episode, not one per alert.
    async fn reject(
        &self,
        target: &Target<'_>,
        action: Action,
        rejection: Rejection,
        reason: String,
        command_id: String,
    ) -> Result<(), StoreError> {
        let repeated =
            self.episodes.lock().expect("episodes lock").insert(target.key.clone(), rejection) == Some(rejection);
        if repeated {
            tracing::debug!(node = target.node, container = %target.container_name, code = rejection.code(), "rejected again in the same episode");
            return Ok(());
        }
        tracing::info!(node = target.node, container = %target.container_name, reason = %reason, "action rejected");
        let mut record =
            EventRecord::new(EventKind::Rejected, target.node, target.container_id, target.container_name, reason);
        record.action = Some(action);
        record.rejection = Some(rejection);
        record.command_id = Some(command_id);
        self.log(&record).await?;
        Ok(())
    }

    /// Handles a node's report on a command.
    pub async fn on_command_result(&self, node: &str, report: CommandReport) -> Result<(), StoreError> {
        let pending = self.pending.lock().expect("pending lock").remove(&report.command_id);
        let (name, action) = match &pending {
            Some(p) => (p.container_name.as_str(), Some(p.action)),
            None => ("", None),
        };
        if let Some(p) = &pending
            && matches!(report.outcome, Outcome::Success | Outcome::Failed)
        {
            let now = unix_ms(SystemTime::now());
            self.store
                .record_outcome(&p.budget_key, report.outcome == Outcome::Success, now, &self.config.budget)
                .await?;
        }
        tracing::info!(
            node,
            container = name,
            command_id = %report.command_id,
            outcome = ?report.outcome,
            duration = ?report.duration,
            detail = %report.detail,
            "command finished"
        );
        let mut record =
            EventRecord::new(EventKind::RemediationComplete, node, &report.container_id, name, report.detail);
        record.outcome = Some(report.outcome);
        record.action = action;
        record.output = (!report.output.is_empty()).then_some(report.output);
        record.duration_ms = Some(report.duration.as_millis() as u64);
        record.command_id = Some(report.command_id);
        self.log(&record).await?;
        Ok(())
    }
}

/// How an operator is named in `decided_by` and silences: `operator:<name from the certificate>`.
pub fn operator(identity: &Identity) -> String {
    format!("operator:{}", identity.name)
}

/// A new random command id (128 bits, hex).
fn new_command_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
