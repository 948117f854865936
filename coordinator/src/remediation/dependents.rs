//! Dependents: after a container is healed (a verified restart), the containers its node named as depending
//! on it (sharing its network namespace, or labelled `hemostat.depends_on=<its name>`) are restarted after
//! it, one after another: the next when the node reports on the one before. Each goes through the policy
//! as its own decision (silences, dry-run, approvals when required, the storm breaker, and its own budget);
//! one the policy stops is recorded as `rejected` and the next follows; one parked for approval holds the
//! rest of the chain until it is approved and its result arrives. A dependent's own verified restart names its own
//! dependents, which come next (a chain), and no container is restarted twice in one chain.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dispatch::{DispatchOutcome, Dispatcher};
use super::node_commands::new_command_id;
use super::{CommandReport, Target};
use crate::bounded::BoundedMap;
use crate::events::{Action, EventKind, EventRecord, Outcome};
use crate::registry::Registry;
use crate::store::{SettingsStore, StoreError};

use super::journal::Journal;
use super::manual::park_for_approval;

/// The label naming the containers a container is restarted after (as the node reads it).
pub const DEPENDS_ON_LABEL: &str = "hemostat.depends_on";
/// Chains waiting for a dependent's result, at most (a node that never answers cannot grow it).
const CHAINS_KEPT: usize = 10_000;

/// One dependent waiting its turn, and the container it is restarted after.
#[derive(Clone, Debug)]
struct Queued {
    container_id: String,
    after: String,
}

/// The rest of a chain of dependents, waiting for the result of the one sent.
#[derive(Debug, Default)]
struct Chain {
    queue: VecDeque<Queued>,
    /// Every container of the chain so far, the healed one included.
    seen: HashSet<String>,
}

/// Restarts the dependents of healed containers, in order.
pub struct Dependents {
    registry: Arc<Registry>,
    journal: Arc<Journal>,
    dispatcher: Arc<Dispatcher>,
    approvals: Arc<dyn SettingsStore>,
    /// `RESPONDER_REQUIRE_APPROVAL`: each dependent's restart waits this long for an admin.
    approval_ttl: Option<Duration>,
    /// By the command id of the dependent's restart in flight (or awaiting approval).
    chains: Mutex<BoundedMap<String, Chain>>,
}

impl Dependents {
    /// Dependents found in `registry`, their decisions recorded in `journal` and sent by `dispatcher`, parked
    /// in `approvals` for `approval_ttl` when approvals are required.
    pub fn new(
        registry: Arc<Registry>,
        journal: Arc<Journal>,
        dispatcher: Arc<Dispatcher>,
        approvals: Arc<dyn SettingsStore>,
        approval_ttl: Option<Duration>,
    ) -> Self {
        let chains = Mutex::new(BoundedMap::new(CHAINS_KEPT));
        Dependents { registry, journal, dispatcher, approvals, approval_ttl, chains }
    }

    /// After `node`'s accepted result `report`: continues the chain the command belonged to, with the
    /// container's own dependents first when its restart was verified.
    pub async fn after_result(&self, node: &str, report: &CommandReport) -> Result<(), StoreError> {
        let chain = self.chains.lock().expect("chains lock").remove(&report.command_id);
        let mut chain = match chain {
            Some(chain) => chain,
            None if report.outcome == Outcome::Success && !report.dependents.is_empty() => {
                Chain { queue: VecDeque::new(), seen: HashSet::from([report.container_id.clone()]) }
            }
            None => return Ok(()),
        };
        if report.outcome == Outcome::Success {
            let after = self.name_of(node, &report.container_id).unwrap_or_else(|| report.container_id.clone());
            let fresh: Vec<Queued> = report
                .dependents
                .iter()
                .filter(|id| chain.seen.insert((*id).clone()))
                .map(|id| Queued { container_id: id.clone(), after: after.clone() })
                .collect();
            for queued in fresh.into_iter().rev() {
                chain.queue.push_front(queued);
            }
        }
        self.next(node, chain).await
    }

    /// Sends the next dependent of `chain` that the policy lets through, and keeps the rest for its result.
    async fn next(&self, node: &str, mut chain: Chain) -> Result<(), StoreError> {
        while let Some(Queued { container_id, after }) = chain.queue.pop_front() {
            let entry = self.registry.container(node, &container_id);
            let Some(entry) = entry else {
                tracing::info!(node, container_id = %container_id.escape_debug(), after = %after.escape_debug(), "a dependent is no longer known: skipped");
                continue;
            };
            let facts = entry.facts;
            let why = if facts.labels.get(DEPENDS_ON_LABEL).is_some_and(|v| v.split(',').any(|n| n.trim() == after)) {
                format!("its label {DEPENDS_ON_LABEL} names {after}")
            } else {
                format!("it shares the network namespace of {after}, which was restarted")
            };
            let command_id = new_command_id();
            let mut record = EventRecord::new(
                EventKind::RemediationNeeded,
                node,
                &facts.id,
                &facts.name,
                format!("dependent of {after}, restarted after it: {why}"),
            );
            record.action = Some(Action::Restart);
            record.analysis_method = Some("dependents".into());
            record.decided_by = Some("dependents".into());
            record.command_id = Some(command_id.clone());
            record.confidence = Some(1.0);
            self.journal.append(&record).await?;
            let target = Target::of(node, &facts);
            if self.dispatcher.hold(&target, Action::Restart, &command_id).await?.is_some() {
                continue;
            }
            if let Some(ttl) = self.approval_ttl {
                let (approvals, dispatcher) = (self.approvals.as_ref(), self.dispatcher.as_ref());
                let restart = (Action::Restart, Vec::new());
                park_for_approval(approvals, dispatcher, &target, restart, command_id.clone(), ttl).await?;
                self.chains.lock().expect("chains lock").insert(command_id, chain);
                return Ok(());
            }
            match self.dispatcher.dispatch(&target, Action::Restart, Vec::new(), command_id.clone()).await? {
                DispatchOutcome::Sent(_) => {
                    self.chains.lock().expect("chains lock").insert(command_id, chain);
                    return Ok(());
                }
                DispatchOutcome::Stopped(_) => continue,
            }
        }
        Ok(())
    }

    /// The name of a container of `node`, if the registry knows it.
    fn name_of(&self, node: &str, container_id: &str) -> Option<String> {
        self.registry.container(node, container_id).map(|e| e.facts.name)
    }
}
