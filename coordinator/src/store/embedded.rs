//! The embedded backend: a redb database file, for a single host without Redis.
//!
//! redb is synchronous and fsyncs each commit; every operation runs on the blocking pool in its own
//! transaction, so a budget check and its record are one atomic commit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{
    BudgetStore, DecisionClock, DirectoryStore, EventLog, HistoryStore, PendingApproval, SettingsStore, StateStore,
    StoreError, StormConfig, StormVerdict, decode_event, decode_silence, encode_event, fresh, in_force,
};
use crate::analysis::HistoryEntry;
use crate::events::{AuditRetention, EventId, EventRecord, EventRetention, KEPT_WHATEVER_THEIR_AGE, StoredEvent};
use crate::policy::{Budget, BudgetState, BudgetVerdict, Draw};
use crate::silence::Silence;

/// Container key → JSON `BudgetState`.
const BUDGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("budgets");
/// Container key → JSON list of `HistoryEntry`, oldest first.
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");
/// (ms, seq) → JSON `EventRecord`: the audit log.
const AUDIT: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("audit");
/// Approval id → JSON `PendingApproval`.
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
/// Storm scope → JSON `StormWindow`.
const STORMS: TableDefinition<&str, &[u8]> = TableDefinition::new("storms");
/// (ms, seq) → JSON `EventRecord`.
const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
/// (event type, ms, seq): the event log by type, for trimming each type to its count.
const EVENTS_BY_KIND: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("events_by_kind");
/// Event type → how many events of it the log holds.
const EVENT_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("event_counts");
/// Silence id → JSON `Silence`.
const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("silences");
/// Setting name → JSON value (`dry_run`).
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
/// Node name → expiry (Unix ms, 8 bytes big-endian) followed by the encoded directory entry.
const DIRECTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("directory");
/// Node name → expiry (as in [`DIRECTORY`]) followed by the encoded directory summary.
const DIRECTORY_SUMMARIES: TableDefinition<&str, &[u8]> = TableDefinition::new("directory_summaries");
/// (coordinator instance, sequence) → an encoded routed command.
const ROUTED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("routed_commands");
/// (node, id) → an alert waiting for its analysis (encoded `HealthAlert`, after 8 bytes of expiry ms).
const PENDING: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("pending_analyses");
/// Node → (its latest message stream id, the highest sequence number of it processed): one per node.
const STREAMS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("stream_positions");

/// One storm scope's window: who needed remediation when, and until when a storm is on.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct StormWindow {
    members: std::collections::BTreeMap<String, u64>,
    active_until: Option<u64>,
}

/// How a log table is trimmed.
#[derive(Clone, Copy)]
enum Trim {
    /// The event log: a count per type and an age.
    PerKind(EventRetention),
    /// The audit log: an age and a count.
    Audit(AuditRetention),
}

/// A stored directory value (expiry, 8 bytes big-endian, then the entry): the entry unless it expired.
fn unexpired(node: &str, value: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let (expiry, entry) =
        value.split_first_chunk::<8>().ok_or_else(|| StoreError::Corrupt(format!("directory entry of {node}")))?;
    Ok((u64::from_be_bytes(*expiry) > now_ms).then(|| entry.to_vec()))
}

/// The name this backend's errors carry.
const BACKEND: &str = "embedded store";

/// A database failure as a backend-neutral store error.
fn failed(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable { backend: BACKEND, message: error.into().to_string() }
}

/// The blocking worker's failure (a panic or a shutdown) as a store error.
fn worker_failed(error: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable { backend: BACKEND, message: format!("worker failed: {error}") }
}

/// The embedded state store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    clock: DecisionClock,
}

impl EmbeddedStore {
    /// The unexpired value of `node` in the directory table `table`.
    async fn unexpired_in(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        node: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let node = node.to_owned();
        self.blocking(move |db| {
            let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(table).map_err(failed)?;
            match table.get(node.as_str()).map_err(failed)? {
                Some(value) => unexpired(&node, value.value(), now_ms),
                None => Ok(None),
            }
        })
        .await
    }

    /// Opens (or creates) the database at `path`, creating its folder if needed.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || -> Result<Self, StoreError> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| failed(redb::Error::Io(e)))?;
            }
            let db = Database::create(&path).map_err(failed)?;
            let txn = db.begin_write().map_err(failed)?;
            txn.open_table(BUDGETS).map_err(failed)?;
            txn.open_table(EVENTS).map_err(failed)?;
            txn.open_table(HISTORY).map_err(failed)?;
            txn.open_table(STORMS).map_err(failed)?;
            txn.open_table(APPROVALS).map_err(failed)?;
            txn.open_table(AUDIT).map_err(failed)?;
            txn.open_table(EVENTS_BY_KIND).map_err(failed)?;
            txn.open_table(EVENT_COUNTS).map_err(failed)?;
            txn.open_table(SILENCES).map_err(failed)?;
            txn.open_table(SETTINGS).map_err(failed)?;
            txn.open_table(DIRECTORY).map_err(failed)?;
            txn.open_table(DIRECTORY_SUMMARIES).map_err(failed)?;
            txn.open_table(ROUTED).map_err(failed)?;
            txn.open_table(STREAMS).map_err(failed)?;
            txn.open_table(PENDING).map_err(failed)?;
            txn.commit().map_err(failed)?;
            Ok(EmbeddedStore { db: Arc::new(db), clock: DecisionClock::Store })
        })
        .await
        .map_err(worker_failed)?
    }

    /// The same store, deciding budgets on `clock`.
    pub fn with_clock(self, clock: DecisionClock) -> Self {
        EmbeddedStore { clock, ..self }
    }

    /// Appends a record to a log table with a Redis-like id, then trims the table.
    async fn append_to(
        &self,
        log: TableDefinition<'static, (u64, u64), &'static [u8]>,
        record: &EventRecord,
        trim: Trim,
    ) -> Result<EventId, StoreError> {
        let raw = encode_event(record);
        let kind = record.kind.name();
        self.blocking(move |db| {
            let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
            let txn = db.begin_write().map_err(failed)?;
            let id = {
                let mut table = txn.open_table(log).map_err(failed)?;
                let last = table.last().map_err(failed)?.map(|(k, _)| k.value());
                // Same rule as Redis: time-ordered, never going backwards even if the clock does.
                let id = match last {
                    Some((ms, seq)) if ms >= now_ms => EventId { ms, seq: seq + 1 },
                    _ => EventId { ms: now_ms, seq: 0 },
                };
                table.insert((id.ms, id.seq), raw.as_slice()).map_err(failed)?;
                match trim {
                    Trim::PerKind(retention) => {
                        let mut by_kind = txn.open_table(EVENTS_BY_KIND).map_err(failed)?;
                        let mut counts = txn.open_table(EVENT_COUNTS).map_err(failed)?;
                        by_kind.insert((kind, id.ms, id.seq), ()).map_err(failed)?;
                        let mut count = counts.get(kind).map_err(failed)?.map_or(0, |c| c.value()) + 1;
                        while count > retention.max_per_type {
                            let oldest = by_kind
                                .range((kind, 0, 0)..=(kind, u64::MAX, u64::MAX))
                                .map_err(failed)?
                                .next()
                                .transpose()
                                .map_err(failed)?
                                .map(|(key, _)| {
                                    let (_, ms, seq) = key.value();
                                    (ms, seq)
                                });
                            let Some((ms, seq)) = oldest else { break };
                            by_kind.remove((kind, ms, seq)).map_err(failed)?;
                            table.remove((ms, seq)).map_err(failed)?;
                            count -= 1;
                        }
                        counts.insert(kind, count).map_err(failed)?;
                        let oldest = (now_ms.saturating_sub(retention.max_age.as_millis() as u64), 0);
                        let mut expired = Vec::new();
                        for entry in table.range(..oldest).map_err(failed)? {
                            let (key, value) = entry.map_err(failed)?;
                            expired.push((key.value(), decode_event(value.value())?.kind.name()));
                        }
                        // Oldest first: a type stops losing records by age at its newest few.
                        for ((ms, seq), expired_kind) in expired {
                            let left = counts.get(expired_kind).map_err(failed)?.map_or(0, |c| c.value());
                            if left <= KEPT_WHATEVER_THEIR_AGE {
                                continue;
                            }
                            table.remove((ms, seq)).map_err(failed)?;
                            by_kind.remove((expired_kind, ms, seq)).map_err(failed)?;
                            counts.insert(expired_kind, left - 1).map_err(failed)?;
                        }
                    }
                    Trim::Audit(retention) => {
                        let oldest = now_ms.saturating_sub(retention.max_age.as_millis() as u64);
                        let mut count = table.len().map_err(failed)?;
                        while count > KEPT_WHATEVER_THEIR_AGE {
                            let first = table.first().map_err(failed)?.map(|(key, _)| key.value());
                            match first {
                                Some(key) if key < (oldest, 0) => {
                                    table.remove(key).map_err(failed)?;
                                    count -= 1;
                                }
                                _ => break,
                            }
                        }
                        while count > retention.max_entries && table.pop_first().map_err(failed)?.is_some() {
                            count -= 1;
                        }
                    }
                }
                id
            };
            txn.commit().map_err(failed)?;
            Ok(id)
        })
        .await
    }

    /// Reads up to `limit` records of a log table after `after`, oldest first.
    async fn read_from(
        &self,
        log: TableDefinition<'static, (u64, u64), &'static [u8]>,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(log).map_err(failed)?;
            let start = match after {
                Some(id) if id.seq == u64::MAX => (id.ms + 1, 0),
                Some(id) => (id.ms, id.seq + 1),
                None => (0, 0),
            };
            let mut events = Vec::new();
            for entry in table.range(start..).map_err(failed)?.take(limit) {
                let (key, value) = entry.map_err(failed)?;
                let (ms, seq) = key.value();
                events.push(StoredEvent { id: EventId { ms, seq }, record: decode_event(value.value())? });
            }
            Ok(events)
        })
        .await
    }

    /// Applies `change` to the container `key`'s budget state in one transaction.
    async fn update_budget(
        &self,
        key: &str,
        change: impl FnOnce(&mut BudgetState) + Send + 'static,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            {
                let mut table = txn.open_table(BUDGETS).map_err(failed)?;
                let mut state: BudgetState = match table.get(key.as_str()).map_err(failed)? {
                    Some(raw) => serde_json::from_slice(raw.value())
                        .map_err(|e| StoreError::Corrupt(format!("budget of {key}: {e}")))?,
                    None => BudgetState::default(),
                };
                change(&mut state);
                let raw = serde_json::to_vec(&state).expect("budget state serializes");
                table.insert(key.as_str(), raw.as_slice()).map_err(failed)?;
            }
            txn.commit().map_err(failed)?;
            Ok(())
        })
        .await
    }

    /// Writes `raw` under `key` in a keyed table, in one transaction.
    async fn put_value(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
        raw: Vec<u8>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            txn.open_table(table).map_err(failed)?.insert(key.as_str(), raw.as_slice()).map_err(failed)?;
            txn.commit().map_err(failed)?;
            Ok(())
        })
        .await
    }

    /// Removes `key` from a keyed table and returns what it held, in one transaction.
    async fn take_value(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            let taken = txn
                .open_table(table)
                .map_err(failed)?
                .remove(key.as_str())
                .map_err(failed)?
                .map(|v| v.value().to_vec());
            txn.commit().map_err(failed)?;
            Ok(taken)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db)).await.map_err(worker_failed)?
    }
}

#[async_trait]
impl BudgetStore for EmbeddedStore {
    async fn try_begin_action(
        &self,
        key: &str,
        now_ms: u64,
        budget: &Budget,
        draw: Draw,
    ) -> Result<BudgetVerdict, StoreError> {
        let (key, budget, clock) = (key.to_owned(), *budget, self.clock);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            // Read inside the transaction: decisions are serialized, and so are their times.
            let now_ms = clock.host_or(now_ms);
            let verdict = {
                let mut table = txn.open_table(BUDGETS).map_err(failed)?;
                let mut state: BudgetState = match table.get(key.as_str()).map_err(failed)? {
                    Some(raw) => serde_json::from_slice(raw.value())
                        .map_err(|e| StoreError::Corrupt(format!("budget of {key}: {e}")))?,
                    None => BudgetState::default(),
                };
                let verdict = budget.evaluate(&mut state, now_ms, draw);
                if matches!(verdict, BudgetVerdict::Allowed { .. }) {
                    let raw = serde_json::to_vec(&state).expect("budget state serializes");
                    table.insert(key.as_str(), raw.as_slice()).map_err(failed)?;
                }
                verdict
            };
            txn.commit().map_err(failed)?;
            Ok(verdict)
        })
        .await
    }

    async fn record_attempt(&self, key: &str, at_ms: u64, _budget: &Budget) -> Result<(), StoreError> {
        self.update_budget(key, move |state| state.record_attempt(at_ms)).await
    }

    async fn record_outcome(&self, key: &str, success: bool, now_ms: u64, _budget: &Budget) -> Result<(), StoreError> {
        let now_ms = self.clock.host_or(now_ms);
        self.update_budget(key, move |state| state.record_outcome(success, now_ms)).await
    }

    async fn release(&self, key: &str) -> Result<BudgetState, StoreError> {
        match self.take_value(BUDGETS, key).await? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt(format!("budget of {key}: {e}"))),
            None => Ok(BudgetState::default()),
        }
    }

    async fn read_budget(&self, key: &str) -> Result<BudgetState, StoreError> {
        let mut states = self.read_budgets(&[key.to_owned()]).await?;
        Ok(states.pop().unwrap_or_default())
    }

    async fn read_budgets(&self, keys: &[String]) -> Result<Vec<BudgetState>, StoreError> {
        let keys = keys.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(BUDGETS).map_err(failed)?;
            keys.iter()
                .map(|key| match table.get(key.as_str()).map_err(failed)? {
                    Some(raw) => serde_json::from_slice(raw.value())
                        .map_err(|e| StoreError::Corrupt(format!("budget of {key}: {e}"))),
                    None => Ok(BudgetState::default()),
                })
                .collect()
        })
        .await
    }

    async fn note_need(
        &self,
        scopes: &[String],
        member: &str,
        now_ms: u64,
        storm: &StormConfig,
    ) -> Result<StormVerdict, StoreError> {
        let (scopes, member, storm) = (scopes.to_vec(), member.to_owned(), *storm);
        self.blocking(move |db| {
            let window = storm.window.as_millis() as u64;
            let txn = db.begin_write().map_err(failed)?;
            let mut verdict = StormVerdict::Calm;
            {
                let mut table = txn.open_table(STORMS).map_err(failed)?;
                for scope in &scopes {
                    let mut state: StormWindow = match table.get(scope.as_str()).map_err(failed)? {
                        Some(raw) => serde_json::from_slice(raw.value())
                            .map_err(|e| StoreError::Corrupt(format!("storm: {e}")))?,
                        None => StormWindow::default(),
                    };
                    state.members.insert(member.clone(), now_ms);
                    state.members.retain(|_, t| *t + window >= now_ms);
                    if verdict == StormVerdict::Calm && state.members.len() as u64 > u64::from(storm.threshold) {
                        let started = state.active_until.is_none_or(|until| until < now_ms);
                        state.active_until = Some(now_ms + window);
                        let mut members: Vec<(u64, String)> =
                            state.members.iter().map(|(m, t)| (*t, m.clone())).collect();
                        members.sort();
                        verdict = StormVerdict::Storm {
                            scope: scope.clone(),
                            started,
                            members: members.into_iter().map(|(_, m)| m).collect(),
                        };
                    }
                    let raw = serde_json::to_vec(&state).expect("storm window serializes");
                    table.insert(scope.as_str(), raw.as_slice()).map_err(failed)?;
                }
            }
            txn.commit().map_err(failed)?;
            Ok(verdict)
        })
        .await
    }

    async fn end_storms(&self) -> Result<Vec<String>, StoreError> {
        self.blocking(move |db| {
            let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
            let txn = db.begin_write().map_err(failed)?;
            let mut stormy = Vec::new();
            {
                let mut table = txn.open_table(STORMS).map_err(failed)?;
                let mut scopes = Vec::new();
                for entry in table.iter().map_err(failed)? {
                    let (scope, raw) = entry.map_err(failed)?;
                    let window: StormWindow =
                        serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt(format!("storm: {e}")))?;
                    if window.active_until.is_some_and(|until| until >= now_ms) {
                        stormy.push(scope.value().to_owned());
                    }
                    scopes.push(scope.value().to_owned());
                }
                for scope in scopes {
                    table.remove(scope.as_str()).map_err(failed)?;
                }
            }
            txn.commit().map_err(failed)?;
            Ok(stormy)
        })
        .await
    }
}

#[async_trait]
impl EventLog for EmbeddedStore {
    async fn append_event(&self, record: &EventRecord, retention: &EventRetention) -> Result<EventId, StoreError> {
        self.append_to(EVENTS, record, Trim::PerKind(*retention)).await
    }

    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_from(EVENTS, after, limit).await
    }

    async fn append_audit(&self, record: &EventRecord, retention: &AuditRetention) -> Result<EventId, StoreError> {
        self.append_to(AUDIT, record, Trim::Audit(*retention)).await
    }

    async fn read_audit(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_from(AUDIT, after, limit).await
    }
}

#[async_trait]
impl HistoryStore for EmbeddedStore {
    async fn append_history(
        &self,
        key: &str,
        entry: &HistoryEntry,
        keep: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, entry) = (key.to_owned(), entry.clone());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            {
                let mut table = txn.open_table(HISTORY).map_err(failed)?;
                let mut entries: Vec<HistoryEntry> = match table.get(key.as_str()).map_err(failed)? {
                    Some(raw) => {
                        serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt(format!("history: {e}")))?
                    }
                    None => Vec::new(),
                };
                let now_ms = entry.time_ms;
                entries.push(entry);
                let mut entries = fresh(entries, now_ms, ttl);
                let excess = entries.len().saturating_sub(keep);
                entries.drain(..excess);
                let raw = serde_json::to_vec(&entries).expect("history serializes");
                table.insert(key.as_str(), raw.as_slice()).map_err(failed)?;
            }
            txn.commit().map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn history(&self, key: &str, now_ms: u64, ttl: Duration) -> Result<Vec<HistoryEntry>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(HISTORY).map_err(failed)?;
            let entries: Vec<HistoryEntry> = match table.get(key.as_str()).map_err(failed)? {
                Some(raw) => {
                    serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt(format!("history: {e}")))?
                }
                None => Vec::new(),
            };
            Ok(fresh(entries, now_ms, ttl))
        })
        .await
    }
}

#[async_trait]
impl SettingsStore for EmbeddedStore {
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.put_value(SILENCES, &silence.id, serde_json::to_vec(silence).expect("silences serialize")).await
    }

    async fn remove_silence(&self, id: &str) -> Result<Option<Silence>, StoreError> {
        self.take_value(SILENCES, id).await?.map(|raw| decode_silence(&raw)).transpose()
    }

    async fn silences(&self, now_ms: u64) -> Result<Vec<Silence>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(SILENCES).map_err(failed)?;
            let mut all = Vec::new();
            for entry in table.iter().map_err(failed)? {
                let (_, raw) = entry.map_err(failed)?;
                all.push(decode_silence(raw.value())?);
            }
            drop(table);
            drop(txn);
            let (live, expired) = in_force(all, now_ms);
            if !expired.is_empty() {
                let txn = db.begin_write().map_err(failed)?;
                {
                    let mut table = txn.open_table(SILENCES).map_err(failed)?;
                    for id in &expired {
                        table.remove(id.as_str()).map_err(failed)?;
                    }
                }
                txn.commit().map_err(failed)?;
            }
            Ok(live)
        })
        .await
    }

    async fn dry_run_override(&self) -> Result<Option<bool>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(SETTINGS).map_err(failed)?;
            let value = table.get("dry_run").map_err(failed)?;
            value
                .map(|raw| {
                    serde_json::from_slice(raw.value())
                        .map_err(|e| StoreError::Corrupt(format!("dry_run setting: {e}")))
                })
                .transpose()
        })
        .await
    }

    async fn set_dry_run_override(&self, enabled: bool) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            let raw = serde_json::to_vec(&enabled).expect("a bool serializes");
            txn.open_table(SETTINGS).map_err(failed)?.insert("dry_run", raw.as_slice()).map_err(failed)?;
            txn.commit().map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn put_approval(&self, id: &str, approval: &PendingApproval) -> Result<(), StoreError> {
        self.put_value(APPROVALS, id, serde_json::to_vec(approval).expect("approval serializes")).await
    }

    async fn take_approval(&self, id: &str) -> Result<Option<PendingApproval>, StoreError> {
        let raw = self.take_value(APPROVALS, id).await?;
        raw.map(|raw| serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt(format!("approval: {e}"))))
            .transpose()
    }

    async fn put_pending_analysis(&self, node: &str, id: &str, alert: &[u8], max: usize) -> Result<bool, StoreError> {
        let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
        let expires_ms = now_ms + super::PENDING_ANALYSIS_TTL.as_millis() as u64;
        let mut value = expires_ms.to_be_bytes().to_vec();
        value.extend_from_slice(alert);
        let (node, id) = (node.to_owned(), id.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            let kept = {
                let mut table = txn.open_table(PENDING).map_err(failed)?;
                let mut live = 0;
                let mut expired = Vec::new();
                for entry in table.range((node.as_str(), "")..).map_err(failed)? {
                    let (key, value) = entry.map_err(failed)?;
                    let (owner, waiting) = key.value();
                    if owner != node {
                        break;
                    }
                    match expiry(value.value()) < now_ms {
                        true => expired.push(waiting.to_owned()),
                        false => live += 1,
                    }
                }
                for waiting in expired {
                    table.remove((node.as_str(), waiting.as_str())).map_err(failed)?;
                }
                let kept = live < max;
                if kept {
                    table.insert((node.as_str(), id.as_str()), value.as_slice()).map_err(failed)?;
                }
                kept
            };
            txn.commit().map_err(failed)?;
            Ok(kept)
        })
        .await
    }

    async fn finish_pending_analysis(&self, node: &str, id: &str) -> Result<bool, StoreError> {
        let (node, id) = (node.to_owned(), id.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            let was = txn
                .open_table(PENDING)
                .map_err(failed)?
                .remove((node.as_str(), id.as_str()))
                .map_err(failed)?
                .is_some();
            txn.commit().map_err(failed)?;
            Ok(was)
        })
        .await
    }

    async fn take_pending_analyses(&self, node: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let node = node.to_owned();
        self.blocking(move |db| {
            let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
            let txn = db.begin_write().map_err(failed)?;
            let taken = {
                let mut table = txn.open_table(PENDING).map_err(failed)?;
                let mut all = Vec::new();
                for entry in table.range((node.as_str(), "")..).map_err(failed)? {
                    let (key, value) = entry.map_err(failed)?;
                    let (owner, id) = key.value();
                    if owner != node {
                        break;
                    }
                    all.push((id.to_owned(), value.value().to_vec()));
                }
                for (id, _) in &all {
                    table.remove((node.as_str(), id.as_str())).map_err(failed)?;
                }
                all.into_iter().filter(|(_, v)| expiry(v) >= now_ms).map(|(id, v)| (id, v[8..].to_vec())).collect()
            };
            txn.commit().map_err(failed)?;
            Ok(taken)
        })
        .await
    }
}

/// The expiry (Unix ms) in the first 8 bytes of a value; 0 (expired) when it is too short.
fn expiry(value: &[u8]) -> u64 {
    value.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

#[async_trait]
impl DirectoryStore for EmbeddedStore {
    async fn put_directory_entry(
        &self,
        node: &str,
        summary: &[u8],
        entry: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
        let expires = (now_ms + ttl.as_millis() as u64).to_be_bytes();
        let with_expiry = |bytes: &[u8]| [expires.as_slice(), bytes].concat();
        let (summary, entry, node) = (with_expiry(summary), entry.map(with_expiry), node.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            {
                let mut entries = txn.open_table(DIRECTORY).map_err(failed)?;
                let entry = match entry {
                    Some(entry) => entry,
                    None => {
                        let earlier = entries.get(node.as_str()).map_err(failed)?.map(|v| v.value().to_vec());
                        match earlier.filter(|value| expiry(value) > now_ms) {
                            // The same entry, with the new expiry.
                            Some(mut value) => {
                                value[..8].copy_from_slice(&expires);
                                value
                            }
                            None => return Ok(false),
                        }
                    }
                };
                entries.insert(node.as_str(), entry.as_slice()).map_err(failed)?;
                let mut summaries = txn.open_table(DIRECTORY_SUMMARIES).map_err(failed)?;
                summaries.insert(node.as_str(), summary.as_slice()).map_err(failed)?;
            }
            txn.commit().map_err(failed)?;
            Ok(true)
        })
        .await
    }

    async fn directory_nodes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.directory_summaries().await?.into_iter().map(|(node, _)| node).collect())
    }

    async fn directory_summaries(&self) -> Result<Vec<(String, Option<Vec<u8>>)>, StoreError> {
        self.blocking(move |db| {
            let now_ms = crate::events::unix_ms(std::time::SystemTime::now());
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(DIRECTORY_SUMMARIES).map_err(failed)?;
            let mut live = Vec::new();
            for entry in table.iter().map_err(failed)? {
                let (node, value) = entry.map_err(failed)?;
                if let Some(summary) = unexpired(node.value(), value.value(), now_ms)? {
                    live.push((node.value().to_owned(), Some(summary)));
                }
            }
            Ok(live)
        })
        .await
    }

    async fn directory_summary(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.unexpired_in(DIRECTORY_SUMMARIES, node).await
    }

    async fn directory_entry(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.unexpired_in(DIRECTORY, node).await
    }

    async fn route_command(&self, coordinator: &str, command: &[u8]) -> Result<(), StoreError> {
        let (coordinator, command) = (coordinator.to_owned(), command.to_vec());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            {
                let mut table = txn.open_table(ROUTED).map_err(failed)?;
                let last = table
                    .range((coordinator.as_str(), 0)..=(coordinator.as_str(), u64::MAX))
                    .map_err(failed)?
                    .next_back()
                    .transpose()
                    .map_err(failed)?
                    .map(|(key, _)| key.value().1);
                let seq = last.map_or(0, |n| n + 1);
                table.insert((coordinator.as_str(), seq), command.as_slice()).map_err(failed)?;
            }
            txn.commit().map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn take_routed_command(&self, coordinator: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let coordinator = coordinator.to_owned();
        self.blocking(move |db| {
            // Asked ten times a second: look first, so that an empty queue costs a read, not a commit (two
            // fdatasyncs: it was 20 a second, most of an idle coordinator's CPU).
            let read = db.begin_read().map_err(failed)?;
            let range = (coordinator.as_str(), 0)..=(coordinator.as_str(), u64::MAX);
            if read.open_table(ROUTED).map_err(failed)?.range(range).map_err(failed)?.next().is_none() {
                return Ok(None);
            }
            drop(read);
            let txn = db.begin_write().map_err(failed)?;
            let taken = {
                let mut table = txn.open_table(ROUTED).map_err(failed)?;
                let first = table
                    .range((coordinator.as_str(), 0)..=(coordinator.as_str(), u64::MAX))
                    .map_err(failed)?
                    .next()
                    .transpose()
                    .map_err(failed)?
                    .map(|(key, value)| (key.value().1, value.value().to_vec()));
                if let Some((seq, _)) = &first {
                    table.remove((coordinator.as_str(), *seq)).map_err(failed)?;
                }
                first.map(|(_, command)| command)
            };
            txn.commit().map_err(failed)?;
            Ok(taken)
        })
        .await
    }

    async fn stream_position(&self, node: &str, stream: &str) -> Result<u64, StoreError> {
        let (node, stream) = (node.to_owned(), stream.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(failed)?;
            let table = txn.open_table(STREAMS).map_err(failed)?;
            let stored = table.get(node.as_str()).map_err(failed)?;
            Ok(stored.map_or(0, |v| {
                let (id, seq) = v.value();
                if id == stream { seq } else { 0 }
            }))
        })
        .await
    }

    async fn advance_stream(&self, node: &str, stream: &str, seq: u64) -> Result<(), StoreError> {
        let (node, stream) = (node.to_owned(), stream.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(failed)?;
            {
                let mut table = txn.open_table(STREAMS).map_err(failed)?;
                let current = table.get(node.as_str()).map_err(failed)?.map_or(0, |v| {
                    let (id, seq) = v.value();
                    if id == stream { seq } else { 0 }
                });
                table.insert(node.as_str(), (stream.as_str(), current.max(seq))).map_err(failed)?;
            }
            txn.commit().map_err(failed)?;
            Ok(())
        })
        .await
    }
}

impl StateStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn is_shared(&self) -> bool {
        false
    }
}
