//! The Redis backend: shared by every coordinator of a fleet, on one Redis server or a Redis Cluster.
//!
//! # Connections
//! [`RedisStore::connect`] opens one server (a [`ConnectionManager`] that reconnects by itself);
//! [`RedisStore::connect_cluster`] opens a Redis Cluster from seed nodes with the redis crate's cluster client,
//! which learns the slot map, follows `MOVED`/`ASK` redirects, and refreshes the map and retries when a master
//! fails and its replica takes over. Every store method runs on one [`Connection`], whichever it is. The one
//! read of many keys of many slots (a page's budgets) goes around the client's one-slot pipelines: one
//! pipeline per master, from the slot map of [`super::cluster_slots`].
//!
//! # Key layout
//! Every script and multi-key command touches keys of one hash slot only: the part of a key in `{…}` (its
//! hash tag) decides the slot, and keys used together share a tag.
//!
//! | keys | what | tag |
//! |---|---|---|
//! | `hemostat:{<container key>}:budget` (hash: `last_action_ms`, `failures`, `last_failure_ms`, and under backoff `streak`, `next_action_ms`), `hemostat:{<container key>}:attempts` (sorted set of attempt times) | one container's budget; a decision is one `EVALSHA` of [`BUDGET_SCRIPT`], on the server's clock (`TIME`) | the container |
//! | `hemostat:{<container key>}:history` | its recent alerts, newest first, trimmed and expiring | the container |
//! | `hemostat:{events}` (stream), `hemostat:{events}:by_type:<kind>` (lists of ids) | the event log, appended and trimmed by [`APPEND_EVENT_SCRIPT`] | `events` |
//! | `hemostat:{audit}` (stream) | the audit log | `audit` |
//! | `hemostat:{storm}:<scope>:window`, `hemostat:{storm}:<scope>:active`, `hemostat:{storm}:scopes` (set of scopes) | the storm breaker; the set lists the scopes so that ending storms reads no keyspace | `storm` |
//! | `hemostat:silences` (hash), `hemostat:settings:dry_run`, `hemostat:approval:<id>` | operators' settings | one key each |
//! | `hemostat:directory` (set of node names), `hemostat:directory:<node>` (expiring: the node and every container), `hemostat:directory-summary:<node>` (expiring: the node, its counts, the containers needing attention) | the fleet directory: entries spread over the cluster; summaries read with one `MGET` the cluster client splits by slot, entries one at a time | one key each |
//! | `hemostat:coordinator:<instance>:commands` (list) | commands routed to a coordinator | one key |
//! | `hemostat:pending:<node>` (hash: id → encoded alert, expiring) | a node's alerts waiting for their analysis, kept by [`PUT_PENDING_SCRIPT`], taken by [`TAKE_PENDING_SCRIPT`] | one key |
//! | `hemostat:stream:<node>:<stream id>` | the highest sequence number of a node's message stream processed, raised by [`STREAM_SCRIPT`] | one key |
//!
//! Nothing scans the keyspace (`KEYS`, `SCAN`): in a cluster a scan reads one node only.
//!
//! # Durability in a cluster
//! A master acknowledges a write before its replica has it; a master killed just then loses it when the
//! replica takes over. So in a cluster the writes the safety policy relies on (budget decisions, attempts and
//! outcomes, events, audit records, approvals taken, silences and dry-run set) are followed, in the same
//! round trip, by `WAIT <replicas> <timeout>`, and a write fewer replicas acknowledged is an error
//! ([`StoreError::Unavailable`]): the decision is not acted on. See [`ClusterSettings::wait_replicas`].

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::streams::StreamRangeReply;
use redis::{
    AsyncCommands, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, ScriptInvocation, ServerErrorKind, Value,
};

use super::cluster_slots::{MasterAddress, SlotMasters, key_slot};
use super::{
    BudgetStore, DecisionClock, DirectoryStore, EventLog, HistoryStore, PendingApproval, SettingsStore, StateStore,
    StoreError, StormConfig, StormVerdict, decode_event, decode_history, decode_silence, encode_event, fresh, in_force,
};
use crate::analysis::HistoryEntry;
use crate::events::{
    AuditRetention, EventId, EventKind, EventRecord, EventRetention, KEPT_WHATEVER_THEIR_AGE, StoredEvent,
};
use crate::policy::{Backoff, Budget, BudgetState, BudgetVerdict, Draw, RestartPolicy};
use crate::silence::Silence;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The event log's stream key (hash tag `events`, shared with its per-type id lists).
const EVENTS_KEY: &str = "hemostat:{events}";
/// Silence id → JSON `Silence`.
const SILENCES_KEY: &str = "hemostat:silences";
/// The set of node names with a directory entry; each entry is `hemostat:directory:<node>`, expiring.
const DIRECTORY_KEY: &str = "hemostat:directory";
/// The prefix of a node's directory summary, `hemostat:directory-summary:<node>`, expiring.
const DIRECTORY_SUMMARY_PREFIX: &str = "hemostat:directory-summary";
/// The set of storm scopes that have a window (so that [`BudgetStore::end_storms`] needs no scan).
const STORM_SCOPES_KEY: &str = "hemostat:{storm}:scopes";
/// How long commands routed to a coordinator wait for it (a coordinator that died never takes them).
const ROUTED_COMMAND_TTL_MS: i64 = 60_000;
/// Dry-run as an operator set it: `1` or `0`; absent when the configuration decides.
const DRY_RUN_KEY: &str = "hemostat:settings:dry_run";

/// Budget states read at once on a cluster when they are read key by key (see `read_budgets`): the cluster
/// connection pipelines them to each master.
const CONCURRENT_BUDGET_READS: usize = 128;

/// What a budget read answers: the hash's fields and the attempts with their times.
type BudgetReply = (std::collections::HashMap<String, u64>, Vec<(String, u64)>);

/// The container `key`'s budget hash and attempts set, in one slot.
fn budget_keys(key: &str) -> (String, String) {
    (format!("hemostat:{{{key}}}:budget"), format!("hemostat:{{{key}}}:attempts"))
}

/// A budget state from its hash's fields and its attempts.
fn budget_from(fields: std::collections::HashMap<String, u64>, attempts: Vec<(String, u64)>) -> BudgetState {
    BudgetState {
        last_action_ms: fields.get("last_action_ms").copied(),
        attempts_ms: attempts.into_iter().map(|(_, at)| at).collect(),
        consecutive_failures: fields.get("failures").copied().unwrap_or(0) as u32,
        last_failure_ms: fields.get("last_failure_ms").copied(),
        streak: fields.get("streak").copied().unwrap_or(0) as u32,
        next_action_ms: fields.get("next_action_ms").copied(),
    }
}

/// A storm scope's window key.
fn storm_window_key(scope: &str) -> String {
    format!("hemostat:{{storm}}:{scope}:window")
}

/// A storm scope's "in a storm" flag.
fn storm_active_key(scope: &str) -> String {
    format!("hemostat:{{storm}}:{scope}:active")
}

/// How to reach a Redis Cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Seed nodes (`redis://[:password@]host:port`); the client learns the other nodes from them.
    pub seeds: Vec<String>,
    /// Replicas that must acknowledge each safety write (budget decisions, attempts, outcomes, events, audit
    /// records, approvals taken) within [`ClusterSettings::wait_timeout`] before it counts; 0 for a cluster
    /// without replicas (a master's crash may then lose its latest writes).
    pub wait_replicas: u32,
    /// How long a safety write waits for its replicas.
    pub wait_timeout: Duration,
}

/// One connection to Redis, a single server or a cluster: what every store method runs its commands on.
#[derive(Clone)]
pub enum Connection {
    /// One server, reconnecting by itself.
    Single(ConnectionManager),
    /// A Redis Cluster: routes each command to its slot's master, follows redirects and failovers.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Keeps an alert waiting for analysis in a node's hash (KEYS[1]) under ARGV[1] (ARGV[2] the alert) unless
/// it already holds ARGV[3]; the hash expires ARGV[4] ms after the latest. Returns 1 if kept, 0 if full.
pub const PUT_PENDING_SCRIPT: &str = r#"
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"#;

/// Takes every alert waiting in a node's hash (KEYS[1]): reads and deletes it in one step.
pub const TAKE_PENDING_SCRIPT: &str = r#"
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"#;

/// Raises a node's stream position (KEYS[1]) to ARGV[1] if it is higher, and keeps it ARGV[2] ms more.
pub const STREAM_SCRIPT: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = tonumber(ARGV[1])
if seq > current then current = seq end
redis.call('SET', KEYS[1], tostring(current), 'PX', ARGV[2])
return current
"#;

/// Appends to the event log and trims it, in Lua. KEYS: the stream, the list of that event type's ids, then
/// the lists of every event type. ARGV: the record's JSON, events kept per type, the oldest id kept
/// (`<ms>-0`), the newest kept of each type whatever their age ([`KEPT_WHATEVER_THEIR_AGE`]).
/// Each type's ids are listed in order so its oldest can be deleted from the stream when the type is over
/// its count, or too old while the type has more than the few it keeps whatever their age. Returns the new
/// id.
pub const APPEND_EVENT_SCRIPT: &str = r#"
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('RPUSH', KEYS[2], id)
local excess = redis.call('LLEN', KEYS[2]) - tonumber(ARGV[2])
while excess > 0 do
  local old = redis.call('LPOP', KEYS[2], math.min(excess, 100))
  redis.call('XDEL', KEYS[1], unpack(old))
  excess = excess - #old
end
local oldest_ms = tonumber(string.match(ARGV[3], '^(%d+)'))
local keep = tonumber(ARGV[4])
for i = 3, #KEYS do
  while redis.call('LLEN', KEYS[i]) > keep do
    local head = redis.call('LINDEX', KEYS[i], 0)
    if tonumber(string.match(head, '^(%d+)')) >= oldest_ms then break end
    redis.call('LPOP', KEYS[i])
    redis.call('XDEL', KEYS[1], head)
  end
end
return id
"#;

/// Appends to the audit log and trims it, in Lua. KEYS: the stream. ARGV: the record's JSON, records kept,
/// the oldest id kept (`<ms>-0`), the newest kept whatever their age. Returns the new id.
pub const APPEND_AUDIT_SCRIPT: &str = r#"
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
local cutoff = ARGV[3]
local keep = tonumber(ARGV[4])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', keep)
if #newest < keep then
  cutoff = '0-0'
else
  local kth = newest[#newest][1]
  local kth_ms = tonumber(string.match(kth, '^(%d+)'))
  if kth_ms < tonumber(string.match(cutoff, '^(%d+)')) then cutoff = kth end
end
redis.call('XTRIM', KEYS[1], 'MINID', cutoff)
redis.call('XTRIM', KEYS[1], 'MAXLEN', '=', ARGV[2])
return id
"#;

/// The time of a budget decision, in Lua: the caller's `now_ms` (ARGV[1]) or, when the clock argument is
/// `store`, the server's `TIME` (so that coordinators with skewed clocks agree).
const DECISION_TIME: &str = r#"
local function decision_time(caller_ms, clock)
  if clock == 'store' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return tonumber(caller_ms)
end
"#;

/// [`Budget::evaluate`](crate::policy::Budget::evaluate) in Lua, run atomically by Redis (after
/// [`DECISION_TIME`]). KEYS: budget hash, attempts zset. ARGV: now_ms, cooldown_ms, window_ms, max_attempts,
/// clock (`store`/`caller`), policy (`cooldown`/`backoff`), backoff initial_ms, max_ms, reset_ms,
/// jitter_percent, the draw, the keys' ttl_ms.
/// Returns `{"allowed", attempts}`, `{"cooldown", retry_after_ms}` or `{"circuit", retry_after_ms}`.
pub const BUDGET_SCRIPT: &str = r#"
local now = decision_time(ARGV[1], ARGV[5])
local cooldown = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local max_attempts = tonumber(ARGV[4])
local backoff = ARGV[6] == 'backoff'
local last = tonumber(redis.call('HGET', KEYS[1], 'last_action_ms'))
local next_at = nil
if backoff then
  next_at = tonumber(redis.call('HGET', KEYS[1], 'next_action_ms'))
elseif last then
  next_at = last + cooldown
end
if next_at and now < next_at then
  return {'cooldown', next_at - now}
end
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures')) or 0
local failed = tonumber(redis.call('HGET', KEYS[1], 'last_failure_ms'))
if failures >= max_attempts and failed and now < failed + window then
  return {'circuit', failed + window - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[2])
if n >= max_attempts then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'circuit', tonumber(oldest[2]) + window - now}
end
if backoff then
  local initial, max, reset = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  local jitter, draw = tonumber(ARGV[10]), tonumber(ARGV[11])
  local streak = 1
  if last and now < last + reset then
    streak = (tonumber(redis.call('HGET', KEYS[1], 'streak')) or 0) + 1
  end
  local capped = math.min(initial * 2 ^ math.min(streak - 1, 30), max)
  local wait = math.max(capped + math.floor(capped * jitter * draw / 100000), 0)
  redis.call('HSET', KEYS[1], 'streak', streak, 'next_action_ms', now + wait)
end
redis.call('HSET', KEYS[1], 'last_action_ms', now)
redis.call('ZADD', KEYS[2], now, tostring(now) .. ':' .. tostring(n))
redis.call('PEXPIRE', KEYS[1], ARGV[12])
redis.call('PEXPIRE', KEYS[2], ARGV[12])
return {'allowed', n + 1}
"#;

/// [`BudgetState::record_outcome`](crate::policy::BudgetState::record_outcome) in Lua (after
/// [`DECISION_TIME`]). KEYS: budget hash. ARGV: success (1 or 0), now_ms, ttl_ms, clock (`store`/`caller`).
pub const OUTCOME_SCRIPT: &str = r#"
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'failures', 0)
else
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('HSET', KEYS[1], 'last_failure_ms', decision_time(ARGV[2], ARGV[4]))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// The storm breaker's window count in Lua. KEYS: pairs of (window zset, active flag) per scope, all with
/// the `{storm}` hash tag. ARGV: member, now_ms, window_ms, threshold.
/// Returns `{"calm"}` or `{"storm", scope index, started (1/0), members...}`.
pub const STORM_SCRIPT: &str = r#"
local member, now, window, threshold = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local storm = nil
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  redis.call('PEXPIRE', KEYS[i], window * 2)
  if storm == nil and redis.call('ZCARD', KEYS[i]) > threshold then
    local started = 0
    if redis.call('SET', KEYS[i + 1], '1', 'PX', window, 'NX') then
      started = 1
    else
      redis.call('PEXPIRE', KEYS[i + 1], window)
    end
    storm = {'storm', tostring((i + 1) / 2), tostring(started)}
    for _, m in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
      table.insert(storm, m)
    end
  end
end
return storm or {'calm'}
"#;

/// [`BudgetState::record_attempt`](crate::policy::BudgetState::record_attempt) in Lua.
/// KEYS: budget hash, attempts zset. ARGV: at_ms, ttl_ms.
pub const ATTEMPT_SCRIPT: &str = r#"
local at = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'last_action_ms'))
if not last or at > last then
  redis.call('HSET', KEYS[1], 'last_action_ms', at)
end
redis.call('ZADD', KEYS[2], at, tostring(at) .. ':local')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"#;

/// Moves keys from their names before the hash tags (HemoStat ≤ 0.1: `hemostat:events`,
/// `hemostat:events:by_type:<kind>`, `hemostat:audit`) to their names now, on a single server, when only the
/// old name exists. KEYS: pairs of (old, new). Returns how many moved.
pub const RENAME_LEGACY_SCRIPT: &str = r#"
local moved = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('EXISTS', KEYS[i + 1]) == 0 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
    moved = moved + 1
  end
end
return moved
"#;

/// How long a budget's keys live: long enough for every rule that reads them.
fn budget_ttl_ms(budget: &Budget) -> u64 {
    let mut longest = budget.cooldown.max(budget.window);
    if let RestartPolicy::Backoff(backoff) = budget.policy {
        longest = longest.max(backoff.max * 2).max(backoff.reset_after);
    }
    longest.as_millis() as u64 * 2 + 60_000
}

/// The clock argument of the budget scripts.
fn clock_arg(clock: DecisionClock) -> &'static str {
    match clock {
        DecisionClock::Store => "store",
        DecisionClock::Caller => "caller",
    }
}

/// The audit log's stream key.
const AUDIT_KEY: &str = "hemostat:{audit}";

/// Redis's failure (unreachable, or an error reply) as a backend-neutral store error.
fn failed(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable { backend: "redis", message: error.to_string() }
}

/// A failure of Redis that is not one of its errors (a reply in an unexpected place) as a store error.
fn unavailable(message: String) -> StoreError {
    StoreError::Unavailable { backend: "redis", message }
}

/// The Redis state store.
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    /// Replicas each safety write waits for (0: none), and how long.
    wait: Option<(u32, Duration)>,
    budget: redis::Script,
    outcome: redis::Script,
    attempt: redis::Script,
    storm: redis::Script,
    append_event: redis::Script,
    append_audit: redis::Script,
    stream: redis::Script,
    put_pending: redis::Script,
    take_pending: redis::Script,
    clock: DecisionClock,
    /// Why what this store keeps would not survive a restart of its servers (see [`StateStore::volatility`]).
    volatility: Option<String>,
    /// On a cluster, the slots' masters as last read, for reads of many keys grouped by master (`None` until
    /// read, and after a grouped read found it stale).
    slot_masters: Arc<std::sync::Mutex<Option<Arc<SlotMasters>>>>,
    /// Grouped reads that fell back to reading key by key (a stale slot map, a master unreachable).
    grouped_read_fallbacks: Arc<AtomicU64>,
}

impl RedisStore {
    /// Reads up to `limit` entries of a stream after `after`, oldest first.
    async fn read_stream(
        &self,
        key: &str,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.conn.clone();
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let reply: StreamRangeReply = conn.xrange_count(key, start, "+", limit).await.map_err(failed)?;
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let id = entry.id.parse().map_err(|e| StoreError::Corrupt(format!("stream id: {e}")))?;
                let raw: Vec<u8> = entry
                    .get("e")
                    .ok_or_else(|| StoreError::Corrupt(format!("stream entry {} has no field e", entry.id)))?;
                Ok(StoredEvent { id, record: decode_event(&raw)? })
            })
            .collect()
    }

    /// Connects to the server at `url` (reconnecting by itself later) and checks it answers.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(failed)?;
        let conn = ConnectionManager::new(client).await.map_err(failed)?;
        let mut store = Self::on(Connection::Single(conn), None).await?;
        store.rename_legacy_keys().await?;
        store.volatility = volatility(&[url.to_owned()]).await;
        Ok(store)
    }

    /// Moves the event and audit logs written before their keys had hash tags to their new names (a single
    /// server only: a cluster never held them), so an upgrade keeps them.
    async fn rename_legacy_keys(&self) -> Result<(), StoreError> {
        let mut pairs = vec![("hemostat:events".to_owned(), EVENTS_KEY.to_owned())];
        pairs.push(("hemostat:audit".to_owned(), AUDIT_KEY.to_owned()));
        for kind in crate::events::EventKind::ALL {
            let name = kind.name();
            pairs.push((format!("hemostat:events:by_type:{name}"), format!("{EVENTS_KEY}:by_type:{name}")));
        }
        let script = redis::Script::new(RENAME_LEGACY_SCRIPT);
        let mut invocation = script.prepare_invoke();
        for (old, new) in pairs {
            invocation.key(old).key(new);
        }
        let moved: u32 = invocation.invoke_async(&mut self.conn.clone()).await.map_err(failed)?;
        if moved > 0 {
            tracing::info!(moved, "moved the event and audit logs to their hash-tagged key names");
        }
        Ok(())
    }

    /// Connects to the Redis Cluster that `settings.seeds` belong to and checks that it answers. The client
    /// keeps a connection to every master, and when one fails (a replica taking over) it retries for up to
    /// about 20 s, the time a failover with the default `cluster-node-timeout` of 15 s takes.
    pub async fn connect_cluster(settings: &ClusterSettings) -> Result<Self, StoreError> {
        if settings.seeds.is_empty() {
            return Err(StoreError::Unavailable { backend: "redis", message: "no cluster seed nodes".into() });
        }
        let client = redis::cluster::ClusterClientBuilder::new(settings.seeds.iter().map(String::as_str))
            .retries(12)
            .min_retry_wait(100)
            .max_retry_wait(2_000)
            .connection_timeout(Duration::from_secs(2))
            // Room for a WAIT to time out and answer, behind others on the same connection.
            .response_timeout(settings.wait_timeout + Duration::from_secs(5))
            .build()
            .map_err(failed)?;
        let conn = client.get_async_connection().await.map_err(failed)?;
        let wait = (settings.wait_replicas > 0).then_some((settings.wait_replicas, settings.wait_timeout));
        let mut store = Self::on(Connection::Cluster(conn), wait).await?;
        store.volatility = volatility(&settings.seeds).await;
        Ok(store)
    }

    async fn on(mut conn: Connection, wait: Option<(u32, Duration)>) -> Result<Self, StoreError> {
        let _: () = redis::cmd("PING").query_async(&mut conn).await.map_err(failed)?;
        Ok(RedisStore {
            conn,
            wait,
            budget: redis::Script::new(&format!("{DECISION_TIME}{BUDGET_SCRIPT}")),
            outcome: redis::Script::new(&format!("{DECISION_TIME}{OUTCOME_SCRIPT}")),
            attempt: redis::Script::new(ATTEMPT_SCRIPT),
            storm: redis::Script::new(STORM_SCRIPT),
            append_event: redis::Script::new(APPEND_EVENT_SCRIPT),
            append_audit: redis::Script::new(APPEND_AUDIT_SCRIPT),
            stream: redis::Script::new(STREAM_SCRIPT),
            put_pending: redis::Script::new(PUT_PENDING_SCRIPT),
            take_pending: redis::Script::new(TAKE_PENDING_SCRIPT),
            clock: DecisionClock::Store,
            volatility: None,
            slot_masters: Arc::default(),
            grouped_read_fallbacks: Arc::default(),
        })
    }

    /// How many reads of a page's budgets on a cluster fell back to reading key by key because the slot map
    /// was stale or a master could not be reached: 0 on a cluster at rest.
    pub fn grouped_read_fallbacks(&self) -> u64 {
        self.grouped_read_fallbacks.load(Ordering::Relaxed)
    }

    /// The cluster's slot map, read with `CLUSTER SLOTS` when there is none yet.
    async fn slot_masters(&self, conn: &ClusterConnection) -> Result<Arc<SlotMasters>, StoreError> {
        if let Some(map) = self.slot_masters.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(map);
        }
        let reply = conn
            .clone()
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(failed)?;
        let map = Arc::new(SlotMasters::from_reply(reply).map_err(StoreError::Corrupt)?);
        *self.slot_masters.lock().unwrap_or_else(|e| e.into_inner()) = Some(map.clone());
        Ok(map)
    }

    /// The budgets of `keys` on a cluster in one pipeline per master (their commands are for different slots
    /// of that master, which Redis allows in a pipeline that is not a transaction). Any error, a `MOVED`
    /// reply included, fails the whole read: the caller reads key by key instead.
    async fn read_budgets_by_master(
        &self,
        conn: &ClusterConnection,
        keys: &[String],
    ) -> Result<Vec<BudgetState>, StoreError> {
        let masters = self.slot_masters(conn).await?;
        // Each master's pipeline, and for each of its commands the key's index (its budget hash, then its
        // attempts: a key's two commands are for the same slot, so they go together).
        let mut groups: std::collections::BTreeMap<&MasterAddress, (Pipeline, Vec<usize>)> = Default::default();
        for (index, key) in keys.iter().enumerate() {
            let (hash, zset) = budget_keys(key);
            let slot = key_slot(hash.as_bytes());
            let master = masters
                .master_of(slot)
                .filter(|_| slot == key_slot(zset.as_bytes()))
                .ok_or_else(|| unavailable(format!("no master known for {hash}")))?;
            let (pipe, indices) = groups.entry(master).or_insert_with(|| (redis::pipe(), Vec::new()));
            pipe.hgetall(hash).zrange_withscores(zset, 0, -1);
            indices.push(index);
        }
        let replies = futures::future::try_join_all(groups.into_iter().map(|(master, (pipe, indices))| {
            let mut conn = conn.clone();
            let route = SingleNodeRoutingInfo::ByAddress { host: master.host.clone(), port: master.port };
            async move {
                let count = indices.len() * 2;
                let values = conn.route_pipeline(pipe, 0, count, route).await.map_err(failed)?;
                Ok::<_, StoreError>((indices, values))
            }
        }))
        .await?;
        let mut states: Vec<Option<BudgetState>> = vec![None; keys.len()];
        for (indices, values) in replies {
            if values.len() != indices.len() * 2 {
                return Err(StoreError::Corrupt(format!(
                    "{} replies to {} budget reads",
                    values.len(),
                    indices.len() * 2
                )));
            }
            let mut values = values.into_iter();
            for index in indices {
                let (Some(fields), Some(attempts)) = (values.next(), values.next()) else {
                    unreachable!("counted above")
                };
                for reply in [&fields, &attempts] {
                    if let Value::ServerError(error) = reply {
                        // `MOVED` or `ASK`: the slot is no longer (or not yet) this master's.
                        return Err(unavailable(format!("budget read: {error:?}")));
                    }
                }
                let corrupt = |e: redis::ParsingError| StoreError::Corrupt(format!("budget reply: {e}"));
                states[index] = Some(budget_from(
                    redis::from_redis_value(fields).map_err(corrupt)?,
                    redis::from_redis_value(attempts).map_err(corrupt)?,
                ));
            }
        }
        Ok(states.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// The container `key`'s budget state; with `forget`, deleted in the same atomic step.
    async fn budget_state(&self, key: &str, forget: bool) -> Result<BudgetState, StoreError> {
        let mut conn = self.conn.clone();
        let (hash, zset) = budget_keys(key);
        let mut pipe = redis::pipe();
        pipe.atomic().hgetall(&hash).zrange_withscores(&zset, 0, -1);
        if forget {
            pipe.del(&[&hash, &zset]).ignore();
        }
        let (fields, attempts): BudgetReply = pipe.query_async(&mut conn).await.map_err(failed)?;
        Ok(budget_from(fields, attempts))
    }

    /// The same store, deciding budgets on `clock`.
    pub fn with_clock(self, clock: DecisionClock) -> Self {
        RedisStore { clock, ..self }
    }

    /// Runs `invocation` and returns its reply. A safety write: in a cluster that asks for it, followed in the
    /// same round trip by `WAIT`, and an error unless enough replicas acknowledged it. Loads the script when the
    /// server does not have it (a new or promoted master).
    async fn eval_durable<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, StoreError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation);
        let sent = match self.send_with_wait(&pipe).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                invocation.load_async(&mut self.conn.clone()).await.map_err(failed)?;
                self.send_with_wait(&pipe).await
            }
            sent => sent,
        };
        let (reply,): (T,) = self.acknowledged(sent.map_err(failed)?)?;
        Ok(reply)
    }

    /// Runs `pipe` (commands of one hash slot; not a transaction, as WAIT cannot run in one) as a safety write
    /// (see [`RedisStore::eval_durable`]) and returns its replies.
    async fn query_durable<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        let sent = self.send_with_wait(pipe).await.map_err(failed)?;
        self.acknowledged(sent)
    }

    /// Sends `pipe`, followed by `WAIT` when this store waits for replicas; returns the pipeline's replies and
    /// WAIT's.
    async fn send_with_wait(&self, pipe: &Pipeline) -> redis::RedisResult<(Vec<Value>, Option<Value>)> {
        let mut conn = self.conn.clone();
        match self.wait {
            None => Ok((pipe.query_async(&mut conn).await?, None)),
            Some((replicas, timeout)) => {
                let mut pipe = pipe.clone();
                pipe.cmd("WAIT").arg(replicas).arg(timeout.as_millis() as u64);
                let mut replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                let acked = replies.pop();
                Ok((replies, acked))
            }
        }
    }

    /// The pipeline's replies as `T`, if WAIT (when sent) says enough replicas have them.
    fn acknowledged<T: FromRedisValue>(&self, (replies, acked): (Vec<Value>, Option<Value>)) -> Result<T, StoreError> {
        if let Some((replicas, timeout)) = self.wait {
            let acked = match acked {
                Some(Value::Int(n)) => n,
                other => return Err(StoreError::Corrupt(format!("WAIT answered {other:?}"))),
            };
            if acked < i64::from(replicas) {
                return Err(StoreError::Unavailable {
                    backend: "redis",
                    message: format!(
                        "a write reached {acked} of the {replicas} replicas it needs within {timeout:?} \
                         (REDIS_WAIT_REPLICAS): not counted as done"
                    ),
                });
            }
        }
        redis::from_redis_value(Value::Array(replies))
            .map_err(|e| StoreError::Corrupt(format!("unexpected reply: {e}")))
    }
}

#[async_trait]
impl BudgetStore for RedisStore {
    async fn try_begin_action(
        &self,
        key: &str,
        now_ms: u64,
        budget: &Budget,
        draw: Draw,
    ) -> Result<BudgetVerdict, StoreError> {
        let (policy, backoff) = match budget.policy {
            RestartPolicy::Cooldown => ("cooldown", Backoff::DEFAULT),
            RestartPolicy::Backoff(backoff) => ("backoff", backoff),
        };
        let (verdict, value): (String, u64) = self
            .eval_durable(
                self.budget
                    .key(format!("hemostat:{{{key}}}:budget"))
                    .key(format!("hemostat:{{{key}}}:attempts"))
                    .arg(now_ms)
                    .arg(budget.cooldown.as_millis() as u64)
                    .arg(budget.window.as_millis() as u64)
                    .arg(budget.max_attempts)
                    .arg(clock_arg(self.clock))
                    .arg(policy)
                    .arg(backoff.initial.as_millis() as u64)
                    .arg(backoff.max.as_millis() as u64)
                    .arg(backoff.reset_after.as_millis() as u64)
                    .arg(backoff.jitter_percent)
                    .arg(draw.value())
                    .arg(budget_ttl_ms(budget)),
            )
            .await?;
        let retry_after = std::time::Duration::from_millis(value);
        match verdict.as_str() {
            "allowed" => Ok(BudgetVerdict::Allowed { attempts_in_window: value as u32 }),
            "cooldown" => Ok(BudgetVerdict::CooldownActive { retry_after }),
            "circuit" => Ok(BudgetVerdict::CircuitOpen { retry_after }),
            other => Err(StoreError::Corrupt(format!("budget script answered {other:?}"))),
        }
    }

    async fn record_attempt(&self, key: &str, at_ms: u64, budget: &Budget) -> Result<(), StoreError> {
        let _: i64 = self
            .eval_durable(
                self.attempt
                    .key(format!("hemostat:{{{key}}}:budget"))
                    .key(format!("hemostat:{{{key}}}:attempts"))
                    .arg(at_ms)
                    .arg(budget_ttl_ms(budget)),
            )
            .await?;
        Ok(())
    }

    async fn record_outcome(&self, key: &str, success: bool, now_ms: u64, budget: &Budget) -> Result<(), StoreError> {
        let ttl = budget_ttl_ms(budget);
        let _: i64 = self
            .eval_durable(
                self.outcome
                    .key(format!("hemostat:{{{key}}}:budget"))
                    .arg(if success { "1" } else { "0" })
                    .arg(now_ms)
                    .arg(ttl)
                    .arg(clock_arg(self.clock)),
            )
            .await?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<BudgetState, StoreError> {
        self.budget_state(key, true).await
    }

    async fn read_budget(&self, key: &str) -> Result<BudgetState, StoreError> {
        self.budget_state(key, false).await
    }

    /// The budget states of `keys`, for people (each key's two reads are not one transaction: a write between
    /// them shows a budget a moment old in part): on one server, one pipeline (a round trip for the lot); on
    /// a cluster, one pipeline per master (see [`super::cluster_slots`]), or, when the slot map proved stale,
    /// each key's own pipeline of two commands through the cluster client, at most
    /// [`CONCURRENT_BUDGET_READS`] at a time.
    async fn read_budgets(&self, keys: &[String]) -> Result<Vec<BudgetState>, StoreError> {
        match &self.conn {
            Connection::Single(_) if keys.is_empty() => Ok(Vec::new()),
            Connection::Single(_) => {
                let mut pipe = redis::pipe();
                for key in keys {
                    let (hash, zset) = budget_keys(key);
                    pipe.hgetall(hash).zrange_withscores(zset, 0, -1);
                }
                let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn.clone()).await.map_err(failed)?;
                let mut replies = replies.into_iter();
                let mut states = Vec::with_capacity(keys.len());
                while let (Some(fields), Some(attempts)) = (replies.next(), replies.next()) {
                    let corrupt = |e: redis::ParsingError| StoreError::Corrupt(format!("budget reply: {e}"));
                    let fields = redis::from_redis_value(fields).map_err(corrupt)?;
                    let attempts = redis::from_redis_value(attempts).map_err(corrupt)?;
                    states.push(budget_from(fields, attempts));
                }
                if states.len() != keys.len() {
                    return Err(StoreError::Corrupt(format!("{} budgets answered for {}", states.len(), keys.len())));
                }
                Ok(states)
            }
            Connection::Cluster(_) if keys.is_empty() => Ok(Vec::new()),
            Connection::Cluster(conn) => {
                match self.read_budgets_by_master(conn, keys).await {
                    Ok(states) => return Ok(states),
                    Err(error) => {
                        self.grouped_read_fallbacks.fetch_add(1, Ordering::Relaxed);
                        *self.slot_masters.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        tracing::debug!(%error, "budgets read key by key: the slot map was stale");
                    }
                }
                futures::stream::iter(keys.iter().cloned())
                    .map(|key| async move {
                        let (hash, zset) = budget_keys(&key);
                        let mut pipe = redis::pipe();
                        pipe.hgetall(hash).zrange_withscores(zset, 0, -1);
                        let (fields, attempts): BudgetReply =
                            pipe.query_async(&mut self.conn.clone()).await.map_err(failed)?;
                        Ok::<_, StoreError>(budget_from(fields, attempts))
                    })
                    .buffered(CONCURRENT_BUDGET_READS)
                    .try_collect()
                    .await
            }
        }
    }

    async fn note_need(
        &self,
        scopes: &[String],
        member: &str,
        now_ms: u64,
        storm: &StormConfig,
    ) -> Result<StormVerdict, StoreError> {
        // The scopes are listed first, so that a storm this call starts is one `end_storms` sees.
        let _: i64 = self.conn.clone().sadd(STORM_SCOPES_KEY, scopes).await.map_err(failed)?;
        let mut invocation = self.storm.prepare_invoke();
        for scope in scopes {
            invocation.key(storm_window_key(scope)).key(storm_active_key(scope));
        }
        let reply: Vec<String> = self
            .eval_durable(invocation.arg(member).arg(now_ms).arg(storm.window.as_millis() as u64).arg(storm.threshold))
            .await?;
        match reply.as_slice() {
            [calm] if calm == "calm" => Ok(StormVerdict::Calm),
            [tag, index, started, members @ ..] if tag == "storm" => {
                let index: usize = index.parse().map_err(|_| StoreError::Corrupt("storm script index".into()))?;
                Ok(StormVerdict::Storm {
                    scope: scopes.get(index - 1).cloned().unwrap_or_default(),
                    started: started == "1",
                    members: members.to_vec(),
                })
            }
            other => Err(StoreError::Corrupt(format!("storm script answered {other:?}"))),
        }
    }

    async fn end_storms(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let scopes: Vec<String> = conn.smembers(STORM_SCOPES_KEY).await.map_err(failed)?;
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        // One slot (`{storm}`), one transaction: which scopes storm, then their windows and the list go.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for scope in &scopes {
            pipe.exists(storm_active_key(scope));
        }
        for scope in &scopes {
            pipe.del(&[storm_window_key(scope), storm_active_key(scope)]).ignore();
        }
        pipe.srem(STORM_SCOPES_KEY, &scopes).ignore();
        let active: Vec<bool> = pipe.query_async(&mut conn).await.map_err(failed)?;
        Ok(scopes.into_iter().zip(active).filter_map(|(scope, active)| active.then_some(scope)).collect())
    }
}

#[async_trait]
impl EventLog for RedisStore {
    async fn append_event(&self, record: &EventRecord, retention: &EventRetention) -> Result<EventId, StoreError> {
        let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
        let oldest = now_ms.saturating_sub(retention.max_age.as_millis() as u64);
        let mut invocation = self.append_event.prepare_invoke();
        invocation.key(EVENTS_KEY).key(format!("{EVENTS_KEY}:by_type:{}", record.kind.name()));
        for kind in EventKind::ALL {
            invocation.key(format!("{EVENTS_KEY}:by_type:{}", kind.name()));
        }
        invocation
            .arg(encode_event(record))
            .arg(retention.max_per_type)
            .arg(format!("{oldest}-0"))
            .arg(KEPT_WHATEVER_THEIR_AGE);
        let id: String = self.eval_durable(&invocation).await?;
        id.parse().map_err(|e| StoreError::Corrupt(format!("stream id: {e}")))
    }

    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_stream(EVENTS_KEY, after, limit).await
    }

    async fn append_audit(&self, record: &EventRecord, retention: &AuditRetention) -> Result<EventId, StoreError> {
        let oldest =
            crate::events::unix_ms(std::time::SystemTime::now()).saturating_sub(retention.max_age.as_millis() as u64);
        let mut invocation = self.append_audit.prepare_invoke();
        invocation
            .key(AUDIT_KEY)
            .arg(encode_event(record))
            .arg(retention.max_entries)
            .arg(format!("{oldest}-0"))
            .arg(KEPT_WHATEVER_THEIR_AGE);
        let id: String = self.eval_durable(&invocation).await?;
        id.parse().map_err(|e| StoreError::Corrupt(format!("stream id: {e}")))
    }

    async fn read_audit(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_stream(AUDIT_KEY, after, limit).await
    }
}

#[async_trait]
impl HistoryStore for RedisStore {
    async fn append_history(
        &self,
        key: &str,
        entry: &HistoryEntry,
        keep: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let list = format!("hemostat:{{{key}}}:history");
        let raw = serde_json::to_vec(entry).expect("history serializes");
        let _: () = redis::pipe()
            .atomic()
            .lpush(&list, raw)
            .ignore()
            .ltrim(&list, 0, keep.max(1) as isize - 1)
            .ignore()
            .pexpire(&list, ttl.as_millis() as i64)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn history(&self, key: &str, now_ms: u64, ttl: Duration) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<Vec<u8>> = conn.lrange(format!("hemostat:{{{key}}}:history"), 0, -1).await.map_err(failed)?;
        let entries = raw.iter().map(|r| decode_history(r)).collect::<Result<Vec<_>, _>>()?;
        Ok(fresh(entries, now_ms, ttl))
    }
}

#[async_trait]
impl SettingsStore for RedisStore {
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let raw = serde_json::to_vec(silence).expect("silences serialize");
        let mut pipe = redis::pipe();
        pipe.hset(SILENCES_KEY, &silence.id, raw).ignore();
        let () = self.query_durable(&pipe).await?;
        Ok(())
    }

    async fn remove_silence(&self, id: &str) -> Result<Option<Silence>, StoreError> {
        let mut conn = self.conn.clone();
        let (raw, _): (Option<Vec<u8>>, i64) = redis::pipe()
            .atomic()
            .hget(SILENCES_KEY, id)
            .hdel(SILENCES_KEY, id)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        raw.map(|raw| decode_silence(&raw)).transpose()
    }

    async fn silences(&self, now_ms: u64) -> Result<Vec<Silence>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<Vec<u8>> = conn.hvals(SILENCES_KEY).await.map_err(failed)?;
        let all = raw.iter().map(|raw| decode_silence(raw)).collect::<Result<Vec<_>, _>>()?;
        let (live, expired) = in_force(all, now_ms);
        if !expired.is_empty() {
            let _: i64 = conn.hdel(SILENCES_KEY, expired).await.map_err(failed)?;
        }
        Ok(live)
    }

    async fn dry_run_override(&self) -> Result<Option<bool>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<u8> = conn.get(DRY_RUN_KEY).await.map_err(failed)?;
        Ok(value.map(|v| v == 1))
    }

    async fn set_dry_run_override(&self, enabled: bool) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.set(DRY_RUN_KEY, u8::from(enabled)).ignore();
        let () = self.query_durable(&pipe).await?;
        Ok(())
    }

    async fn put_approval(&self, id: &str, approval: &PendingApproval) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let now = crate::events::unix_ms(std::time::SystemTime::now());
        // Kept a minute past its expiry, so that a late approval is told it expired rather than unknown.
        let ttl = approval.expires_ms.saturating_sub(now) + 60_000;
        let raw = serde_json::to_vec(approval).expect("approval serializes");
        let _: () = conn.pset_ex(format!("hemostat:approval:{id}"), raw, ttl).await.map_err(failed)?;
        Ok(())
    }

    async fn take_approval(&self, id: &str) -> Result<Option<PendingApproval>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("GETDEL").arg(format!("hemostat:approval:{id}"));
        let (raw,): (Option<Vec<u8>>,) = self.query_durable(&pipe).await?;
        raw.map(|raw| serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt(format!("approval: {e}"))))
            .transpose()
    }

    async fn put_pending_analysis(&self, node: &str, id: &str, alert: &[u8], max: usize) -> Result<bool, StoreError> {
        let mut invocation = self.put_pending.prepare_invoke();
        invocation
            .key(pending_key(node))
            .arg(id)
            .arg(alert)
            .arg(max)
            .arg(super::PENDING_ANALYSIS_TTL.as_millis() as u64);
        let kept: u32 = self.eval_durable(&invocation).await?;
        Ok(kept == 1)
    }

    async fn finish_pending_analysis(&self, node: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: u32 = conn.hdel(pending_key(node), id).await.map_err(failed)?;
        Ok(removed == 1)
    }

    async fn take_pending_analyses(&self, node: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut invocation = self.take_pending.prepare_invoke();
        invocation.key(pending_key(node));
        self.eval_durable(&invocation).await
    }
}

/// The key of `node`'s alerts waiting for analysis.
fn pending_key(node: &str) -> String {
    format!("hemostat:pending:{node}")
}

#[async_trait]
impl DirectoryStore for RedisStore {
    async fn put_directory_entry(
        &self,
        node: &str,
        summary: &[u8],
        entry: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis() as u64;
        let entry_key = format!("{DIRECTORY_KEY}:{node}");
        let mut conn = self.conn.clone();
        match entry {
            // Three keys in three slots: three commands, in flight together.
            Some(entry) => {
                let (mut entries, mut summaries, mut names) = (conn.clone(), conn.clone(), conn);
                let (put, summarised, listed): (
                    redis::RedisResult<()>,
                    redis::RedisResult<()>,
                    redis::RedisResult<i64>,
                ) = futures::join!(
                    entries.pset_ex(&entry_key, entry, ttl_ms),
                    summaries.pset_ex(format!("{DIRECTORY_SUMMARY_PREFIX}:{node}"), summary, ttl_ms),
                    names.sadd(DIRECTORY_KEY, node)
                );
                put.map_err(failed)?;
                summarised.map_err(failed)?;
                listed.map_err(failed)?;
                Ok(true)
            }
            // The entry's expiry renewed first: when it is gone, the summary must not outlive it.
            None => {
                let renewed: bool = conn.pexpire(&entry_key, ttl_ms as i64).await.map_err(failed)?;
                if renewed {
                    let _: () = conn
                        .pset_ex(format!("{DIRECTORY_SUMMARY_PREFIX}:{node}"), summary, ttl_ms)
                        .await
                        .map_err(failed)?;
                }
                Ok(renewed)
            }
        }
    }

    async fn directory_nodes(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut names: Vec<String> = conn.smembers(DIRECTORY_KEY).await.map_err(failed)?;
        names.sort();
        Ok(names)
    }

    async fn directory_summaries(&self) -> Result<Vec<(String, Option<Vec<u8>>)>, StoreError> {
        let names = self.directory_nodes().await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let keys: Vec<String> = names.iter().map(|n| format!("{DIRECTORY_SUMMARY_PREFIX}:{n}")).collect();
        let values: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.map_err(failed)?;
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (name, value) in names.into_iter().zip(values) {
            match value {
                Some(summary) => live.push((name, Some(summary))),
                None => gone.push(name),
            }
        }
        // A name without a summary is listed if its entry is still there (an older coordinator's node, or a
        // publication between the two reads), else forgotten: the set lists what can be read, and a node
        // published again is listed again.
        for name in gone {
            let entry_key = format!("{DIRECTORY_KEY}:{name}");
            let live_entry: bool = conn.exists(&entry_key).await.map_err(failed)?;
            if live_entry {
                live.push((name, None));
            } else {
                let _: i64 = conn.srem(DIRECTORY_KEY, &name).await.map_err(failed)?;
            }
        }
        live.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(live)
    }

    async fn directory_summary(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(format!("{DIRECTORY_SUMMARY_PREFIX}:{node}")).await.map_err(failed)?)
    }

    async fn directory_entry(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(format!("{DIRECTORY_KEY}:{node}")).await.map_err(failed)?)
    }

    async fn route_command(&self, coordinator: &str, command: &[u8]) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = format!("hemostat:coordinator:{coordinator}:commands");
        let _: () = redis::pipe()
            .rpush(&key, command)
            .ignore()
            .pexpire(&key, ROUTED_COMMAND_TTL_MS)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn take_routed_command(&self, coordinator: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.lpop(format!("hemostat:coordinator:{coordinator}:commands"), None).await.map_err(failed)?)
    }

    async fn stream_position(&self, node: &str, stream: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let position: Option<u64> = conn.get(stream_key(node, stream)).await.map_err(failed)?;
        Ok(position.unwrap_or(0))
    }

    async fn advance_stream(&self, node: &str, stream: &str, seq: u64) -> Result<(), StoreError> {
        let mut invocation = self.stream.prepare_invoke();
        invocation.key(stream_key(node, stream)).arg(seq).arg(super::STREAM_POSITION_TTL.as_millis() as u64);
        let _: u64 = invocation.invoke_async(&mut self.conn.clone()).await.map_err(failed)?;
        Ok(())
    }
}

/// The key of `node`'s stream position (one key per stream: any slot of a cluster).
fn stream_key(node: &str, stream: &str) -> String {
    format!("hemostat:stream:{node}:{stream}")
}

impl StateStore for RedisStore {
    fn volatility(&self) -> Option<String> {
        self.volatility.clone()
    }

    fn backend(&self) -> &'static str {
        match self.conn {
            Connection::Single(_) => "redis",
            Connection::Cluster(_) => "redis cluster",
        }
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// Why the servers at `urls` would lose what they keep when they restart: those without append-only
/// persistence (`appendonly yes`), or that answer but will not say (`INFO persistence` refused); `None` when
/// every server that answers has it. A server that cannot be reached now holds nothing now and is only
/// logged (a cluster starts with one of its seeds down). Snapshots (`save`) alone do not count: a cooldown
/// written after the last snapshot is forgotten, and a container is then restarted again inside it.
async fn volatility(urls: &[String]) -> Option<String> {
    let mut problems = Vec::new();
    for url in urls {
        let server = url.rsplit('@').next().unwrap_or(url).trim_start_matches("redis://").to_owned();
        let conn = async { redis::Client::open(url.as_str())?.get_multiplexed_async_connection().await };
        let mut conn = match tokio::time::timeout(PERSISTENCE_CHECK_TIMEOUT, conn).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::warn!(server, error = %e, "cannot check this Redis server's persistence: unreachable");
                continue;
            }
            Err(_) => {
                tracing::warn!(server, "cannot check this Redis server's persistence: no answer");
                continue;
            }
        };
        let mut info = redis::cmd("INFO");
        info.arg("persistence");
        match tokio::time::timeout(PERSISTENCE_CHECK_TIMEOUT, info.query_async::<String>(&mut conn)).await {
            Ok(Ok(info)) if info.lines().any(|line| line.trim() == "aof_enabled:1") => {}
            Ok(Ok(_)) => problems.push(format!("{server} has appendonly no")),
            Ok(Err(e)) => problems.push(format!("{server} does not say its persistence (INFO persistence: {e})")),
            Err(_) => problems.push(format!("{server} did not answer INFO persistence")),
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// How long the start-up check of a server's persistence waits for it.
const PERSISTENCE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
