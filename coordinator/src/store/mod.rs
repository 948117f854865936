//! The state store: everything that must outlive a coordinator or be shared by coordinator replicas.
//!
//! One narrow trait per concern ([`BudgetStore`], [`EventLog`], [`HistoryStore`], [`SettingsStore`],
//! [`DirectoryStore`]), all of them together [`StateStore`], and two backends that pass one conformance suite
//! (`tests/tests/integration/store_conformance.rs`): [`redis::RedisStore`] for fleets (shared by every
//! coordinator; each decision one round trip, by Lua; on one server or a Redis Cluster) and [`embedded::EmbeddedStore`] for a single host (a
//! redb file; chosen when no Redis is configured). Errors are backend-neutral ([`StoreError`]).

pub mod cluster_slots;
pub mod embedded;
pub mod redis;

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use async_trait::async_trait;

use crate::analysis::HistoryEntry;

use crate::events::{AuditRetention, EventId, EventRecord, EventRetention, StoredEvent};
use crate::policy::{Budget, BudgetState, BudgetVerdict, Draw};
use crate::silence::Silence;

/// Why the store could not answer. Backend-neutral: each backend converts its own errors into these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or failed to answer (a lost connection, an I/O error, a failed
    /// worker): the operation may succeed later.
    #[error("{backend}: {message}")]
    Unavailable {
        /// Which backend: `redis` or `embedded store`.
        backend: &'static str,
        /// What it said.
        message: String,
    },
    /// A stored value could not be decoded (written by an incompatible version, or damaged).
    #[error("stored value is damaged: {0}")]
    Corrupt(String),
}

/// The safety policy's shared counters: each container's budget and the storm breaker's windows.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Checks `budget` for the container `key` at `now_ms` and, when allowed, records the attempt (under
    /// backoff, with the jitter `draw`): one atomic step, so that two coordinators can never both be allowed
    /// within one cooldown. On the [`DecisionClock::Store`] clock `now_ms` is not used: the store reads its own.
    async fn try_begin_action(
        &self,
        key: &str,
        now_ms: u64,
        budget: &Budget,
        draw: Draw,
    ) -> Result<BudgetVerdict, StoreError>;

    /// Records an action that already happened on the container `key` at `at_ms` (a node's local policy),
    /// so that the cooldown and the breaker count it.
    async fn record_attempt(&self, key: &str, at_ms: u64, budget: &Budget) -> Result<(), StoreError>;

    /// Records the verified result of an action on the container `key`, for the circuit breaker (at `now_ms`,
    /// or on the [`DecisionClock::Store`] clock at the store's time).
    async fn record_outcome(&self, key: &str, success: bool, now_ms: u64, budget: &Budget) -> Result<(), StoreError>;

    /// Releases the container `key` from quarantine at an admin's word: forgets its budget (attempts,
    /// failures, cooldown, backoff run), so the next problem is acted on. Returns the state it had.
    async fn release(&self, key: &str) -> Result<BudgetState, StoreError>;

    /// The container `key`'s budget state as stored (for people; decisions use `try_begin_action`).
    async fn read_budget(&self, key: &str) -> Result<BudgetState, StoreError>;

    /// The budget states of `keys`, in their order, read in one go (a page of containers for people: one
    /// read transaction, or one round trip to a Redis server, instead of one per container).
    async fn read_budgets(&self, keys: &[String]) -> Result<Vec<BudgetState>, StoreError>;

    /// Notes that the container `member` needs remediation now, in each of `scopes` (the fleet, its node),
    /// and says whether any scope has more than `storm.threshold` containers needing it within
    /// `storm.window`: a storm. Atomic, and shared by every coordinator on the store.
    async fn note_need(
        &self,
        scopes: &[String],
        member: &str,
        now_ms: u64,
        storm: &StormConfig,
    ) -> Result<StormVerdict, StoreError>;

    /// Ends every storm: clears the windows of all scopes; returns the scopes that were in a storm.
    async fn end_storms(&self) -> Result<Vec<String>, StoreError>;
}

/// The event log and the audit log: append-only, ordered by [`EventId`], trimmed as they grow.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event to the log and returns its id. Ids increase. Trims the log as it goes: at most
    /// `retention.max_per_type` events of each type, none older than `retention.max_age`.
    async fn append_event(&self, record: &EventRecord, retention: &EventRetention) -> Result<EventId, StoreError>;

    /// Reads up to `limit` events, oldest first, strictly after `after` (from the start when `None`).
    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// Appends a record to the audit log (decisions, actions, results, approvals), dropping what is older
    /// than `retention.max_age` and the oldest beyond `retention.max_entries`.
    async fn append_audit(&self, record: &EventRecord, retention: &AuditRetention) -> Result<EventId, StoreError>;

    /// Reads up to `limit` audit records, oldest first, strictly after `after`.
    async fn read_audit(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
}

/// Each container's recent alerts, for the analysis.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Adds an alert to the container `key`'s history, keeping the newest `keep` within `ttl` of `now_ms`.
    async fn append_history(
        &self,
        key: &str,
        entry: &HistoryEntry,
        keep: usize,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The container `key`'s history within `ttl` of `now_ms`, oldest first.
    async fn history(&self, key: &str, now_ms: u64, ttl: Duration) -> Result<Vec<HistoryEntry>, StoreError>;
}

/// What operators set at runtime: silences, dry-run, and the decisions waiting for their approval.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Keeps a silence until it expires (replacing one with the same id).
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError>;

    /// Removes the silence `id`; returns it if it was there.
    async fn remove_silence(&self, id: &str) -> Result<Option<Silence>, StoreError>;

    /// The silences in force at `now_ms` (expired ones are dropped), soonest to expire first.
    async fn silences(&self, now_ms: u64) -> Result<Vec<Silence>, StoreError>;

    /// Dry-run as an operator set it at runtime (`SetDryRun`); `None` when no operator has, and the
    /// configuration decides.
    async fn dry_run_override(&self) -> Result<Option<bool>, StoreError>;

    /// Sets dry-run for every coordinator on this store, until changed again.
    async fn set_dry_run_override(&self, enabled: bool) -> Result<(), StoreError>;

    /// Keeps a decision that waits for an admin's approval, until `approval.expires_ms`.
    async fn put_approval(&self, id: &str, approval: &PendingApproval) -> Result<(), StoreError>;

    /// Takes (reads and removes, atomically) the approval `id`, so only one admin can approve it once.
    async fn take_approval(&self, id: &str) -> Result<Option<PendingApproval>, StoreError>;

    /// Keeps an alert of `node` that waits for its (slow, LLM) analysis, `alert` its encoded form, under
    /// `id`, unless `node` already has `max` waiting; returns whether it was kept. Kept at most
    /// [`PENDING_ANALYSIS_TTL`] after the node's latest.
    async fn put_pending_analysis(&self, node: &str, id: &str, alert: &[u8], max: usize) -> Result<bool, StoreError>;

    /// Removes the alert `id` of `node` once it is decided; returns whether it was still waiting (`false`:
    /// another coordinator took it over, and decides it).
    async fn finish_pending_analysis(&self, node: &str, id: &str) -> Result<bool, StoreError>;

    /// Takes (reads and removes, atomically) every alert of `node` waiting for analysis: the coordinator
    /// that now holds the node's session decides them.
    async fn take_pending_analyses(&self, node: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// How long an alert waiting for analysis is kept in the store: far longer than an analysis may take
/// (`AI_TIMEOUT_SECONDS`), short enough that a node gone for good leaves nothing behind for long.
pub const PENDING_ANALYSIS_TTL: Duration = Duration::from_secs(3600);

/// How coordinators sharing a store find each other's nodes and hand each other commands.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Publishes what this coordinator knows of the node `node` for the other coordinators: its `summary`
    /// (small, written at every publication) and, when given, its whole `entry` (every container; written
    /// only when it changed). Without an `entry` the one published earlier is kept, its expiry renewed; when
    /// there is none any more (it expired) nothing of the node is written and the answer is `false`: publish
    /// it whole. Both expire once `ttl` passes without a publication.
    async fn put_directory_entry(
        &self,
        node: &str,
        summary: &[u8],
        entry: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// The names of the nodes in the directory, sorted (a node whose entries just expired may still be
    /// among them: its reads then find nothing).
    async fn directory_nodes(&self) -> Result<Vec<String>, StoreError>;

    /// Every node the directory lists, by name, with its summary if it has not expired: `None` for a node
    /// whose whole entry alone is live (as a coordinator older than summaries publishes). One read of the
    /// name set; the names of nodes with neither are forgotten.
    async fn directory_summaries(&self) -> Result<Vec<(String, Option<Vec<u8>>)>, StoreError>;

    /// The directory summary of the node `node`, if it has not expired.
    async fn directory_summary(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The whole directory entry of the node `node`, if it has not expired.
    async fn directory_entry(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Queues an encoded command for the coordinator instance `coordinator` (which holds the node's session).
    async fn route_command(&self, coordinator: &str, command: &[u8]) -> Result<(), StoreError>;

    /// Takes the oldest command queued for the coordinator instance `coordinator`, if any.
    async fn take_routed_command(&self, coordinator: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The highest sequence number of `node`'s message stream `stream` that any coordinator on this store
    /// has processed (0: none), so that a report processed by one coordinator and sent again to another
    /// after a failover is recognised as a repeat.
    async fn stream_position(&self, node: &str, stream: &str) -> Result<u64, StoreError>;

    /// Records that `node`'s message `seq` of `stream` was processed: the position only grows, and is kept
    /// for [`STREAM_POSITION_TTL`] after the last message.
    async fn advance_stream(&self, node: &str, stream: &str, seq: u64) -> Result<(), StoreError>;
}

/// How long a node's stream position is kept after its last processed message: longer than any spool
/// outlives a disconnection in practice (a node away longer starts from its own acknowledgement file).
pub const STREAM_POSITION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// "The store": everything the coordinator keeps, one backend behind every concern. Parts of the coordinator
/// hold the narrower trait they need (an `Arc<dyn StateStore>` coerces to `Arc<dyn EventLog>`, ...).
pub trait StateStore: BudgetStore + EventLog + HistoryStore + SettingsStore + DirectoryStore + 'static {
    /// Why what the store keeps (cooldowns, budgets, the event and audit logs) would not survive a restart of
    /// its servers, e.g. a Redis without append-only persistence; `None` when it would. The coordinator refuses
    /// such a store unless `REDIS_ALLOW_VOLATILE` says otherwise.
    fn volatility(&self) -> Option<String> {
        None
    }

    /// The backend's name for logs: `redis` or `embedded`.
    fn backend(&self) -> &'static str;

    /// Whether other coordinators can share this store (and so need the fleet directory and routing).
    fn is_shared(&self) -> bool;
}

/// A decision waiting for an admin's approval.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingApproval {
    /// The node the container is on.
    pub node: String,
    /// The container's id.
    pub container_id: String,
    /// The container's name.
    pub container_name: String,
    /// The container's budget key.
    pub budget_key: String,
    /// The action to take.
    pub action: crate::events::Action,
    /// For `exec`: the command's argument vector (absent in what older coordinators stored).
    #[serde(default)]
    pub argv: Vec<String>,
    /// When the approval expires, Unix milliseconds.
    pub expires_ms: u64,
}

/// The storm breaker's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StormConfig {
    /// More containers than this needing remediation within the window is a storm.
    pub threshold: u32,
    /// The window.
    pub window: Duration,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig { threshold: 5, window: Duration::from_secs(60) }
    }
}

/// What [`BudgetStore::note_need`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StormVerdict {
    /// No storm: act as usual.
    Calm,
    /// A storm in `scope`: do not act automatically.
    Storm {
        /// The scope that storms (`fleet` or `node:<name>`).
        scope: String,
        /// Whether this call started it (raise the one `storm` alert).
        started: bool,
        /// The containers needing remediation in the window.
        members: Vec<String>,
    },
}

/// Whose clock the budget decisions ([`BudgetStore::try_begin_action`], [`BudgetStore::record_outcome`]) are
/// taken on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecisionClock {
    /// The store's own: Redis's `TIME`, read inside the script, or the host's clock for the embedded store
    /// (one host, one coordinator). The `now_ms` callers pass is not used, so coordinators whose clocks
    /// disagree still allow one action per cooldown. What coordinators use.
    #[default]
    Store,
    /// The `now_ms` the caller passes: for tests that inject the time.
    Caller,
}

impl DecisionClock {
    /// The time of a decision: the caller's `now_ms`, or the host's clock for [`DecisionClock::Store`] (the
    /// embedded store's own clock).
    fn host_or(self, now_ms: u64) -> u64 {
        match self {
            DecisionClock::Store => crate::events::unix_ms(std::time::SystemTime::now()),
            DecisionClock::Caller => now_ms,
        }
    }
}

/// Which backend to open.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// A Redis server, by URL (`redis://[:password@]host:port[/db]`).
    Redis {
        /// The server's URL.
        url: String,
    },
    /// A Redis Cluster, by seed nodes.
    RedisCluster(redis::ClusterSettings),
    /// An embedded database in this file.
    Embedded {
        /// The database file; created when missing.
        path: PathBuf,
    },
}

/// Opens the configured backend, deciding budgets on its own clock ([`DecisionClock::Store`]).
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn StateStore>, StoreError> {
    open_with_clock(config, DecisionClock::Store).await
}

/// Opens the configured backend, deciding budgets on `clock`.
pub async fn open_with_clock(config: &StoreConfig, clock: DecisionClock) -> Result<Arc<dyn StateStore>, StoreError> {
    Ok(match config {
        StoreConfig::Redis { url } => Arc::new(redis::RedisStore::connect(url).await?.with_clock(clock)),
        StoreConfig::RedisCluster(settings) => {
            Arc::new(redis::RedisStore::connect_cluster(settings).await?.with_clock(clock))
        }
        StoreConfig::Embedded { path } => {
            Arc::new(embedded::EmbeddedStore::open(path.clone()).await?.with_clock(clock))
        }
    })
}

fn decode_event(json: &[u8]) -> Result<EventRecord, StoreError> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("event: {e}")))
}

fn decode_history(json: &[u8]) -> Result<HistoryEntry, StoreError> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("history: {e}")))
}

/// Entries within `ttl` of `now_ms`, oldest first.
fn fresh(mut entries: Vec<HistoryEntry>, now_ms: u64, ttl: Duration) -> Vec<HistoryEntry> {
    entries.retain(|e| now_ms.saturating_sub(e.time_ms) <= ttl.as_millis() as u64);
    entries.sort_by_key(|e| e.time_ms);
    entries
}

fn encode_event(record: &EventRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("event records always serialize")
}

fn decode_silence(json: &[u8]) -> Result<Silence, StoreError> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("silence: {e}")))
}

/// The silences among `all` in force at `now_ms`, soonest to expire first, and the ids of expired ones.
fn in_force(all: Vec<Silence>, now_ms: u64) -> (Vec<Silence>, Vec<String>) {
    let (mut live, expired): (Vec<Silence>, Vec<Silence>) = all.into_iter().partition(|s| s.expires_ms > now_ms);
    live.sort_by(|a, b| (a.expires_ms, &a.id).cmp(&(b.expires_ms, &b.id)));
    (live, expired.into_iter().map(|s| s.id).collect())
}
