//! The fleet directory: how several coordinators on one Redis answer for the whole fleet.
//!
//! A node holds one session, with one coordinator. Every [`PUBLISH_INTERVAL`] each coordinator publishes,
//! in the shared state store, two things for each node connected to it:
//! - a [`pb::DirectorySummary`]: the node, how many containers and anomalies it has, the containers that
//!   need attention (at most [`ATTENTION_PER_NODE`]) and the coordinator's instance id, a few hundred bytes,
//!   rewritten every time;
//! - a [`pb::DirectoryEntry`] with every container and its latest state, metrics and anomalies, rewritten
//!   only when the node's containers changed other than by a sample, or when their metrics are
//!   [`METRICS_REFRESH`] old; in between only its expiry is renewed (one `PEXPIRE`).
//!
//! Both expire after three intervals, so a coordinator that dies stops answering for its nodes within
//! seconds. Any coordinator then lists the whole fleet (its own nodes from memory, the others' from the
//! directory: nodes and counts from the summaries, containers a node at a time from the entries) and routes
//! a command for a node connected elsewhere to that node's coordinator (see [`crate::routing`]). The metrics
//! of a container of another coordinator's node are at most [`METRICS_REFRESH`] plus an interval old.
//!
//! Entries are decoded into domain types here, once ([`RemoteNode`], [`RemoteSummary`]). With a store no
//! other coordinator can share (the embedded store) nothing is published and nothing is read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hemostat_proto::v1 as pb;
use prost::Message;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::registry::{ContainerEntry, NodeInfo, NodeSummary, Registry};
use crate::store::{DirectoryStore, StateStore, StoreError};

/// How often a coordinator publishes its nodes.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(2);
/// How old the metrics in a node's published entry may get before the entry is rewritten though nothing
/// else changed.
pub const METRICS_REFRESH: Duration = Duration::from_secs(10);
/// The most containers needing attention a node's summary carries (the dashboard's overview reads them).
pub const ATTENTION_PER_NODE: usize = 50;
/// Nodes published at once.
const CONCURRENT_PUBLICATIONS: usize = 16;

/// A node whose session another coordinator holds, as that coordinator last published it.
#[derive(Clone, Debug)]
pub struct RemoteNode {
    /// The instance id of the coordinator holding its session.
    pub coordinator: String,
    /// The node.
    pub node: NodeInfo,
    /// Its containers (without their sample history, which is not published).
    pub containers: Vec<ContainerEntry>,
}

impl RemoteNode {
    /// From a stored entry of the node `name`.
    fn decode(name: &str, raw: &[u8]) -> Result<Self, StoreError> {
        let entry = pb::DirectoryEntry::decode(raw)
            .map_err(|e| StoreError::Corrupt(format!("directory entry of {name}: {e}")))?;
        let node = entry.node.ok_or_else(|| StoreError::Corrupt(format!("directory entry of {name} has no node")))?;
        Ok(RemoteNode {
            coordinator: entry.coordinator,
            node: NodeInfo::from_proto(&node),
            containers: entry.containers.iter().filter_map(ContainerEntry::from_proto).collect(),
        })
    }
}

/// A node whose session another coordinator holds, in brief, as that coordinator last published it.
#[derive(Clone, Debug)]
pub struct RemoteSummary {
    /// The instance id of the coordinator holding its session.
    pub coordinator: String,
    /// The node.
    pub node: NodeInfo,
    /// Its counts and the containers that need attention.
    pub summary: NodeSummary,
}

impl RemoteSummary {
    /// From a stored summary of the node `name`.
    fn decode(name: &str, raw: &[u8]) -> Result<Self, StoreError> {
        let summary = pb::DirectorySummary::decode(raw)
            .map_err(|e| StoreError::Corrupt(format!("directory summary of {name}: {e}")))?;
        let node =
            summary.node.ok_or_else(|| StoreError::Corrupt(format!("directory summary of {name} has no node")))?;
        Ok(RemoteSummary {
            coordinator: summary.coordinator,
            node: NodeInfo::from_proto(&node),
            summary: NodeSummary {
                containers: summary.containers as usize,
                anomalies: summary.anomalies as usize,
                attention: summary.attention.iter().filter_map(ContainerEntry::from_proto).collect(),
            },
        })
    }
}

impl RemoteSummary {
    /// The summary of a node published whole (by a coordinator of an earlier version, which publishes no
    /// summary).
    fn of(remote: RemoteNode) -> Self {
        let anomalies = remote.containers.iter().map(|c| c.anomalies.len()).sum();
        let containers = remote.containers.len();
        let mut attention: Vec<ContainerEntry> =
            remote.containers.into_iter().filter(ContainerEntry::needs_attention).collect();
        attention.sort_by(|a, b| a.facts.name.cmp(&b.facts.name));
        attention.truncate(ATTENTION_PER_NODE);
        RemoteSummary {
            coordinator: remote.coordinator,
            node: remote.node,
            summary: NodeSummary { containers, anomalies, attention },
        }
    }
}

/// What this coordinator last published of a node whole.
#[derive(Clone, Copy, Debug)]
struct Published {
    /// The registry's change count of the node's containers then.
    changes: u64,
    /// When.
    at: Instant,
}

/// What one publication wrote, for the benchmarks and the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Publication {
    /// Nodes published.
    pub nodes: usize,
    /// Of those, nodes whose whole entry was written.
    pub whole: usize,
    /// Bytes written (summaries and entries).
    pub bytes: usize,
}

/// The directory as one coordinator sees it.
pub struct Directory {
    store: Arc<dyn DirectoryStore>,
    /// Whether other coordinators can share the store; when not, the directory is not used.
    shared: bool,
    registry: Arc<Registry>,
    instance: String,
    /// Node → what was last published of it whole.
    published: Mutex<HashMap<String, Published>>,
}

impl Directory {
    /// The directory of the coordinator instance `instance` (a random id per process).
    pub fn new(store: Arc<dyn StateStore>, registry: Arc<Registry>, instance: String) -> Self {
        let shared = store.is_shared();
        Directory { store, shared, registry, instance, published: Mutex::new(HashMap::new()) }
    }

    /// This coordinator's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Publishes each node connected here: its summary, and its whole entry when its containers changed
    /// other than by a sample or its metrics are [`METRICS_REFRESH`] old.
    pub async fn publish(&self) -> Result<Publication, StoreError> {
        let nodes: Vec<NodeInfo> = self
            .registry
            .nodes()
            .into_iter()
            .filter(|n| n.connected && self.registry.is_connected(&n.hello.name))
            .collect();
        self.published.lock().expect("directory lock").retain(|name, _| nodes.iter().any(|n| &n.hello.name == name));
        let mut done = Publication::default();
        let mut publications =
            futures::stream::iter(nodes).map(|node| self.publish_node(node)).buffer_unordered(CONCURRENT_PUBLICATIONS);
        while let Some(publication) = publications.next().await {
            let (whole, bytes) = publication?;
            done.nodes += 1;
            done.whole += usize::from(whole);
            done.bytes += bytes;
        }
        Ok(done)
    }

    /// Publishes one node; returns whether its whole entry was written, and the bytes written.
    async fn publish_node(&self, node: NodeInfo) -> Result<(bool, usize), StoreError> {
        let name = node.hello.name.clone();
        let changes = self.registry.changes(&name);
        let earlier = self.published.lock().expect("directory lock").get(&name).copied();
        let due = earlier.is_none_or(|p| p.changes != changes || p.at.elapsed() >= METRICS_REFRESH);
        let summary = self.summary_of(&node).encode_to_vec();
        let ttl = PUBLISH_INTERVAL * 3;
        if !due && self.store.put_directory_entry(&name, &summary, None, ttl).await? {
            return Ok((false, summary.len()));
        }
        let at = Instant::now();
        let entry = pb::DirectoryEntry {
            coordinator: self.instance.clone(),
            node: Some(node.to_proto()),
            containers: self.registry.containers_to_proto(&name),
        }
        .encode_to_vec();
        self.store.put_directory_entry(&name, &summary, Some(&entry), ttl).await?;
        self.published.lock().expect("directory lock").insert(name, Published { changes, at });
        Ok((true, summary.len() + entry.len()))
    }

    /// The wire form of a node's summary.
    fn summary_of(&self, node: &NodeInfo) -> pb::DirectorySummary {
        let summary = self.registry.summary(&node.hello.name, ATTENTION_PER_NODE);
        pb::DirectorySummary {
            coordinator: self.instance.clone(),
            node: Some(node.to_proto()),
            containers: summary.containers.min(u32::MAX as usize) as u32,
            anomalies: summary.anomalies.min(u32::MAX as usize) as u32,
            attention: summary.attention.iter().map(ContainerEntry::to_proto).collect(),
        }
    }

    /// Publishes every [`PUBLISH_INTERVAL`] until `stop` turns true. With a store no other coordinator
    /// shares there is no one to tell, so nothing is published.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !self.shared {
            return;
        }
        let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            match self.publish().await {
                Ok(done) => tracing::debug!(nodes = done.nodes, whole = done.whole, bytes = done.bytes, "published"),
                Err(error) => {
                    tracing::warn!(%error, "could not publish this coordinator's nodes to the fleet directory")
                }
            }
        }
    }

    /// The names of the nodes another coordinator may hold, sorted (empty when the store is not shared).
    pub async fn node_names(&self) -> Result<Vec<String>, StoreError> {
        if !self.shared {
            return Ok(Vec::new());
        }
        self.store.directory_nodes().await
    }

    /// The nodes whose session another coordinator holds (not this one), in brief, by node name.
    pub async fn elsewhere(&self) -> Result<Vec<RemoteSummary>, StoreError> {
        if !self.shared {
            return Ok(Vec::new());
        }
        let mut nodes = Vec::new();
        for (name, raw) in self.store.directory_summaries().await? {
            if self.registry.is_connected(&name) {
                continue;
            }
            match raw {
                Some(raw) => {
                    let node = RemoteSummary::decode(&name, &raw)?;
                    if node.coordinator != self.instance {
                        nodes.push(node);
                    }
                }
                // A coordinator of an earlier version publishes whole entries only: its nodes are summarised
                // here.
                None => {
                    if let Some(remote) = self.elsewhere_one(&name).await? {
                        nodes.push(RemoteSummary::of(remote));
                    }
                }
            }
        }
        nodes.sort_by(|a, b| a.node.hello.name.cmp(&b.node.hello.name));
        Ok(nodes)
    }

    /// The node `node` with every container, if another coordinator holds its session (reads that one
    /// entry only).
    pub async fn elsewhere_one(&self, node: &str) -> Result<Option<RemoteNode>, StoreError> {
        if !self.shared || self.registry.is_connected(node) {
            return Ok(None);
        }
        let Some(raw) = self.store.directory_entry(node).await? else { return Ok(None) };
        let remote = RemoteNode::decode(node, &raw)?;
        Ok((remote.coordinator != self.instance).then_some(remote))
    }

    /// The instance id of the other coordinator holding `node`'s session, if one does (reads its summary, or
    /// its entry when a coordinator of an earlier version published no summary).
    pub async fn owner(&self, node: &str) -> Result<Option<String>, StoreError> {
        if !self.shared || self.registry.is_connected(node) {
            return Ok(None);
        }
        let Some(raw) = self.store.directory_summary(node).await? else {
            return Ok(self.elsewhere_one(node).await?.map(|remote| remote.coordinator));
        };
        let remote = RemoteSummary::decode(node, &raw)?;
        Ok((remote.coordinator != self.instance).then_some(remote.coordinator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{ContainerFacts, Metrics, Status};
    use crate::registry::NodeHello;
    use crate::store::embedded::EmbeddedStore;
    use std::time::SystemTime;

    fn facts(i: usize) -> ContainerFacts {
        let state = pb::ContainerState { id: format!("{i:064x}"), name: format!("app-{i:03}"), ..Default::default() };
        ContainerFacts { status: Status::Running, ..ContainerFacts::from(&state) }
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_is_published_whole_only_when_its_containers_changed_or_its_metrics_are_due() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn StateStore> = Arc::new(EmbeddedStore::open(dir.path().join("s.redb")).await.unwrap());
        let registry = Arc::new(Registry::default());
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let hello = NodeHello { name: "a".into(), ..Default::default() };
        registry.open_session(hello, None, tx);
        registry.replace_containers("a", (0..100).map(facts).collect());
        let directory = Directory::new(store.clone(), registry.clone(), "me".into());
        let sample = || {
            let samples = (0..100)
                .map(|i| (facts(i).id, Metrics { sampled_at: Some(SystemTime::now()), ..Default::default() }))
                .collect();
            registry.record_metrics("a", samples);
        };

        let first = directory.publish().await.unwrap();
        assert_eq!((first.nodes, first.whole), (1, 1), "published whole the first time");
        for _ in 0..4 {
            tokio::time::advance(PUBLISH_INTERVAL).await;
            sample();
            let only_summary = directory.publish().await.unwrap();
            assert_eq!(only_summary.whole, 0, "samples alone: the summary, and the entry's expiry renewed");
            assert!(only_summary.bytes * 20 < first.bytes, "{only_summary:?} against {first:?}");
        }
        tokio::time::advance(METRICS_REFRESH - PUBLISH_INTERVAL * 4).await;
        assert_eq!(directory.publish().await.unwrap().whole, 1, "the metrics are due for a refresh");
        registry.update_container("a", ContainerFacts { status: Status::Exited, ..facts(7) });
        let changed = directory.publish().await.unwrap();
        assert_eq!(changed.whole, 1, "a change other than a sample is published at once");
        let summary = RemoteSummary::decode("a", &store.directory_summary("a").await.unwrap().unwrap()).unwrap();
        assert_eq!((summary.coordinator.as_str(), summary.summary.containers), ("me", 100));
        assert_eq!(summary.summary.attention.iter().map(|c| c.facts.name.as_str()).collect::<Vec<_>>(), ["app-007"]);
        let entry = RemoteNode::decode("a", &store.directory_entry("a").await.unwrap().unwrap()).unwrap();
        assert_eq!(entry.containers.len(), 100);
    }

    /// An entry a newer coordinator wrote: this build's fields, plus a field of the entry (tag 20) and one of
    /// a container (tag 30) added later, and an anomaly of a type added later (99).
    fn newer_entry() -> Vec<u8> {
        let state = pb::ContainerState { id: "a".repeat(64), name: "web".into(), ..Default::default() };
        let anomaly =
            |r#type| pb::Anomaly { r#type, severity: pb::Severity::High as i32, threshold: 80.0, actual: 95.0 };
        let container = pb::Container {
            node: "host-b".into(),
            state: Some(state),
            anomalies: vec![anomaly(pb::AnomalyType::HighCpu as i32), anomaly(99)],
            ..Default::default()
        };
        let mut container_bytes = container.encode_to_vec();
        prost::encoding::string::encode(30, &"a newer container field".to_owned(), &mut container_bytes);
        let node = pb::Node { name: "host-b".into(), connected: true, ..Default::default() };
        let entry = pb::DirectoryEntry { coordinator: "newer".into(), node: Some(node), containers: Vec::new() };
        let mut bytes = entry.encode_to_vec();
        prost::encoding::bytes::encode(3, &container_bytes, &mut bytes);
        prost::encoding::uint64::encode(20, &7, &mut bytes);
        bytes
    }

    #[test]
    fn an_entry_written_by_a_newer_coordinator_still_lists_its_nodes_containers() {
        let remote = RemoteNode::decode("host-b", &newer_entry()).expect("a newer entry decodes");
        assert_eq!((remote.coordinator.as_str(), remote.node.hello.name.as_str()), ("newer", "host-b"));
        let names: Vec<&str> = remote.containers.iter().map(|c| c.facts.name.as_str()).collect();
        assert_eq!(names, ["web"]);
        let kinds: Vec<&str> = remote.containers[0].anomalies.iter().map(|a| a.kind.name()).collect();
        assert_eq!(kinds, ["high_cpu"], "the anomaly of an unknown type is left out, the rest kept");
    }
}
