//! Node liveness: a node that misses its heartbeats for `NODE_LOST_SECONDS` raises `node_lost` once, and
//! `node_recovered` when it is heard from again. Silence is measured on the monotonic clock, so a step of
//! the wall clock (NTP, a VM resumed) neither reports the fleet lost nor hides a silent node.
//!
//! The coordinator only knows the nodes that connected to it since it started; a node that never comes
//! back after a coordinator restart is not reported (nothing remembers it across restarts yet).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::{EventKind, EventRecord, rfc3339, unix_ms};
use crate::registry::{NodeInfo, Registry};
use crate::remediation::journal::Journal;

/// A change in a node's liveness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The node has been silent for longer than allowed.
    Lost {
        /// The node.
        node: String,
        /// How long it has been silent.
        silent_for: Duration,
        /// When it was last heard from.
        last_seen: SystemTime,
    },
    /// A lost node was heard from again.
    Recovered {
        /// The node.
        node: String,
    },
}

/// The nodes that turned lost or recovered at `now` (monotonic), given those already `lost` (updated in
/// place).
pub fn changes(nodes: &[NodeInfo], lost: &mut BTreeSet<String>, now: Instant, lost_after: Duration) -> Vec<Change> {
    let mut changes = Vec::new();
    for node in nodes {
        let name = &node.hello.name;
        let silent_for = now.saturating_duration_since(node.heard);
        let silent = silent_for > lost_after;
        if silent && lost.insert(name.clone()) {
            changes.push(Change::Lost { node: name.clone(), silent_for, last_seen: node.last_seen });
        } else if !silent && lost.remove(name) {
            changes.push(Change::Recovered { node: name.clone() });
        }
    }
    changes
}

/// Checks the registry's nodes every `lost_after / 4` (at most every second) until `stop` turns true,
/// recording `node_lost` and `node_recovered` events.
pub async fn watch_nodes(
    registry: Arc<Registry>,
    journal: Arc<Journal>,
    lost_after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut lost = BTreeSet::new();
    let mut tick = tokio::time::interval((lost_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        for change in changes(&registry.nodes(), &mut lost, Instant::now(), lost_after) {
            let record = match change {
                Change::Lost { node, silent_for, last_seen } => {
                    tracing::warn!(node, ?silent_for, "node lost: no heartbeat");
                    let reason = format!(
                        "no heartbeat for {}s (limit {}s); last heard from at {}",
                        silent_for.as_secs(),
                        lost_after.as_secs(),
                        rfc3339(unix_ms(last_seen))
                    );
                    EventRecord::new(EventKind::NodeLost, &node, "", "", reason)
                }
                Change::Recovered { node } => {
                    tracing::info!(node, "node recovered");
                    EventRecord::new(EventKind::NodeRecovered, &node, "", "", "heard from again")
                }
            };
            if let Err(error) = journal.append(&record).await {
                tracing::error!(%error, "could not record a node's liveness change");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::NodeHello;

    /// A node last heard from at `heard`, whose wall-clock `last_seen` says the same.
    fn node(name: &str, heard: Instant) -> NodeInfo {
        let last_seen = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        NodeInfo {
            hello: NodeHello {
                name: name.into(),
                version: "1".into(),
                stream_id: "s".into(),
                hostname: "h".into(),
                abilities: Default::default(),
            },
            connected: true,
            address: None,
            connected_at: last_seen,
            last_seen,
            heard,
            spool_depth: 0,
            spool_dropped: 0,
        }
    }

    #[test]
    fn a_step_of_the_wall_clock_neither_loses_a_node_nor_hides_a_silent_one() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(30);
        let mut lost = BTreeSet::new();
        // Heard from just now, but its wall-clock time says a day ago (the clock stepped forward since).
        let mut stepped = node("a", t0);
        stepped.last_seen = SystemTime::now() - Duration::from_secs(86_400);
        assert!(changes(&[stepped.clone()], &mut lost, t0 + Duration::from_secs(1), limit).is_empty());
        // Silent for 31 s, but its wall-clock time is in the future (the clock stepped back): lost all the same.
        stepped.last_seen = SystemTime::now() + Duration::from_secs(86_400);
        let changed = changes(&[stepped], &mut lost, t0 + Duration::from_secs(31), limit);
        assert!(matches!(&changed[..], [Change::Lost { silent_for, .. }] if silent_for.as_secs() == 31));
    }

    #[test]
    fn a_silent_node_is_lost_once_and_recovers_once() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(30);
        let mut lost = BTreeSet::new();
        let nodes = [node("a", t0), node("b", t0)];
        assert!(changes(&nodes, &mut lost, t0 + Duration::from_secs(30), limit).is_empty(), "at the limit: not yet");
        let first = changes(&nodes, &mut lost, t0 + Duration::from_secs(31), limit);
        assert_eq!(first.len(), 2);
        assert!(
            matches!(&first[0], Change::Lost { node, silent_for, .. } if node == "a" && silent_for.as_secs() == 31)
        );
        assert!(changes(&nodes, &mut lost, t0 + Duration::from_secs(90), limit).is_empty(), "lost once, not again");
        let back = [node("a", t0 + Duration::from_secs(95)), node("b", t0)];
        assert_eq!(
            changes(&back, &mut lost, t0 + Duration::from_secs(96), limit),
            vec![Change::Recovered { node: "a".into() }]
        );
        assert!(changes(&back, &mut lost, t0 + Duration::from_secs(97), limit).is_empty());
    }
}
