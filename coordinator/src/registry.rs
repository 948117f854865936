//! The coordinator's in-memory view of the fleet: nodes, their open sessions, and their containers.
//!
//! Everything here is rebuilt from the nodes when they reconnect (each session starts with a snapshot), so
//! a restarted coordinator loses nothing that matters. It keeps at most
//! [`IntakeLimits::containers_per_node`] containers of each node (the containers beyond it are counted, not
//! kept), and counts what the intake limits cut, for `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::container::{Anomaly, AnomalyKind, ContainerFacts, Episode, Metrics, Status};
use crate::events::Action;
use crate::history::History;
use crate::intake::{Cuts, IntakeLimits, Limit, Unknown};

/// A command for a node, as the session sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// Unique id.
    pub id: String,
    /// The target container's id.
    pub container_id: String,
    /// The target container's name.
    pub container_name: String,
    /// What to do.
    pub action: Action,
    /// For restarts: seconds to wait for a graceful stop.
    pub stop_timeout_secs: u32,
    /// For exec: the argument vector.
    pub argv: Vec<String>,
}

/// What a session sends to its node.
#[derive(Clone, Debug, PartialEq)]
pub enum Outbound {
    /// Acknowledge messages up to this sequence number.
    Ack(u64),
    /// Execute this command.
    Command(Command),
}

/// What a node said about itself in its Hello.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeHello {
    /// Its name (already checked against its certificate).
    pub name: String,
    /// Its software version.
    pub version: String,
    /// Identifies the node's message stream (sequence numbers are unique within it).
    pub stream_id: String,
    /// The Docker host's name.
    pub hostname: String,
    /// What it executes.
    pub abilities: NodeAbilities,
}

/// What a node said it executes, in its Hello: analysis decides only those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAbilities {
    /// The actions it executes (`NODE_ALLOWED_ACTIONS`); `None` for a node too old to say (all are assumed,
    /// and it refuses what it does not allow).
    pub actions: Option<Vec<Action>>,
    /// The diagnostic commands it allows for exec (`RESPONDER_EXEC_ALLOWLIST`), each an argument vector
    /// joined by spaces: at most [`NodeAbilities::MAX_COMMANDS`], each at most
    /// [`NodeAbilities::MAX_COMMAND_BYTES`] (longer ones are left out: they could not be matched whole).
    pub exec_allowlist: Vec<String>,
}

impl NodeAbilities {
    /// Most exec commands kept of a Hello.
    pub const MAX_COMMANDS: usize = 64;
    /// Longest exec command kept, bytes.
    pub const MAX_COMMAND_BYTES: usize = 256;

    /// From a Hello's `allowed_actions` and `exec_allowlist` (unknown action values are skipped).
    pub fn from_hello(allowed_actions: &[i32], exec_allowlist: &[String]) -> Self {
        let actions: Vec<Action> = allowed_actions
            .iter()
            .filter_map(|a| hemostat_proto::v1::Action::try_from(*a).ok())
            .filter_map(|a| Action::try_from(a).ok())
            .fold(Vec::new(), |mut known, a| {
                if !known.contains(&a) {
                    known.push(a);
                }
                known
            });
        let exec_allowlist = exec_allowlist
            .iter()
            .filter(|c| !c.trim().is_empty() && c.len() <= Self::MAX_COMMAND_BYTES)
            .take(Self::MAX_COMMANDS)
            .cloned()
            .collect();
        NodeAbilities { actions: (!allowed_actions.is_empty()).then_some(actions), exec_allowlist }
    }

    /// Whether the node executes `action` (any, for a node that did not say).
    pub fn allows(&self, action: Action) -> bool {
        self.actions.as_ref().is_none_or(|actions| actions.contains(&action))
    }
}

/// A node as the coordinator knows it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Its last Hello.
    pub hello: NodeHello,
    /// Whether it has a session open here.
    pub connected: bool,
    /// Where it connected from.
    pub address: Option<SocketAddr>,
    /// When its current or last session opened.
    pub connected_at: SystemTime,
    /// When it was last heard from (wall clock, to show).
    pub last_seen: SystemTime,
    /// When it was last heard from on the monotonic clock, for liveness: a step of the wall clock does not
    /// make a node silent, nor a silent one heard.
    pub heard: tokio::time::Instant,
    /// Messages in its spool, per its last heartbeat.
    pub spool_depth: u64,
    /// Messages it dropped from a full spool.
    pub spool_dropped: u64,
}

/// A container as the coordinator knows it.
#[derive(Clone, Debug)]
pub struct ContainerEntry {
    /// The node it runs on.
    pub node: String,
    /// Its latest facts.
    pub facts: ContainerFacts,
    /// When the node last reported on it.
    pub updated_at: SystemTime,
    /// Its latest metrics sample.
    pub metrics: Option<Metrics>,
    /// Its recent samples, compactly: the last [`crate::history::SPAN_SAMPLES`], merged into points.
    pub recent: History,
    /// Its anomalies now.
    pub anomalies: Vec<Anomaly>,
    /// Its running episode (see [`crate::analysis::episode`]), if any.
    pub episode: Option<Episode>,
}

/// A node's containers in brief: what the fleet directory publishes of it at every interval and the
/// dashboard's overview reads.
#[derive(Clone, Debug, Default)]
pub struct NodeSummary {
    /// How many containers it has.
    pub containers: usize,
    /// How many anomalies they have now.
    pub anomalies: usize,
    /// Its containers with anomalies or not running, by name (the first few only: see the caller's cap).
    pub attention: Vec<ContainerEntry>,
}

/// The monotonic instant as long ago as the wall-clock time `last_seen` (now, if that is in the future): for
/// a node another coordinator reported, whose monotonic clock is not ours.
fn heard_at(last_seen: SystemTime) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let ago = SystemTime::now().duration_since(last_seen).unwrap_or_default();
    now.checked_sub(ago).unwrap_or(now)
}

impl NodeInfo {
    /// From the wire form another coordinator published (its stream id does not travel).
    pub fn from_proto(node: &hemostat_proto::v1::Node) -> Self {
        use hemostat_proto::timestamp::from_proto as time;
        NodeInfo {
            hello: NodeHello {
                name: node.name.clone(),
                version: node.version.clone(),
                stream_id: String::new(),
                hostname: node.hostname.clone(),
                abilities: NodeAbilities::default(),
            },
            connected: node.connected,
            address: node.address.parse().ok(),
            connected_at: node.connected_at.as_ref().map_or(SystemTime::UNIX_EPOCH, time),
            last_seen: node.last_seen.as_ref().map_or(SystemTime::UNIX_EPOCH, time),
            heard: heard_at(node.last_seen.as_ref().map_or(SystemTime::UNIX_EPOCH, time)),
            spool_depth: node.spool_depth,
            spool_dropped: node.spool_dropped,
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> hemostat_proto::v1::Node {
        use hemostat_proto::timestamp::to_proto as timestamp;
        hemostat_proto::v1::Node {
            name: self.hello.name.clone(),
            connected: self.connected,
            address: self.address.map(|a| a.to_string()).unwrap_or_default(),
            version: self.hello.version.clone(),
            hostname: self.hello.hostname.clone(),
            connected_at: Some(timestamp(self.connected_at)),
            last_seen: Some(timestamp(self.last_seen)),
            spool_depth: self.spool_depth,
            spool_dropped: self.spool_dropped,
        }
    }
}

impl ContainerEntry {
    /// From the wire form another coordinator published (no recent samples travel); `None` without a state.
    pub fn from_proto(container: &hemostat_proto::v1::Container) -> Option<Self> {
        let facts = ContainerFacts::from(container.state.as_ref()?);
        Some(ContainerEntry {
            node: container.node.clone(),
            updated_at: container
                .updated_at
                .as_ref()
                .map_or(SystemTime::UNIX_EPOCH, hemostat_proto::timestamp::from_proto),
            metrics: container.metrics.as_ref().map(Metrics::from),
            recent: History::default(),
            anomalies: container.anomalies.iter().filter_map(|a| Anomaly::try_from(a).ok()).collect(),
            episode: container.episode.as_ref().map(Episode::from),
            facts,
        })
    }

    /// The wire form: latest state, metrics and anomalies.
    pub fn to_proto(&self) -> hemostat_proto::v1::Container {
        let state = hemostat_proto::v1::ContainerState::from(&self.facts);
        hemostat_proto::v1::Container {
            metrics: self.metrics.map(|m| m.to_wire(&state)),
            anomalies: self.anomalies.iter().map(hemostat_proto::v1::Anomaly::from).collect(),
            episode: self.episode.as_ref().map(hemostat_proto::v1::Episode::from),
            state: Some(state),
            updated_at: Some(hemostat_proto::timestamp::to_proto(self.updated_at)),
            node: self.node.clone(),
            budget: None,
            silence: None,
        }
    }
}

impl ContainerEntry {
    /// Whether people should look at it first: it has anomalies, or it is not running.
    pub fn needs_attention(&self) -> bool {
        !self.anomalies.is_empty() || self.facts.status != Status::Running
    }

    fn new(node: &str, facts: ContainerFacts) -> Self {
        ContainerEntry {
            node: node.to_owned(),
            facts,
            updated_at: SystemTime::now(),
            metrics: None,
            recent: History::default(),
            anomalies: Vec::new(),
            episode: None,
        }
    }
}

struct NodeEntry {
    info: NodeInfo,
    session: Option<(u64, mpsc::Sender<Outbound>)>,
    /// The highest sequence number processed, of the node's current stream.
    processed: (String, u64),
    /// A snapshot arriving in parts: the next part expected and the containers listed so far; `None` when
    /// no snapshot in parts is under way, or one of its parts was missed.
    snapshot_parts: Option<(u32, BTreeSet<String>)>,
}

/// One node's containers, by id: boxed, so that the map's nodes hold a pointer to each container, not its 720
/// bytes (a B-tree node is about half empty: unboxed, that slack cost some 600 bytes a container).
type NodeContainers = BTreeMap<String, Box<ContainerEntry>>;

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeEntry>,
    /// Node → its containers: every change to one node's containers touches its map only, so a snapshot
    /// or a report costs O(its containers), whatever the size of the fleet.
    containers: BTreeMap<String, NodeContainers>,
    /// Node → how many times its containers changed other than by a sample (facts, anomalies, episodes,
    /// containers come and gone): what the fleet directory compares to publish only what changed.
    changes: BTreeMap<String, u64>,
    next_session: u64,
    /// Items the intake limits cut since start, by limit.
    cuts: BTreeMap<Limit, u64>,
    /// What nodes sent that this coordinator does not know, since start, by kind.
    unknown: BTreeMap<Unknown, u64>,
}

impl State {
    /// Notes that the node's containers changed other than by a sample.
    fn changed(&mut self, node: &str) {
        match self.changes.get_mut(node) {
            Some(n) => *n += 1,
            None => {
                self.changes.insert(node.to_owned(), 1);
            }
        }
    }

    /// The node's containers, created empty if it had none.
    fn of_node_mut(&mut self, node: &str) -> &mut NodeContainers {
        if !self.containers.contains_key(node) {
            self.containers.insert(node.to_owned(), NodeContainers::new());
        }
        self.containers.get_mut(node).expect("just inserted")
    }

    /// The node's entry for this container, created from `facts` if it had none.
    fn entry_mut(&mut self, node: &str, facts: &ContainerFacts) -> &mut ContainerEntry {
        let containers = self.of_node_mut(node);
        if !containers.contains_key(&facts.id) {
            containers.insert(facts.id.clone(), Box::new(ContainerEntry::new(node, facts.clone())));
        }
        containers.get_mut(&facts.id).expect("just inserted")
    }

    /// The node's entry for this container, created if the node is within `limit` containers; `None` (and
    /// counted) when it is not.
    fn admit(&mut self, node: &str, facts: &ContainerFacts, limit: usize) -> Option<&mut ContainerEntry> {
        let containers = self.of_node_mut(node);
        if !containers.contains_key(&facts.id) && containers.len() >= limit {
            *self.cuts.entry(Limit::Containers).or_default() += 1;
            return None;
        }
        Some(self.entry_mut(node, facts))
    }
}

/// The registry of nodes, sessions and containers.
pub struct Registry {
    state: Mutex<State>,
    limits: IntakeLimits,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(IntakeLimits::default())
    }
}

/// Why a command could not be handed to a node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("node {0:?} is not connected")]
pub struct NodeNotConnected(pub String);

impl Registry {
    /// An empty registry holding each node to `limits`.
    pub fn new(limits: IntakeLimits) -> Self {
        Registry { state: Mutex::new(State::default()), limits }
    }

    /// The intake limits it holds nodes to.
    pub fn limits(&self) -> &IntakeLimits {
        &self.limits
    }

    /// Counts what the intake limits cut from a message.
    pub fn count_cuts(&self, cuts: &Cuts) {
        let mut state = self.state.lock().expect("registry lock");
        for (limit, n) in cuts.iter() {
            *state.cuts.entry(limit).or_default() += n;
        }
    }

    /// Items the intake limits cut since start, for every limit.
    pub fn cut_totals(&self) -> Vec<(Limit, u64)> {
        let state = self.state.lock().expect("registry lock");
        Limit::ALL.iter().map(|limit| (*limit, state.cuts.get(limit).copied().unwrap_or(0))).collect()
    }

    /// Counts `n` things of `kind` a node sent that this coordinator does not know (and ignored).
    pub fn count_unknown(&self, kind: Unknown, n: u64) {
        *self.state.lock().expect("registry lock").unknown.entry(kind).or_default() += n;
    }

    /// What nodes sent that this coordinator does not know, since start, for every kind.
    pub fn unknown_totals(&self) -> Vec<(Unknown, u64)> {
        let state = self.state.lock().expect("registry lock");
        Unknown::ALL.iter().map(|kind| (*kind, state.unknown.get(kind).copied().unwrap_or(0))).collect()
    }

    /// Registers a new session for `hello.name`, replacing any earlier one, and returns its id.
    pub fn open_session(&self, hello: NodeHello, address: Option<SocketAddr>, outbound: mpsc::Sender<Outbound>) -> u64 {
        let mut state = self.state.lock().expect("registry lock");
        state.next_session += 1;
        let id = state.next_session;
        let now = SystemTime::now();
        let info = NodeInfo {
            hello: hello.clone(),
            connected: true,
            address,
            connected_at: now,
            last_seen: now,
            heard: tokio::time::Instant::now(),
            spool_depth: 0,
            spool_dropped: 0,
        };
        let entry = state.nodes.entry(hello.name.clone()).or_insert_with(|| NodeEntry {
            info: info.clone(),
            session: None,
            processed: (hello.stream_id.clone(), 0),
            snapshot_parts: None,
        });
        if entry.processed.0 != hello.stream_id {
            entry.processed = (hello.stream_id.clone(), 0);
        }
        entry.info = info;
        entry.session = Some((id, outbound));
        id
    }

    /// Marks the session closed, unless a newer session for the node replaced it.
    pub fn close_session(&self, node: &str, session: u64) {
        let mut state = self.state.lock().expect("registry lock");
        if let Some(entry) = state.nodes.get_mut(node)
            && entry.session.as_ref().is_some_and(|(id, _)| *id == session)
        {
            entry.session = None;
            entry.info.connected = false;
        }
    }

    /// Records that the node was heard from now.
    pub fn touch(&self, node: &str) {
        if let Some(entry) = self.state.lock().expect("registry lock").nodes.get_mut(node) {
            entry.info.last_seen = SystemTime::now();
            entry.info.heard = tokio::time::Instant::now();
        }
    }

    /// Records a heartbeat's spool figures; returns how many more messages the node dropped since the last.
    pub fn heartbeat(&self, node: &str, spool_depth: u64, spool_dropped: u64) -> u64 {
        let mut state = self.state.lock().expect("registry lock");
        let Some(entry) = state.nodes.get_mut(node) else { return 0 };
        let newly_dropped = spool_dropped.saturating_sub(entry.info.spool_dropped);
        entry.info.spool_depth = spool_depth;
        entry.info.spool_dropped = spool_dropped;
        newly_dropped
    }

    /// The highest sequence number of the node's current stream processed so far (0: none).
    pub fn processed_seq(&self, node: &str) -> u64 {
        self.state.lock().expect("registry lock").nodes.get(node).map_or(0, |entry| entry.processed.1)
    }

    /// Whether message `seq` of the node's current stream was processed already (a replay).
    /// Messages numbered 0 are unsequenced and never count as processed.
    pub fn already_processed(&self, node: &str, seq: u64) -> bool {
        let state = self.state.lock().expect("registry lock");
        seq != 0 && state.nodes.get(node).is_some_and(|entry| seq <= entry.processed.1)
    }

    /// Remembers that message `seq` of the node's current stream was processed (or, at a session's start,
    /// that the state store says some coordinator processed it).
    pub fn mark_processed(&self, node: &str, seq: u64) {
        if let Some(entry) = self.state.lock().expect("registry lock").nodes.get_mut(node) {
            entry.processed.1 = entry.processed.1.max(seq);
        }
    }

    /// Replaces everything known of the node's containers with this snapshot (its first
    /// [`IntakeLimits::containers_per_node`]; returns how many beyond it were not kept); the containers
    /// still there keep their samples and anomalies. Touches this node's containers only.
    pub fn replace_containers(&self, node: &str, containers: Vec<ContainerFacts>) -> u64 {
        let mut state = self.state.lock().expect("registry lock");
        let mut previous = state.containers.remove(node).unwrap_or_default();
        let now = SystemTime::now();
        let mut replaced = NodeContainers::new();
        let mut refused = 0;
        for facts in containers {
            if !replaced.contains_key(&facts.id) && replaced.len() >= self.limits.containers_per_node {
                refused += 1;
                continue;
            }
            let mut entry =
                previous.remove(&facts.id).unwrap_or_else(|| Box::new(ContainerEntry::new(node, facts.clone())));
            entry.facts = facts;
            entry.updated_at = now;
            replaced.insert(entry.facts.id.clone(), entry);
        }
        state.containers.insert(node.to_owned(), replaced);
        state.changed(node);
        if refused > 0 {
            *state.cuts.entry(Limit::Containers).or_default() += refused;
        }
        refused
    }

    /// Records one part of a snapshot sent in parts (`part` from 0, `more` on all but the last): each part's
    /// containers are recorded as they come; after the last part, the node's containers that no part listed
    /// are forgotten, unless a part was missed here (then the next snapshot settles it).
    /// Containers beyond [`IntakeLimits::containers_per_node`] are not kept (the count is returned): while
    /// a snapshot's parts come in, the containers no part listed yet still count, so a node at its limit
    /// keeps its first containers until the last part is in.
    pub fn snapshot_part(&self, node: &str, part: u32, more: bool, containers: Vec<ContainerFacts>) -> u64 {
        let mut state = self.state.lock().expect("registry lock");
        let Some(entry) = state.nodes.get_mut(node) else { return 0 };
        let mut parts = match (part, entry.snapshot_parts.take()) {
            (0, _) => Some((0, BTreeSet::new())),
            (part, Some((next, seen))) if part == next => Some((next, seen)),
            _ => None,
        };
        let now = SystemTime::now();
        let mut refused = 0;
        for facts in containers {
            let id = facts.id.clone();
            let Some(entry) = state.admit(node, &facts, self.limits.containers_per_node) else {
                refused += 1;
                continue;
            };
            entry.facts = facts;
            entry.updated_at = now;
            // Only what is kept is remembered: the set cannot outgrow the limit.
            if let Some((_, seen)) = parts.as_mut() {
                seen.insert(id);
            }
        }
        if let Some((next, _)) = parts.as_mut() {
            *next += 1;
        }
        state.changed(node);
        match parts {
            Some((_, seen)) if !more => state.of_node_mut(node).retain(|id, _| seen.contains(id)),
            parts => {
                if let Some(entry) = state.nodes.get_mut(node) {
                    entry.snapshot_parts = parts;
                }
            }
        }
        refused
    }

    /// Records one container's latest facts; returns false when it is a new container beyond the node's
    /// limit (not kept).
    pub fn update_container(&self, node: &str, facts: ContainerFacts) -> bool {
        let mut state = self.state.lock().expect("registry lock");
        let Some(entry) = state.admit(node, &facts, self.limits.containers_per_node) else { return false };
        entry.facts = facts;
        entry.updated_at = SystemTime::now();
        state.changed(node);
        true
    }

    /// Records a container's anomalies as of its latest alert (a container not kept has none recorded).
    pub fn set_anomalies(&self, node: &str, facts: &ContainerFacts, anomalies: &[Anomaly]) {
        let mut state = self.state.lock().expect("registry lock");
        let Some(entry) = state.containers.get_mut(node).and_then(|c| c.get_mut(&facts.id)) else { return };
        // Exit anomalies are occurrences, not standing conditions.
        entry.anomalies = anomalies
            .iter()
            .filter(|a| !matches!(a.kind, AnomalyKind::NonZeroExit | AnomalyKind::OomKilled))
            .copied()
            .collect();
        state.changed(node);
    }

    /// Removes cleared anomalies.
    pub fn clear_anomalies(&self, node: &str, container_id: &str, cleared: &[AnomalyKind]) {
        let mut state = self.state.lock().expect("registry lock");
        if let Some(entry) = state.containers.get_mut(node).and_then(|c| c.get_mut(container_id)) {
            entry.anomalies.retain(|a| !cleared.contains(&a.kind));
            state.changed(node);
        }
    }

    /// Shows (or, with `None`, takes away) the container's running episode.
    pub fn set_episode(&self, node: &str, container_id: &str, episode: Option<Episode>) {
        let mut state = self.state.lock().expect("registry lock");
        if let Some(entry) = state.containers.get_mut(node).and_then(|c| c.get_mut(container_id))
            && entry.episode != episode
        {
            entry.episode = episode;
            state.changed(node);
        }
    }

    /// Records a poll's samples.
    pub fn record_metrics(&self, node: &str, samples: Vec<(String, Metrics)>) {
        let mut state = self.state.lock().expect("registry lock");
        let Some(containers) = state.containers.get_mut(node) else { return };
        for (id, metrics) in samples {
            if let Some(entry) = containers.get_mut(&id) {
                entry.recent.push(&metrics);
                entry.metrics = Some(metrics);
            }
        }
    }

    /// Forgets a removed container.
    pub fn remove_container(&self, node: &str, container_id: &str) {
        let mut state = self.state.lock().expect("registry lock");
        if let Some(containers) = state.containers.get_mut(node)
            && containers.remove(container_id).is_some()
        {
            state.changed(node);
        }
    }

    /// Hands a command to the node's session.
    pub fn send(&self, node: &str, message: Outbound) -> Result<(), NodeNotConnected> {
        let sender = {
            let state = self.state.lock().expect("registry lock");
            state.nodes.get(node).and_then(|entry| entry.session.as_ref()).map(|(_, tx)| tx.clone())
        };
        let sender = sender.ok_or_else(|| NodeNotConnected(node.to_owned()))?;
        sender.try_send(message).map_err(|_| NodeNotConnected(node.to_owned()))
    }

    /// Whether the node has a session open here.
    pub fn is_connected(&self, node: &str) -> bool {
        self.state.lock().expect("registry lock").nodes.get(node).is_some_and(|entry| entry.session.is_some())
    }

    /// What `node` said it executes (nothing known of a node not connected here: all assumed).
    pub fn abilities(&self, node: &str) -> NodeAbilities {
        let state = self.state.lock().expect("registry lock");
        state.nodes.get(node).map(|entry| entry.info.hello.abilities.clone()).unwrap_or_default()
    }

    /// Every known node, by name.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.state.lock().expect("registry lock").nodes.values().map(|entry| entry.info.clone()).collect()
    }

    /// How many containers are known here.
    pub fn container_count(&self) -> usize {
        self.state.lock().expect("registry lock").containers.values().map(BTreeMap::len).sum()
    }

    /// Every known container (of one node, if given), by node then name.
    pub fn containers(&self, node: Option<&str>) -> Vec<ContainerEntry> {
        let state = self.state.lock().expect("registry lock");
        let mut list: Vec<ContainerEntry> = match node {
            Some(node) => Self::of_node(&state, node).cloned().collect(),
            None => state.containers.values().flat_map(|c| c.values()).map(|e| ContainerEntry::clone(e)).collect(),
        };
        list.sort_by(|a, b| (&a.node, &a.facts.name).cmp(&(&b.node, &b.facts.name)));
        list
    }

    /// The container `container_id` of `node`, if known here.
    pub fn container(&self, node: &str, container_id: &str) -> Option<ContainerEntry> {
        let state = self.state.lock().expect("registry lock");
        state.containers.get(node)?.get(container_id).map(|e| ContainerEntry::clone(e))
    }

    /// The container named `name` on `node`, if known here.
    pub fn container_named(&self, node: &str, name: &str) -> Option<ContainerEntry> {
        let state = self.state.lock().expect("registry lock");
        Self::of_node(&state, node).find(|c| c.facts.name == name).cloned()
    }

    /// The names of the nodes with containers known here, sorted.
    pub fn container_nodes(&self) -> Vec<String> {
        let state = self.state.lock().expect("registry lock");
        state.containers.iter().filter(|(_, containers)| !containers.is_empty()).map(|(node, _)| node.clone()).collect()
    }

    /// At most `limit` of the node's containers whose names come after `after` (from the first when
    /// `None`), by name: a page costs O(the node's containers), whatever the size of the fleet.
    pub fn containers_after(&self, node: &str, after: Option<&str>, limit: usize) -> Vec<ContainerEntry> {
        let state = self.state.lock().expect("registry lock");
        let mut page: Vec<&ContainerEntry> =
            Self::of_node(&state, node).filter(|c| after.is_none_or(|after| c.facts.name.as_str() > after)).collect();
        page.sort_by(|a, b| a.facts.name.cmp(&b.facts.name));
        page.into_iter().take(limit).cloned().collect()
    }

    /// The node's counts and its first `attention` containers that need attention, by name.
    pub fn summary(&self, node: &str, attention: usize) -> NodeSummary {
        let state = self.state.lock().expect("registry lock");
        let (mut containers, mut anomalies) = (0, 0);
        let mut needing: Vec<&ContainerEntry> = Vec::new();
        for entry in Self::of_node(&state, node) {
            containers += 1;
            anomalies += entry.anomalies.len();
            if entry.needs_attention() {
                needing.push(entry);
            }
        }
        needing.sort_by(|a, b| a.facts.name.cmp(&b.facts.name));
        NodeSummary { containers, anomalies, attention: needing.into_iter().take(attention).cloned().collect() }
    }

    /// How many times the node's containers changed other than by a sample (0: never): equal figures mean
    /// nothing but samples changed in between.
    pub fn changes(&self, node: &str) -> u64 {
        self.state.lock().expect("registry lock").changes.get(node).copied().unwrap_or(0)
    }

    /// The wire form of one node's containers (latest sample only; no history is copied).
    pub fn containers_to_proto(&self, node: &str) -> Vec<hemostat_proto::v1::Container> {
        let state = self.state.lock().expect("registry lock");
        Self::of_node(&state, node).map(ContainerEntry::to_proto).collect()
    }

    /// One node's entries.
    fn of_node<'a>(state: &'a State, node: &str) -> impl Iterator<Item = &'a ContainerEntry> + 'a {
        state.containers.get(node).into_iter().flat_map(|c| c.values()).map(|e| &**e)
    }

    /// Closes every session: their outbound streams end, so their RPCs can finish.
    pub fn close_all_sessions(&self) {
        let mut state = self.state.lock().expect("registry lock");
        for entry in state.nodes.values_mut() {
            entry.session = None;
            entry.info.connected = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(id: &str) -> ContainerFacts {
        ContainerFacts::from(&hemostat_proto::v1::ContainerState {
            id: id.into(),
            name: id.into(),
            ..Default::default()
        })
    }

    fn sample() -> Metrics {
        Metrics { sampled_at: Some(SystemTime::now()), memory_used: 7 << 10, ..Default::default() }
    }

    #[test]
    fn a_page_of_a_nodes_containers_starts_after_a_name_and_reads_that_node_only() {
        let registry = Registry::default();
        let named = |name: &str| ContainerFacts { name: name.into(), ..facts(&format!("id-{name}")) };
        registry.replace_containers("a", ["web", "api", "db", "cache"].map(named).to_vec());
        registry.replace_containers("b", vec![named("zzz")]);
        let page = |after, limit| {
            registry.containers_after("a", after, limit).into_iter().map(|c| c.facts.name).collect::<Vec<_>>()
        };
        assert_eq!(page(None, 2), ["api", "cache"]);
        assert_eq!(page(Some("cache"), 10), ["db", "web"]);
        assert_eq!(page(Some("web"), 10), Vec::<String>::new());
        assert_eq!(registry.container_nodes(), ["a", "b"]);
        assert_eq!(registry.container_named("a", "db").map(|c| c.facts.id), Some("id-db".to_owned()));
        assert_eq!(registry.container("a", "id-db").map(|c| c.facts.name), Some("db".to_owned()));
        assert!(registry.container("b", "id-db").is_none());
    }

    #[test]
    fn samples_do_not_count_as_changes_and_everything_else_does() {
        let registry = Registry::default();
        registry.replace_containers("a", vec![facts("a1"), facts("a2")]);
        let seen = std::cell::Cell::new(registry.changes("a"));
        let changed = |what: &str| {
            let now = registry.changes("a");
            assert_ne!(now, seen.replace(now), "{what} is a change");
        };
        registry.record_metrics("a", vec![("a1".into(), sample())]);
        assert_eq!(registry.changes("a"), seen.get(), "a sample is not a change");
        registry.update_container("a", ContainerFacts { status: Status::Exited, ..facts("a1") });
        changed("a container's new facts");
        let anomaly = Anomaly {
            kind: AnomalyKind::HighCpu,
            severity: crate::container::Severity::High,
            threshold: 85.0,
            actual: 90.0,
        };
        registry.set_anomalies("a", &facts("a2"), &[anomaly]);
        changed("an anomaly");
        registry.clear_anomalies("a", "a2", &[AnomalyKind::HighCpu]);
        changed("an anomaly cleared");
        registry.remove_container("a", "a2");
        changed("a container gone");
        registry.remove_container("a", "a2");
        assert_eq!(registry.changes("a"), seen.get(), "forgetting what is not there changes nothing");
        assert_eq!(registry.changes("b"), 0, "another node's figure is its own");
        let summary = registry.summary("a", 10);
        assert_eq!((summary.containers, summary.anomalies), (1, 0));
        assert_eq!(summary.attention.iter().map(|c| c.facts.id.as_str()).collect::<Vec<_>>(), ["a1"], "exited");
    }

    #[test]
    fn actions_a_newer_node_names_in_its_hello_are_left_out() {
        use hemostat_proto::v1 as pb;
        let abilities = NodeAbilities::from_hello(&[pb::Action::Restart as i32, 99], &[]);
        assert!(abilities.allows(Action::Restart));
        assert!(!abilities.allows(Action::Exec), "a node that names its actions executes only those");
        let only_newer = NodeAbilities::from_hello(&[99], &[]);
        assert!(!Action::ALL.into_iter().any(|a| only_newer.allows(a)), "none this coordinator knows");
    }

    #[test]
    fn a_snapshot_replaces_its_own_nodes_containers_and_no_other() {
        let registry = Registry::default();
        registry.replace_containers("a", vec![facts("a1"), facts("a2")]);
        registry.replace_containers("b", vec![facts("b1")]);
        registry.record_metrics("a", vec![("a1".into(), sample())]);
        registry.replace_containers("a", vec![facts("a1"), facts("a3")]);
        let names = |node| registry.containers(Some(node)).into_iter().map(|c| c.facts.id).collect::<Vec<_>>();
        assert_eq!(names("a"), ["a1", "a3"]);
        assert_eq!(names("b"), ["b1"], "another node's snapshot leaves b's containers alone");
        let a1 = registry.containers(Some("a")).into_iter().find(|c| c.facts.id == "a1").unwrap();
        assert_eq!(a1.recent.len(), 1, "a container still there keeps its samples");
    }

    #[test]
    fn a_thousand_nodes_of_a_hundred_containers_register_and_reregister_in_time_proportional_to_them() {
        // One map per node: a snapshot touches its own node's containers only. Re-snapshotting the whole
        // map on each (as the registry once did) makes this 1,000 × 100,000 entry moves: minutes, not
        // the second or so this takes in a debug build.
        let registry = Registry::default();
        let started = std::time::Instant::now();
        for round in 0..2 {
            for node in 0..1000 {
                let name = format!("node-{node:04}");
                registry.replace_containers(&name, (0..100).map(|i| facts(&format!("{node}-{i}"))).collect());
                if round == 1 {
                    registry.record_metrics(&name, vec![(format!("{node}-7"), Metrics::default())]);
                }
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
        assert_eq!(registry.containers(None).len(), 100_000);
        assert_eq!(registry.containers(Some("node-0999")).len(), 100);
    }

    #[test]
    fn a_snapshot_in_parts_replaces_the_nodes_containers_once_its_last_part_is_in() {
        let registry = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let hello = NodeHello { name: "a".into(), stream_id: "s".into(), ..NodeHello::default() };
        registry.open_session(hello, None, tx);
        registry.replace_containers("a", vec![facts("old"), facts("a1")]);
        registry.record_metrics("a", vec![("a1".into(), sample())]);
        let ids = || registry.containers(Some("a")).into_iter().map(|c| c.facts.id).collect::<Vec<_>>();
        registry.snapshot_part("a", 0, true, vec![facts("a1")]);
        registry.snapshot_part("a", 1, true, vec![facts("a2")]);
        assert_eq!(ids(), ["a1", "a2", "old"], "nothing is forgotten before the last part");
        registry.snapshot_part("a", 2, false, vec![facts("a3")]);
        assert_eq!(ids(), ["a1", "a2", "a3"], "the one no part listed is gone");
        assert_eq!(registry.containers(Some("a"))[0].recent.len(), 1, "a container still there keeps its samples");
        registry.snapshot_part("a", 1, true, vec![facts("b1")]);
        registry.snapshot_part("a", 2, false, vec![facts("b2")]);
        assert_eq!(ids(), ["a1", "a2", "a3", "b1", "b2"], "with its first part missed, nothing is forgotten");
    }

    #[test]
    fn a_published_node_reads_back_as_it_was_but_for_its_stream_id() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_123);
        let node = NodeInfo {
            hello: NodeHello {
                name: "host-a".into(),
                version: "1.2".into(),
                stream_id: "s".into(),
                hostname: "h".into(),
                abilities: Default::default(),
            },
            connected: true,
            address: Some("10.0.0.7:51000".parse().unwrap()),
            connected_at: at,
            last_seen: at + std::time::Duration::from_secs(5),
            heard: tokio::time::Instant::now(),
            spool_depth: 3,
            spool_dropped: 1,
        };
        let back = NodeInfo::from_proto(&node.to_proto());
        assert_eq!(back.to_proto(), node.to_proto());
        assert_eq!((back.address, back.last_seen), (node.address, node.last_seen));
        assert_eq!(back.hello.stream_id, "", "stream ids stay with the session");
        let unknown =
            NodeInfo::from_proto(&hemostat_proto::v1::Node { address: "nowhere".into(), ..Default::default() });
        assert_eq!(unknown.address, None);
    }
}
