//! What operators read about the fleet: nodes and containers (this coordinator's and, through the fleet
//! directory, every other's), a container's budget and silence, silences, dry-run, and the decisions waiting
//! for approval.

use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use super::paging::{Page, page_size, resume_after, token_after};
use super::validation::{check_name, require_name};
use super::{Fleet, FleetError};
use crate::container::Status;
use crate::events::{EventKind, Rejection, StoredEvent, unix_ms};
use crate::policy::BudgetStatus;
use crate::registry::{ContainerEntry, NodeInfo};
use crate::remediation::journal::{Log, from_time};
use crate::remediation::settings::DryRunSource;
use crate::silence::Silence;
use hemostat_model::PolicyValue;

/// How many nodes' directory entries a page of containers reads at once: a page of the default size spans
/// about ten nodes of 100 containers, and reading them one after another cost a round trip to the store each.
const PAGE_ENTRY_READS_AHEAD: usize = 4;

/// The most events read when looking for decisions awaiting approval.
const APPROVALS_SCAN: usize = 500_000;

/// A container's budget, for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetFigures {
    /// Its budget key.
    pub key: String,
    /// Its cooldown, attempts and breaker now.
    pub status: BudgetStatus,
    /// The attempts allowed per window.
    pub max_attempts: u32,
    /// The restart policy: `cooldown` or `backoff`.
    pub restart_policy: &'static str,
}

/// A container with its budget and the silence covering it.
#[derive(Clone, Debug)]
pub struct ContainerDetail {
    /// The container, as its node last reported it.
    pub entry: ContainerEntry,
    /// Its budget.
    pub budget: BudgetFigures,
    /// The silence covering it, if one does.
    pub silence: Option<Silence>,
    /// Its effective policy, each value with where it came from.
    pub policy: Vec<PolicyValue>,
}

/// The overview's part of the fleet: see [`Fleet::overview`].
#[derive(Clone, Debug, Default)]
pub struct FleetOverview {
    /// The containers it lists, those that need attention first.
    pub containers: Vec<ContainerEntry>,
    /// How many containers the fleet has.
    pub containers_total: usize,
    /// How many anomalies the fleet's containers have now.
    pub anomalies_total: usize,
}

/// The fleet's dry-run setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DryRun {
    /// Whether it is on.
    pub enabled: bool,
    /// Who decided.
    pub source: DryRunSource,
}

impl Fleet {
    /// Every node of the fleet, by name: this coordinator's from memory, the others' from the directory.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, FleetError> {
        let elsewhere = self.directory.elsewhere().await?;
        let mut nodes: Vec<NodeInfo> = self
            .registry
            .nodes()
            .into_iter()
            .filter(|local| !elsewhere.iter().any(|remote| remote.node.hello.name == local.hello.name))
            .collect();
        nodes.extend(elsewhere.into_iter().map(|remote| remote.node));
        nodes.sort_by(|a, b| a.hello.name.cmp(&b.hello.name));
        Ok(nodes)
    }

    /// One page of the fleet's containers (of the node `node` only, when given), by node and name: at most
    /// `size` of them (see [`page_size`]) after the page `token` ended. It reads the nodes' names and then
    /// as many nodes as the page needs (from memory, or one directory entry each for a node connected
    /// elsewhere), so a page costs O(its size), whatever the size of the fleet.
    pub async fn container_page(
        &self,
        node: Option<&str>,
        size: u32,
        token: &str,
    ) -> Result<Page<ContainerEntry>, FleetError> {
        if let Some(node) = node {
            check_name("node", node)?;
        }
        let size = page_size(size);
        let after = match resume_after(token)? {
            None => None,
            Some(key) => match <[String; 2]>::try_from(key) {
                Ok([node, name]) => Some((node, name)),
                Err(_) => return Err(FleetError::Invalid("page_token: not a next_page_token this list gave".into())),
            },
        };
        let names: Vec<String> = match node {
            Some(node) => vec![node.to_owned()],
            None => {
                let mut names: BTreeSet<String> = self.registry.container_nodes().into_iter().collect();
                names.extend(self.directory.node_names().await?);
                names.into_iter().collect()
            }
        };
        let mut items: Vec<ContainerEntry> = Vec::new();
        let names: Vec<&String> = names.iter().filter(|n| after.as_ref().is_none_or(|(node, _)| *n >= node)).collect();
        // The nodes' directory entries are read a few at once (a round trip each to the store), in order.
        'page: for chunk in names.chunks(PAGE_ENTRY_READS_AHEAD) {
            let remotes =
                futures::future::try_join_all(chunk.iter().map(|name| self.directory.elsewhere_one(name))).await?;
            for (&name, remote) in chunk.iter().zip(remotes) {
                let after_name = after.as_ref().filter(|(node, _)| node == name).map(|(_, name)| name.as_str());
                let wanted = size + 1 - items.len();
                match remote {
                    Some(remote) => {
                        let mut containers: Vec<ContainerEntry> = remote
                            .containers
                            .into_iter()
                            .filter(|c| c.node == *name && after_name.is_none_or(|after| c.facts.name.as_str() > after))
                            .collect();
                        containers.sort_by(|a, b| a.facts.name.cmp(&b.facts.name));
                        items.extend(containers.into_iter().take(wanted));
                    }
                    None => items.extend(self.registry.containers_after(name, after_name, wanted)),
                }
                if items.len() > size {
                    break 'page;
                }
            }
        }
        let more = items.len() > size;
        items.truncate(size);
        let next_token = match (more, items.last()) {
            (true, Some(last)) => Some(token_after(&[last.node.clone(), last.facts.name.clone()])),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    /// What the overview shows of the containers: the fleet's counts, and at most `limit` containers, those
    /// with anomalies first, then those not running, then the rest, each group by node and name. It reads
    /// the summaries of the nodes connected elsewhere (each names at most
    /// [`crate::directory::ATTENTION_PER_NODE`] containers needing attention) and, when those are fewer
    /// than `limit`, the first page of the fleet; never every container.
    pub async fn overview(&self, limit: usize) -> Result<FleetOverview, FleetError> {
        let elsewhere = self.directory.elsewhere().await?;
        let mut overview = FleetOverview::default();
        let mut listed: Vec<ContainerEntry> = Vec::new();
        for node in self.registry.container_nodes() {
            if elsewhere.iter().any(|remote| remote.node.hello.name == node) {
                continue;
            }
            let summary = self.registry.summary(&node, limit);
            overview.containers_total += summary.containers;
            overview.anomalies_total += summary.anomalies;
            listed.extend(summary.attention);
        }
        for remote in elsewhere {
            overview.containers_total += remote.summary.containers;
            overview.anomalies_total += remote.summary.anomalies;
            listed.extend(remote.summary.attention);
        }
        let order = |c: &ContainerEntry| {
            (c.anomalies.is_empty(), c.facts.status == Status::Running, c.node.clone(), c.facts.name.clone())
        };
        listed.sort_by_key(order);
        listed.truncate(limit);
        if listed.len() < limit {
            let page = self.container_page(None, limit as u32, "").await?;
            let more: Vec<ContainerEntry> = page
                .items
                .into_iter()
                .filter(|c| !listed.iter().any(|l| l.node == c.node && l.facts.id == c.facts.id))
                .collect();
            listed.extend(more);
            listed.sort_by_key(order);
            listed.truncate(limit);
        }
        overview.containers = listed;
        Ok(overview)
    }

    /// The container `ident` (its name, full id, or an id prefix of at least 12 characters) on `node`:
    /// from this coordinator's registry, or from the directory for a node connected elsewhere.
    pub async fn container(&self, node: &str, ident: &str) -> Result<ContainerEntry, FleetError> {
        require_name("node", node)?;
        require_name("container", ident)?;
        let matches = |e: &ContainerEntry| {
            e.facts.name == ident || e.facts.id == ident || (ident.len() >= 12 && e.facts.id.starts_with(ident))
        };
        let entries = match self.directory.elsewhere_one(node).await? {
            Some(remote) => remote.containers,
            None => self.registry.containers(Some(node)),
        };
        entries
            .into_iter()
            .find(matches)
            .ok_or_else(|| FleetError::NotFound(format!("node {node:?} has reported no container {ident:?}")))
    }

    /// The container `ident` on `node` with its budget and silence.
    pub async fn container_detail(&self, node: &str, ident: &str) -> Result<ContainerDetail, FleetError> {
        let entry = self.container(node, ident).await?;
        let mut details = self.container_details(vec![entry]).await?;
        details.pop().ok_or_else(|| FleetError::NotFound(format!("node {node:?}: {ident:?} vanished")))
    }

    /// Each of `entries` with its budget and silence, in the same order: the budgets in one store read.
    pub async fn container_details(&self, entries: Vec<ContainerEntry>) -> Result<Vec<ContainerDetail>, FleetError> {
        let now = unix_ms(SystemTime::now());
        let silences = self.silences().await?;
        let keys: Vec<String> = entries.iter().map(|e| e.facts.budget_key(&e.node)).collect();
        let states = self.budgets.read_budgets(&keys).await?;
        Ok(entries
            .into_iter()
            .zip(keys)
            .zip(states)
            .map(|((entry, key), state)| {
                let silence = silences.iter().find(|s| s.covers(&entry.node, &entry.facts.name, now)).cloned();
                let policy = self.remediator.dispatcher().policy().effective(&entry.facts.labels);
                let budget = policy.budget();
                let budget = BudgetFigures {
                    key,
                    status: budget.status(&state, now),
                    max_attempts: budget.max_attempts,
                    restart_policy: budget.policy.name(),
                };
                ContainerDetail { policy: policy.values(), entry, budget, silence }
            })
            .collect())
    }

    /// The silences in force, soonest to expire first.
    pub async fn silences(&self) -> Result<Vec<Silence>, FleetError> {
        Ok(self.settings().silences().await?)
    }

    /// Whether the fleet is in dry-run, and who decided.
    pub async fn dry_run(&self) -> Result<DryRun, FleetError> {
        let (enabled, source) = self.settings().dry_run().await?;
        Ok(DryRun { enabled, source })
    }

    /// How long decisions wait for an admin's approval, when they do (`RESPONDER_REQUIRE_APPROVAL`).
    pub fn approval_ttl(&self) -> Option<Duration> {
        self.remediator.config().approval_ttl
    }

    /// The decisions waiting for an admin's approval, oldest first: the `awaiting_approval` rejections of the
    /// last approval period that no approval has followed. Empty when decisions do not wait.
    pub async fn pending_approvals(&self) -> Result<Vec<StoredEvent>, FleetError> {
        let Some(ttl) = self.approval_ttl() else { return Ok(Vec::new()) };
        let now = unix_ms(SystemTime::now());
        let ttl_ms = ttl.as_millis() as u64;
        let mut waiting: Vec<StoredEvent> = Vec::new();
        let mut approved: HashSet<String> = HashSet::new();
        self.journal()
            .scan(Log::Events, from_time(now.saturating_sub(ttl_ms)), None, APPROVALS_SCAN, |event| {
                let r = &event.record;
                match (r.kind, &r.command_id) {
                    (EventKind::Rejected, Some(_)) if r.rejection == Some(Rejection::AwaitingApproval) => {
                        waiting.push(event)
                    }
                    (EventKind::RemediationNeeded, Some(command))
                        if r.analysis_method.as_deref() == Some("operator") =>
                    {
                        approved.insert(command.clone());
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            })
            .await?;
        waiting.retain(|e| {
            e.record.time_ms + ttl_ms > now && e.record.command_id.as_ref().is_some_and(|c| !approved.contains(c))
        });
        Ok(waiting)
    }
}
