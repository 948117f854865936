//! The fleet directory: how several coordinators on one Redis answer for the whole fleet.
//!
//! A node holds one session, with one coordinator. Every [`PUBLISH_INTERVAL`] each coordinator publishes,
//! in the shared state store, a [`pb::DirectoryEntry`] for each node connected to it: the node, its
//! containers with their latest state, metrics and anomalies, and the coordinator's instance id. Entries
//! expire after three intervals, so a coordinator that dies stops answering for its nodes within seconds.
//! Any coordinator then lists the whole fleet (its own nodes from memory, the others' from the directory)
//! and routes a command for a node connected elsewhere to that node's coordinator (see [`crate::routing`]).
//!
//! Entries are decoded into domain types here, once ([`RemoteNode`]). With a store no other coordinator can
//! share (the embedded store) nothing is published and nothing is read.

use std::sync::Arc;
use std::time::Duration;

use hemostat_proto::v1 as pb;
use prost::Message;
use tokio::sync::watch;

use crate::registry::{ContainerEntry, NodeInfo, Registry};
use crate::store::{DirectoryStore, StateStore, StoreError};

/// How often a coordinator publishes its nodes.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(2);

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

/// The directory as one coordinator sees it.
pub struct Directory {
    store: Arc<dyn DirectoryStore>,
    /// Whether other coordinators can share the store; when not, the directory is not used.
    shared: bool,
    registry: Arc<Registry>,
    instance: String,
}

impl Directory {
    /// The directory of the coordinator instance `instance` (a random id per process).
    pub fn new(store: Arc<dyn StateStore>, registry: Arc<Registry>, instance: String) -> Self {
        let shared = store.is_shared();
        Directory { store, shared, registry, instance }
    }

    /// This coordinator's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Publishes an entry for each node connected here.
    pub async fn publish(&self) -> Result<(), StoreError> {
        let nodes = self.registry.nodes();
        for node in nodes.iter().filter(|n| n.connected && self.registry.is_connected(&n.hello.name)) {
            let entry = pb::DirectoryEntry {
                coordinator: self.instance.clone(),
                node: Some(node.to_proto()),
                containers: self.registry.containers_to_proto(&node.hello.name),
            };
            self.store.put_directory_entry(&node.hello.name, &entry.encode_to_vec(), PUBLISH_INTERVAL * 3).await?;
        }
        Ok(())
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
            if let Err(error) = self.publish().await {
                tracing::warn!(%error, "could not publish this coordinator's nodes to the fleet directory");
            }
        }
    }

    /// The nodes whose session another coordinator holds (not this one), by node name.
    pub async fn elsewhere(&self) -> Result<Vec<RemoteNode>, StoreError> {
        if !self.shared {
            return Ok(Vec::new());
        }
        let mut nodes = Vec::new();
        for (name, raw) in self.store.directory_entries().await? {
            if self.registry.is_connected(&name) {
                continue;
            }
            let node = RemoteNode::decode(&name, &raw)?;
            if node.coordinator != self.instance {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }

    /// The node `node` if another coordinator holds its session (reads that one entry only).
    pub async fn elsewhere_one(&self, node: &str) -> Result<Option<RemoteNode>, StoreError> {
        if !self.shared || self.registry.is_connected(node) {
            return Ok(None);
        }
        let Some(raw) = self.store.directory_entry(node).await? else { return Ok(None) };
        let remote = RemoteNode::decode(node, &raw)?;
        Ok((remote.coordinator != self.instance).then_some(remote))
    }

    /// The instance id of the other coordinator holding `node`'s session, if one does.
    pub async fn owner(&self, node: &str) -> Result<Option<String>, StoreError> {
        Ok(self.elsewhere_one(node).await?.map(|remote| remote.coordinator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
