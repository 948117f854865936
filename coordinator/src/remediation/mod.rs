//! Remediation: from a node's report to a recorded decision and, when the policy allows, a command.
//!
//! One concern per module, composed by [`Remediator`]:
//! - [`journal`]: the one append path (event log, audit log, notification, instruments, live readers) and
//!   the one way to read the log back (a bounded scan, a live tail);
//! - [`settings`]: silences and dry-run, read through a one-second cache;
//! - [`pipeline`]: alert → exit assessment → `health_alert` → analysis → decision; a condition's episode
//!   evaluated again on each metrics sample, decided once;
//! - [`dispatch`]: storm breaker → budget → send, with a typed outcome, rejections recorded once per episode;
//! - [`node_commands`]: commands in flight until their result, and routing to other coordinators' nodes;
//! - [`manual`]: an admin's manual actions and approvals;
//! - [`dependents`]: after a verified restart, the containers depending on it restarted in order;
//! - [`outage`]: what people are told when the state store stops answering, and when it answers again.
//!
//! Nothing is sent to a node unless the store has recorded it first: with the store down, nothing is acted on.

pub mod dependents;
pub mod dispatch;
pub mod journal;
pub mod labels;
pub mod manual;
pub mod node_commands;
pub mod outage;
pub mod pipeline;
pub mod quarantine;
pub mod settings;
pub mod storm;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hemostat_pki::Identity;

use crate::alerting::Notifier;
use crate::analysis::Analyzer;
use crate::container::{AlertReport, Anomaly, AnomalyKind, ContainerFacts, HostReport, Metrics, Severity};
use crate::container_policy::{PolicyDefaults, SettingOrigins};
use crate::directory::Directory;
use crate::events::{AuditRetention, EventKind, EventRecord, EventRetention, Rejection};
use crate::instruments::CoordinatorInstruments;
use crate::policy::{Backoff, Budget};
use crate::registry::Registry;
use crate::store::{StateStore, StoreError, StormConfig};
use dependents::Dependents;
use dispatch::Dispatcher;
use journal::Journal;
use labels::LabelWarnings;
use manual::ManualActions;
use node_commands::NodeCommands;
use outage::StoreOutage;
use pipeline::Pipeline;
use settings::Settings;

pub use manual::{ApprovalError, ManualAction, TriggerError};
pub use node_commands::CommandReport;

/// The remediation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemediationConfig {
    /// Cooldown and breaker limits per container.
    pub budget: Budget,
    /// How long a restart waits for a graceful stop.
    pub stop_timeout: Duration,
    /// The backoff curve a container's `hemostat.restart_policy=backoff` chooses (the settings' curve, also
    /// when the fleet's policy is `cooldown`).
    pub backoff: Backoff,
    /// Where the settings a container's labels can override came from (for `hemostat container`).
    pub origins: SettingOrigins,
    /// `RESPONDER_QUARANTINE_RELEASE_SECONDS`: a quarantined container running healthy this long is
    /// released ([`quarantine`]); `None` (0): only by hand.
    pub quarantine_release: Option<Duration>,
    /// `RESPONDER_DRY_RUN`: record what would be done, do nothing, use no budget.
    pub dry_run: bool,
    /// The storm breaker's limits: its window, and the per-node threshold.
    pub storm: StormConfig,
    /// The storm breaker's fleet-wide threshold, relative to the containers watched.
    pub fleet_storm: storm::FleetStorm,
    /// `RESPONDER_REQUIRE_APPROVAL`: decisions wait this long for an admin's approval; `None` acts at once.
    pub approval_ttl: Option<Duration>,
    /// `RESPONDER_AUDIT_RETENTION_SECONDS`, `RESPONDER_AUDIT_MAX_ENTRIES`: how long the audit log keeps
    /// records (7 days), and how many at most (100,000).
    pub audit_retention: AuditRetention,
    /// `ALERT_MAX_EVENTS`, `ALERT_EVENT_TTL`: how long the event log keeps events.
    pub event_retention: EventRetention,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            budget: Budget::DEFAULT,
            stop_timeout: Duration::from_secs(10),
            backoff: Backoff::DEFAULT,
            origins: SettingOrigins::default(),
            quarantine_release: Some(Duration::from_secs(3600)),
            dry_run: false,
            storm: StormConfig::default(),
            fleet_storm: storm::FleetStorm::default(),
            approval_ttl: None,
            audit_retention: AuditRetention::default(),
            event_retention: EventRetention::default(),
        }
    }
}

/// The container an action is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its labels (they may set its policy: [`crate::container_policy`]).
    pub labels: BTreeMap<String, String>,
    /// The node it runs on.
    pub node: String,
    /// Its id.
    pub container_id: String,
    /// Its name.
    pub container_name: String,
    /// Its budget key.
    pub key: String,
}

impl Target {
    /// The host of `node` itself, for what concerns no one container (a cleanup of its disk): no container
    /// id or name, its own budget key, `<node>/host`.
    pub fn host(node: &str) -> Self {
        Target {
            labels: BTreeMap::new(),
            node: node.to_owned(),
            container_id: String::new(),
            container_name: String::new(),
            key: format!("{node}/host"),
        }
    }

    /// The container `container` on `node`.
    pub fn of(node: &str, container: &ContainerFacts) -> Self {
        Target {
            labels: container.labels.clone(),
            node: node.to_owned(),
            container_id: container.id.clone(),
            container_name: container.name.clone(),
            key: container.budget_key(node),
        }
    }
}

/// Why the policy stopped an action: the rejection's code and its reason, for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// The rejection code recorded.
    pub rejection: Rejection,
    /// Why, in words.
    pub reason: String,
}

/// How an operator is named in `decided_by` and silences: `operator:<name from the certificate>`.
pub fn operator(identity: &Identity) -> String {
    format!("operator:{}", identity.name)
}

/// Turns reports into decisions, policy checks, commands and events: the parts above, wired together.
pub struct Remediator {
    config: RemediationConfig,
    journal: Arc<Journal>,
    settings: Arc<Settings>,
    pipeline: Arc<Pipeline>,
    dispatcher: Arc<Dispatcher>,
    commands: Arc<NodeCommands>,
    manual: ManualActions,
    outage: StoreOutage,
    dependents: Dependents,
    labels: LabelWarnings,
}

/// What a [`Remediator`] is built from, beyond the store, registry, analyzer and settings.
pub struct RemediatorBuilder {
    store: Arc<dyn StateStore>,
    registry: Arc<Registry>,
    analyzer: Analyzer,
    config: RemediationConfig,
    directory: Option<Arc<Directory>>,
    notifier: Notifier,
    instruments: Arc<CoordinatorInstruments>,
}

impl RemediatorBuilder {
    /// Routes commands for nodes connected to other coordinators through `directory`.
    pub fn directory(mut self, directory: Arc<Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Sends notifications of the events it records through `notifier`.
    pub fn notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Counts the events it records in `instruments` (the coordinator's, served on its metrics port).
    pub fn instruments(mut self, instruments: Arc<CoordinatorInstruments>) -> Self {
        self.instruments = instruments;
        self
    }

    /// Wires the parts together.
    pub fn build(self) -> Remediator {
        let RemediatorBuilder { store, registry, analyzer, config, directory, notifier, instruments } = self;
        let settings = Arc::new(Settings::new(store.clone(), config.dry_run));
        let journal = Arc::new(Journal::new(
            store.clone(),
            settings.clone(),
            notifier,
            instruments,
            config.event_retention,
            config.audit_retention,
        ));
        let policy = PolicyDefaults {
            budget: config.budget,
            backoff: config.backoff,
            stop_timeout: config.stop_timeout,
            sustain: analyzer.config().patterns.sustain,
            origins: config.origins,
        };
        let mut commands = NodeCommands::new(registry.clone(), store.clone(), store.clone(), journal.clone(), policy);
        if let Some(directory) = directory {
            commands = commands.with_directory(directory);
        }
        let commands = Arc::new(commands);
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            journal.clone(),
            settings.clone(),
            commands.clone(),
            policy,
            config.storm,
            config.fleet_storm,
        ));
        let pipeline = Arc::new(Pipeline::new(
            analyzer,
            store.clone(),
            store.clone(),
            journal.clone(),
            dispatcher.clone(),
            commands.clone(),
            registry.clone(),
            config.approval_ttl,
        ));
        let dependents =
            Dependents::new(registry, journal.clone(), dispatcher.clone(), store.clone(), config.approval_ttl);
        let manual = ManualActions::new(store, journal.clone(), dispatcher.clone(), commands.clone());
        let outage = StoreOutage::new(journal.clone());
        let labels = LabelWarnings::new(journal.clone(), policy);
        Remediator { config, journal, settings, pipeline, dispatcher, commands, manual, outage, dependents, labels }
    }
}

impl Remediator {
    /// A remediator deciding with `analyzer`, recording in `store` and reaching nodes through `registry`:
    /// no notifications, no other coordinators, instruments of its own.
    pub fn new(
        store: Arc<dyn StateStore>,
        registry: Arc<Registry>,
        analyzer: Analyzer,
        config: RemediationConfig,
    ) -> Self {
        Self::builder(store, registry, analyzer, config).build()
    }

    /// A builder for a remediator with a directory, a notifier or instruments.
    pub fn builder(
        store: Arc<dyn StateStore>,
        registry: Arc<Registry>,
        analyzer: Analyzer,
        config: RemediationConfig,
    ) -> RemediatorBuilder {
        RemediatorBuilder {
            store,
            registry,
            analyzer,
            config,
            directory: None,
            notifier: Notifier::disabled(),
            instruments: Arc::new(CoordinatorInstruments::new()),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &RemediationConfig {
        &self.config
    }

    /// The event and audit logs.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Silences and dry-run.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// The storm breaker, budgets and sending.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Commands to nodes, and routing to other coordinators.
    pub fn commands(&self) -> &Arc<NodeCommands> {
        &self.commands
    }

    /// Admins' manual actions and approvals.
    pub fn manual(&self) -> &ManualActions {
        &self.manual
    }

    /// Releases each quarantined container that has been running healthy for
    /// `RESPONDER_QUARANTINE_RELEASE_SECONDS`, every second until `stop` (see [`quarantine`]); returns at
    /// once when only an admin releases them.
    pub async fn release_recovered(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(after) = self.config.quarantine_release else { return };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let now = std::time::SystemTime::now();
            if let Err(error) =
                quarantine::release_recovered(&self.dispatcher, &self.commands, &self.journal, after, now).await
            {
                tracing::warn!(%error, "could not release the quarantined containers that recovered; will retry");
            }
        }
    }

    /// Tells, once each, of the policy labels of `containers` (reported by `node`) whose values are not
    /// valid (see [`labels`]).
    pub async fn check_labels(&self, node: &str, containers: &[ContainerFacts]) -> Result<(), StoreError> {
        self.labels.check(node, containers).await
    }

    /// Handles a node's health alert (see [`pipeline`]).
    pub async fn on_alert(&self, node: &str, alert: AlertReport) -> Result<(), StoreError> {
        self.pipeline.on_alert(node, alert).await
    }

    /// Takes over the exits of `node` another coordinator left waiting for analysis, and decides them (see
    /// [`pipeline`]); returns how many.
    pub async fn resume_analyses(&self, node: &str) -> Result<usize, StoreError> {
        self.pipeline.resume_analyses(node).await
    }

    /// Handles a node's report of a condition of its host itself (its disk running out of space).
    pub async fn on_host_alert(&self, node: &str, report: HostReport) -> Result<(), StoreError> {
        self.pipeline.on_host_alert(node, report).await
    }

    /// Handles a poll's samples of a node's containers: their running episodes are evaluated again (see
    /// [`pipeline`]).
    pub async fn on_metrics(&self, node: &str, samples: &[(String, Metrics)]) -> Result<(), StoreError> {
        self.pipeline.on_metrics(node, samples).await
    }

    /// Handles a node's report on a command, then restarts the dependents of a verified restart (see
    /// [`dependents`]).
    pub async fn on_command_result(&self, node: &str, report: CommandReport) -> Result<(), StoreError> {
        if self.commands.on_result(node, report.clone()).await? {
            self.dependents.after_result(node, &report).await?;
        }
        Ok(())
    }

    /// Records that a container's standing anomalies cleared, and ends its episode when none is left.
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
        self.journal.append(&record).await?;
        self.pipeline.on_cleared(node, container, cleared).await
    }

    /// Records an event that needs no decision.
    pub async fn record(&self, record: EventRecord) -> Result<(), StoreError> {
        self.journal.append(&record).await.map(|_| ())
    }

    /// Notes that the state store failed to record a node's report (see [`outage`]).
    pub fn store_failed(&self, error: &StoreError) {
        self.outage.store_failed(error);
    }

    /// Notes that the state store answered (see [`outage`]).
    pub async fn store_answered(&self) {
        self.outage.store_answered().await;
    }
}
