//! Commands to nodes, from sending to their result: a command goes to the node's session on this
//! coordinator or, for a node connected to another coordinator of the fleet, is queued in the shared store
//! for that one ([`crate::routing`]); it is remembered until the node reports on it, when its verified result
//! counts in the container's budget and becomes `remediation_complete`.
//!
//! A command may carry a fallback: an analyzer's `scale_up` that does not succeed (the service is at its
//! replica cap, the container is not part of a service the node can scale, the node failed) is followed by a
//! restart of the same container, recorded as its own `remediation_needed` that names the result it
//! replaces. The fallback is part of the same decision: the budget was charged when the `scale_up` was
//! allowed, so the restart is not held to it again (a `scale_up` that changed nothing must not leave the busy
//! container alone for a whole cooldown); its verified result counts in the budget like any other.
//!
//! A result is accepted only from the node the command was sent to, and only once: a result for a command
//! this coordinator did not send to that node (never sent, sent to another node, or already answered) is
//! refused, recorded as `input_refused` and logged, and touches no budget.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hemostat_proto::v1 as pb;
use tokio::sync::watch;

use super::Target;
use super::journal::Journal;
use crate::bounded::BoundedMap;
use crate::container::{ContainerFacts, Health, Status};
use crate::container_policy::PolicyDefaults;
use crate::directory::Directory;
use crate::events::{Action, EventKind, EventRecord, Outcome, Rejection, unix_ms};
use crate::registry::{Command, NodeNotConnected, Outbound, Registry};
use crate::routing::{POLL_INTERVAL, RoutedCommand};
use crate::store::{BudgetStore, DirectoryStore, StoreError};

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
    /// After a verified restart: the containers (ids) to restart after it, in order.
    pub dependents: Vec<String>,
}

impl CommandReport {
    /// From the wire.
    pub fn from_proto(result: pb::CommandResult) -> Self {
        CommandReport {
            outcome: Outcome::from(result.outcome()),
            duration: Duration::from_millis(result.duration_ms),
            command_id: result.command_id,
            container_id: result.container_id,
            detail: result.detail,
            output: result.output,
            dependents: result.dependents,
        }
    }
}

/// Where a command went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// To the node's session on this coordinator.
    Here,
    /// Queued for the coordinator instance that holds the node's session.
    Routed {
        /// That coordinator's instance id.
        coordinator: String,
    },
}

/// A command sent and not yet answered.
struct Pending {
    /// The node it was sent to: the only one whose result counts.
    node: String,
    container_id: String,
    container_name: String,
    action: Action,
    budget_key: String,
    /// What to do instead if it does not succeed.
    fallback: Option<Action>,
}

/// Commands awaiting their result remembered at most; beyond it the oldest is forgotten.
pub const PENDING_KEPT: usize = 10_000;

/// A new random command id (128 bits, hex).
pub fn new_command_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The commands this coordinator sent, and the way to nodes connected elsewhere.
pub struct NodeCommands {
    registry: Arc<Registry>,
    /// Where the nodes connected to other coordinators are; `None`: this coordinator alone.
    directory: Option<Arc<Directory>>,
    routes: Arc<dyn DirectoryStore>,
    budgets: Arc<dyn BudgetStore>,
    journal: Arc<Journal>,
    /// The settings each container's budget and stop timeout start from (its labels override them).
    policy: PolicyDefaults,
    /// By command id, at most [`PENDING_KEPT`] (a node that never answers cannot grow it).
    pending: Mutex<BoundedMap<String, Pending>>,
    /// The fallbacks of decisions not sent yet, by command id (at most [`PENDING_KEPT`]).
    fallbacks: Mutex<BoundedMap<String, Action>>,
}

impl NodeCommands {
    /// Commands sent through `registry` (and `routes` for other coordinators' nodes), their results
    /// counted in `budgets` with each container's budget under `policy` and recorded in `journal`.
    pub fn new(
        registry: Arc<Registry>,
        routes: Arc<dyn DirectoryStore>,
        budgets: Arc<dyn BudgetStore>,
        journal: Arc<Journal>,
        policy: PolicyDefaults,
    ) -> Self {
        NodeCommands {
            registry,
            directory: None,
            routes,
            budgets,
            journal,
            policy,
            pending: Mutex::new(BoundedMap::new(PENDING_KEPT)),
            fallbacks: Mutex::new(BoundedMap::new(PENDING_KEPT)),
        }
    }

    /// Routes commands for nodes connected to other coordinators through `directory`.
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The containers this coordinator's nodes watch (the base of the fleet-wide storm threshold).
    pub fn watched_containers(&self) -> usize {
        self.registry.container_count()
    }

    /// Whether `target` still needs an action as far as this coordinator knows: not running, or unhealthy
    /// (a container of a node connected elsewhere, not in this registry, is taken to need it).
    pub fn still_failing(&self, target: &Target) -> bool {
        self.registry
            .container(&target.node, &target.container_id)
            .is_none_or(|entry| entry.facts.status != Status::Running || entry.facts.health == Health::Unhealthy)
    }

    /// The labels of the container `container_id` of `node`, as this coordinator last heard (none when it
    /// does not know it).
    pub fn labels_of(&self, node: &str, container_id: &str) -> BTreeMap<String, String> {
        self.facts_of(node, container_id).map(|facts| facts.labels).unwrap_or_default()
    }

    /// What the node `node` last reported of its container `container_id`, if this coordinator holds it.
    pub fn facts_of(&self, node: &str, container_id: &str) -> Option<ContainerFacts> {
        self.registry.container(node, container_id).map(|entry| entry.facts)
    }

    /// How long a restart of a container with `labels` waits for a graceful stop (`hemostat.stop_timeout`,
    /// else `RESPONDER_STOP_TIMEOUT_SECONDS`).
    fn stop_timeout(&self, labels: &BTreeMap<String, String>) -> Duration {
        self.policy.effective(labels).stop_timeout.value
    }

    /// The arguments an action on a container with `labels` is sent with, for the event and audit logs.
    pub fn arguments(&self, action: Action, argv: &[String], labels: &BTreeMap<String, String>) -> Vec<String> {
        match action {
            Action::Restart => vec![format!("stop_timeout={}s", self.stop_timeout(labels).as_secs())],
            Action::Exec => argv.to_vec(),
            Action::Cleanup | Action::ScaleUp => Vec::new(),
        }
    }

    /// Asks that the command `command_id`, when it is sent and does not succeed, be followed by `fallback` on
    /// the same container (see the module docs).
    pub fn fall_back(&self, command_id: &str, fallback: Action) {
        self.fallbacks.lock().expect("fallbacks lock").insert(command_id.to_owned(), fallback);
    }

    /// Hands the command to the node's session and remembers it until the node reports on it; for a node
    /// connected to another coordinator, routes it there through the store.
    pub async fn send(
        &self,
        target: &Target,
        action: Action,
        argv: Vec<String>,
        command_id: String,
    ) -> Result<Result<Delivery, NodeNotConnected>, StoreError> {
        let routed = RoutedCommand {
            node: target.node.clone(),
            command_id: command_id.clone(),
            container_id: target.container_id.clone(),
            container_name: target.container_name.clone(),
            action,
            stop_timeout_secs: self.stop_timeout(&target.labels).as_secs() as u32,
            argv,
            budget_key: target.key.clone(),
            fallback: self.fallbacks.lock().expect("fallbacks lock").remove(&command_id),
        };
        let Err(not_here) = self.hand_to_node(routed.clone()) else { return Ok(Ok(Delivery::Here)) };
        if let Some(directory) = &self.directory
            && let Some(owner) = directory.owner(&target.node).await?
        {
            tracing::info!(node = %target.node, coordinator = %owner, command_id = ?routed.command_id, "routing a command to the node's coordinator");
            self.routes.route_command(&owner, &routed.encode()).await?;
            return Ok(Ok(Delivery::Routed { coordinator: owner }));
        }
        Ok(Err(not_here))
    }

    /// Gives a command to a node connected here, remembering it until the node reports on it.
    fn hand_to_node(&self, routed: RoutedCommand) -> Result<(), NodeNotConnected> {
        let RoutedCommand {
            node,
            command_id,
            container_id,
            container_name,
            action,
            stop_timeout_secs,
            argv,
            budget_key,
            fallback,
        } = routed;
        let pending = Pending {
            node: node.clone(),
            container_id: container_id.clone(),
            container_name: container_name.clone(),
            action,
            budget_key,
            fallback,
        };
        self.remember(&command_id, pending);
        let command = Command { id: command_id.clone(), container_id, container_name, action, stop_timeout_secs, argv };
        let sent = self.registry.send(&node, Outbound::Command(command));
        if sent.is_err() {
            self.pending.lock().expect("pending lock").remove(&command_id);
        }
        sent
    }

    /// Remembers a command whose result `node` will report for `container` (one it ran on its own).
    pub fn expect_result(&self, node: &str, command_id: &str, container: &ContainerFacts, action: Action, key: String) {
        let pending = Pending {
            node: node.to_owned(),
            container_id: container.id.clone(),
            container_name: container.name.clone(),
            action,
            budget_key: key,
            fallback: None,
        };
        self.remember(command_id, pending);
    }

    fn remember(&self, command_id: &str, pending: Pending) {
        if let Some((forgotten, _)) = self.pending.lock().expect("pending lock").insert(command_id.to_owned(), pending)
        {
            tracing::warn!(command_id = %forgotten, "forgot the oldest command never answered: {PENDING_KEPT} are waiting");
        }
    }

    /// Takes one command another coordinator routed to this one (instance `instance`) and hands it to its
    /// node; returns whether there was one.
    pub async fn take_routed(&self, instance: &str) -> Result<bool, StoreError> {
        let Some(raw) = self.routes.take_routed_command(instance).await? else { return Ok(false) };
        let routed = RoutedCommand::decode(&raw)?;
        tracing::info!(node = %routed.node, command_id = ?routed.command_id, "a command routed from another coordinator");
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
            self.journal.append(&record).await?;
        }
        Ok(true)
    }

    /// Takes the commands routed to this coordinator (instance `instance`) every [`POLL_INTERVAL`] and hands
    /// them to its nodes, until `stop` turns true.
    pub async fn serve_routed(self: Arc<Self>, instance: String, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            loop {
                match self.take_routed(&instance).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        failing = false;
                        break;
                    }
                    Err(error) => {
                        // Once per outage: the store's own failure is reported where reports are recorded.
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(%error, "could not take the commands routed to this coordinator");
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Handles a node's report on a command: a verified result counts in the container's budget, and the
    /// report becomes `remediation_complete`.
    /// A result for a command not sent to `node`, or already answered, is refused instead. Returns whether
    /// it was accepted.
    pub async fn on_result(&self, node: &str, report: CommandReport) -> Result<bool, StoreError> {
        let pending = {
            let mut pending = self.pending.lock().expect("pending lock");
            match pending.get(&report.command_id) {
                Some(p) if p.node == node => pending.remove(&report.command_id).ok_or(None),
                Some(p) => Err(Some(p.node.clone())),
                None => Err(None),
            }
        };
        let p = match pending {
            Ok(p) => p,
            Err(sent_to) => return self.refuse_result(node, &report, sent_to).await.map(|()| false),
        };
        let (name, action) = (p.container_name.as_str(), Some(p.action));
        if matches!(report.outcome, Outcome::Success | Outcome::Failed) {
            let now = unix_ms(SystemTime::now());
            let labels =
                self.registry.container_named(node, &p.container_name).map(|e| e.facts.labels).unwrap_or_default();
            let budget = self.policy.effective(&labels).budget();
            self.budgets.record_outcome(&p.budget_key, report.outcome == Outcome::Success, now, &budget).await?;
        }
        tracing::info!(
            node,
            container = name,
            command_id = ?report.command_id,
            outcome = ?report.outcome,
            duration = ?report.duration,
            detail = ?report.detail,
            "command finished"
        );
        let mut record =
            EventRecord::new(EventKind::RemediationComplete, node, &report.container_id, name, report.detail.clone());
        record.outcome = Some(report.outcome);
        record.action = action;
        record.output = (!report.output.is_empty()).then(|| report.output.clone());
        record.duration_ms = Some(report.duration.as_millis() as u64);
        record.command_id = Some(report.command_id.clone());
        self.journal.append(&record).await?;
        if let Some(fallback) = p.fallback.filter(|_| report.outcome != Outcome::Success) {
            self.fall_back_now(node, &p, fallback, &report).await?;
        }
        Ok(true)
    }

    /// Sends `fallback` for the container of `failed`, whose command did not succeed (see the module docs).
    async fn fall_back_now(
        &self,
        node: &str,
        failed: &Pending,
        fallback: Action,
        report: &CommandReport,
    ) -> Result<(), StoreError> {
        let target = Target {
            labels: self.labels_of(node, &failed.container_id),
            node: node.to_owned(),
            container_id: failed.container_id.clone(),
            container_name: failed.container_name.clone(),
            key: failed.budget_key.clone(),
        };
        let command_id = new_command_id();
        let reason = format!(
            "{} was {}: {}; {} instead, as the same decision's fallback",
            failed.action.name(),
            report.outcome.name(),
            report.detail,
            match fallback {
                Action::Restart => "restarting it",
                other => other.name(),
            }
        );
        tracing::info!(node, container = ?target.container_name, action = ?failed.action, ?fallback, "falling back");
        let mut record =
            EventRecord::new(EventKind::RemediationNeeded, node, &target.container_id, &target.container_name, reason);
        record.action = Some(fallback);
        record.analysis_method = Some("fallback".into());
        record.decided_by = Some(format!("{}_fallback", failed.action.name()));
        record.command_id = Some(command_id.clone());
        record.arguments = self.arguments(fallback, &[], &target.labels);
        self.journal.append(&record).await?;
        if let Err(error) = self.send(&target, fallback, Vec::new(), command_id.clone()).await? {
            let mut record = EventRecord::new(
                EventKind::Rejected,
                node,
                &target.container_id,
                &target.container_name,
                format!("{error} any more; the fallback was not sent"),
            );
            record.action = Some(fallback);
            record.rejection = Some(Rejection::NodeDisconnected);
            record.command_id = Some(command_id);
            self.journal.append(&record).await?;
        }
        Ok(())
    }

    /// Records a result refused: for a command sent to another node (`sent_to`), or to none this coordinator
    /// awaits a result of.
    async fn refuse_result(
        &self,
        node: &str,
        report: &CommandReport,
        sent_to: Option<String>,
    ) -> Result<(), StoreError> {
        let why = match &sent_to {
            Some(other) => format!("the command was sent to node {other:?}, not to {node:?}"),
            None => format!(
                "this coordinator sent node {node:?} no command with that id awaiting a result (never sent, \
                 already answered, or sent by a coordinator that has since stopped)"
            ),
        };
        tracing::warn!(
            node,
            command_id = %report.command_id.escape_debug(),
            container_id = %report.container_id.escape_debug(),
            outcome = ?report.outcome,
            sent_to = ?sent_to,
            "refused a command result: {why}"
        );
        let reason = format!(
            "refused a {} result for command {:?}: {why}; no budget was changed",
            report.outcome.name(),
            report.command_id
        );
        let mut record = EventRecord::new(EventKind::InputRefused, node, &report.container_id, "", reason);
        record.command_id = Some(report.command_id.clone());
        self.journal.append(&record).await?;
        Ok(())
    }
}
