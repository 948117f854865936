//! The journal: the one way an event is recorded, and the one way the log is read back.
//!
//! [`Journal::append`] marks a record about a silenced container as silenced, appends it to the event log
//! (and, for decisions, actions and results, to the audit log), hands it to the notifier, counts it in this
//! coordinator's instruments and wakes live readers. [`Journal::scan`] reads a range of either log, bounded;
//! [`Journal::tail`] follows the event log live: woken by this coordinator's appends, polling for those of
//! other coordinators on the same store. ListEvents, ListAudit, WatchEvents, GetContainer, the dashboard's
//! pages, its live stream and its analytics all read through these two.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::ReceiverStream;

use super::settings::Settings;
use crate::alerting::Notifier;
use crate::events::{AuditRetention, EventId, EventRecord, EventRetention, StoredEvent};
use crate::instruments::CoordinatorInstruments;
use crate::store::{EventLog, StoreError};

/// Events read from the store at a time by a scan.
const SCAN_BATCH: usize = 1000;
/// Events read from the store at a time by a live tail.
const TAIL_BATCH: usize = 500;
/// Events a live tail holds for a slow reader.
const TAIL_BUFFER: usize = 256;
/// How often a live tail reads the log again when no append of this coordinator woke it (for the events of
/// other coordinators on the same store).
const TAIL_POLL: Duration = Duration::from_millis(500);

/// Which log a read is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// The event log: everything that happened.
    Events,
    /// The audit log: decisions, actions, results and operators' changes, kept longer.
    Audit,
}

/// Where a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanEnd {
    /// The last event examined, from which to read on (the scan's start when none was).
    pub last: Option<EventId>,
    /// Whether the scan stopped at its limit, before the end of its range.
    pub truncated: bool,
}

/// The live tail of the event log: each event after the start, in order, as it is appended; ends after a
/// store failure (its last item) or when dropped.
pub type Tail = ReceiverStream<Result<StoredEvent, StoreError>>;

/// The event id just before `id`, so that reading after it starts at `id`.
pub fn just_before(id: EventId) -> Option<EventId> {
    match (id.ms, id.seq) {
        (0, 0) => None,
        (ms, 0) => Some(EventId { ms: ms - 1, seq: u64::MAX }),
        (ms, seq) => Some(EventId { ms, seq: seq - 1 }),
    }
}

/// The cursor that reads from the time `ms` (Unix milliseconds) on.
pub fn from_time(ms: u64) -> Option<EventId> {
    just_before(EventId { ms, seq: 0 })
}

/// Whether an appended record is handed to the notifier.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Notice {
    Send,
    Skip,
}

/// The event and audit logs, with everything that follows an append.
pub struct Journal {
    log: Arc<dyn EventLog>,
    /// For marking records about silenced containers.
    settings: Arc<Settings>,
    /// Told of every stored event; sends the notifications (never waits).
    notifier: Notifier,
    instruments: Arc<CoordinatorInstruments>,
    /// Woken at every event this coordinator records, for live readers.
    appended: tokio::sync::Notify,
    event_retention: EventRetention,
    audit_retention: AuditRetention,
}

impl Journal {
    /// A journal writing to `log` with these retentions, marking silences from `settings`, notifying through
    /// `notifier` and counting in `instruments`.
    pub fn new(
        log: Arc<dyn EventLog>,
        settings: Arc<Settings>,
        notifier: Notifier,
        instruments: Arc<CoordinatorInstruments>,
        event_retention: EventRetention,
        audit_retention: AuditRetention,
    ) -> Self {
        Journal {
            log,
            settings,
            notifier,
            instruments,
            appended: tokio::sync::Notify::new(),
            event_retention,
            audit_retention,
        }
    }

    /// Records `record`: silenced-marked, in the event log (and the audit log for the kinds it keeps),
    /// notified, counted, and shown to live readers.
    pub async fn append(&self, record: &EventRecord) -> Result<EventId, StoreError> {
        self.write(record, Notice::Send).await
    }

    /// Records `record` like [`Journal::append`] but sends no notification (the end of a state store
    /// outage: its notification went out when it began).
    pub async fn append_unnotified(&self, record: &EventRecord) -> Result<EventId, StoreError> {
        self.write(record, Notice::Skip).await
    }

    /// The notifier it hands events to (for test notifications).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Notifies `record` without recording it, for when the log itself cannot be written.
    pub fn notify_unrecorded(&self, record: &EventRecord) {
        self.notifier.notify(EventId { ms: record.time_ms, seq: 0 }, record);
    }

    async fn write(&self, record: &EventRecord, notice: Notice) -> Result<EventId, StoreError> {
        let marked;
        let record = if !record.node.is_empty()
            && self.settings.silence_for(&record.node, &record.container_name).await?.is_some()
        {
            marked = EventRecord { silenced: true, ..record.clone() };
            &marked
        } else {
            record
        };
        let id = self.log.append_event(record, &self.event_retention).await?;
        if notice == Notice::Send {
            self.notifier.notify(id, record);
        }
        self.instruments.observe(record);
        self.appended.notify_waiters();
        if record.kind.audited() {
            self.log.append_audit(record, &self.audit_retention).await?;
        }
        Ok(id)
    }

    /// Completes when this coordinator records its next event (create it before reading, so none is
    /// missed). Events recorded by other coordinators on the same store are found by polling.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.appended.notified()
    }

    async fn read(&self, log: Log, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        match log {
            Log::Events => self.log.read_events(after, limit).await,
            Log::Audit => self.log.read_audit(after, limit).await,
        }
    }

    /// The event `id`, if the log still holds it.
    pub async fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self.log.read_events(just_before(id), 1).await?.into_iter().find(|e| e.id == id))
    }

    /// Reads `log` after `after` (from the start when `None`), oldest first, while events are before
    /// `until_ms`, handing each to `visit` until it breaks; examines at most `max` events.
    pub async fn scan(
        &self,
        log: Log,
        after: Option<EventId>,
        until_ms: Option<u64>,
        max: usize,
        mut visit: impl FnMut(StoredEvent) -> ControlFlow<()>,
    ) -> Result<ScanEnd, StoreError> {
        let mut cursor = after;
        let mut scanned = 0;
        loop {
            let batch = self.read(log, cursor, SCAN_BATCH).await?;
            let full = batch.len() == SCAN_BATCH;
            for event in batch {
                if until_ms.is_some_and(|until| event.id.ms >= until) {
                    return Ok(ScanEnd { last: cursor, truncated: false });
                }
                cursor = Some(event.id);
                scanned += 1;
                if visit(event).is_break() {
                    return Ok(ScanEnd { last: cursor, truncated: false });
                }
                if scanned >= max {
                    return Ok(ScanEnd { last: cursor, truncated: true });
                }
            }
            if !full {
                return Ok(ScanEnd { last: cursor, truncated: false });
            }
        }
    }

    /// Follows the event log from after `after` (from the start when `None`): every event that passes
    /// `filter`, as it is appended, until the returned stream is dropped.
    pub fn tail(
        self: &Arc<Self>,
        after: Option<EventId>,
        filter: impl Fn(&EventRecord) -> bool + Send + 'static,
    ) -> Tail {
        let (tx, rx) = tokio::sync::mpsc::channel(TAIL_BUFFER);
        let journal = self.clone();
        tokio::spawn(async move {
            let mut cursor = after;
            loop {
                let appended = journal.appended();
                let batch = match journal.log.read_events(cursor, TAIL_BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                };
                let caught_up = batch.len() < TAIL_BATCH;
                for event in batch {
                    cursor = Some(event.id);
                    if filter(&event.record) && tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if caught_up {
                    tokio::select! {
                        _ = appended => {}
                        _ = tokio::time::sleep(TAIL_POLL) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use tokio_stream::StreamExt;

    use super::*;
    use crate::events::EventKind;
    use crate::silence::Silence;
    use crate::store::{PendingApproval, SettingsStore};

    /// An event log in memory, numbering events 1, 2, 3...; it fails every read while `failing`.
    #[derive(Default)]
    struct MemoryLog {
        events: Mutex<Vec<StoredEvent>>,
        audit: Mutex<Vec<StoredEvent>>,
        silences: Vec<Silence>,
        failing: AtomicBool,
    }

    fn append_to(log: &Mutex<Vec<StoredEvent>>, record: &EventRecord) -> EventId {
        let mut log = log.lock().unwrap();
        let id = EventId { ms: log.len() as u64 + 1, seq: 0 };
        log.push(StoredEvent { id, record: record.clone() });
        id
    }

    fn read_from(log: &Mutex<Vec<StoredEvent>>, after: Option<EventId>, limit: usize) -> Vec<StoredEvent> {
        log.lock().unwrap().iter().filter(|e| after.is_none_or(|a| e.id > a)).take(limit).cloned().collect()
    }

    impl MemoryLog {
        fn check(&self) -> Result<(), StoreError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable { backend: "memory", message: "down".into() });
            }
            Ok(())
        }
    }

    #[async_trait]
    impl EventLog for MemoryLog {
        async fn append_event(&self, record: &EventRecord, _: &EventRetention) -> Result<EventId, StoreError> {
            Ok(append_to(&self.events, record))
        }
        async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
            self.check()?;
            Ok(read_from(&self.events, after, limit))
        }
        async fn append_audit(&self, record: &EventRecord, _: &AuditRetention) -> Result<EventId, StoreError> {
            Ok(append_to(&self.audit, record))
        }
        async fn read_audit(&self, after: Option<EventId>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
            self.check()?;
            Ok(read_from(&self.audit, after, limit))
        }
    }

    #[async_trait]
    impl SettingsStore for MemoryLog {
        async fn put_silence(&self, _: &Silence) -> Result<(), StoreError> {
            Ok(())
        }
        async fn remove_silence(&self, _: &str) -> Result<Option<Silence>, StoreError> {
            Ok(None)
        }
        async fn silences(&self, _: u64) -> Result<Vec<Silence>, StoreError> {
            Ok(self.silences.clone())
        }
        async fn dry_run_override(&self) -> Result<Option<bool>, StoreError> {
            Ok(None)
        }
        async fn set_dry_run_override(&self, _: bool) -> Result<(), StoreError> {
            Ok(())
        }
        async fn put_approval(&self, _: &str, _: &PendingApproval) -> Result<(), StoreError> {
            Ok(())
        }
        async fn take_approval(&self, _: &str) -> Result<Option<PendingApproval>, StoreError> {
            Ok(None)
        }
        async fn put_pending_analysis(&self, _: &str, _: &str, _: &[u8], _: usize) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn finish_pending_analysis(&self, _: &str, _: &str) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn take_pending_analyses(&self, _: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn journal(log: MemoryLog) -> (Arc<MemoryLog>, Arc<Journal>) {
        let log = Arc::new(log);
        let settings = Arc::new(Settings::new(log.clone(), false));
        let journal = Journal::new(
            log.clone(),
            settings,
            Notifier::disabled(),
            Arc::new(CoordinatorInstruments::new()),
            EventRetention::default(),
            AuditRetention::default(),
        );
        (log, Arc::new(journal))
    }

    fn record(kind: EventKind, container: &str) -> EventRecord {
        EventRecord::new(kind, "host-a", container, container, "why")
    }

    #[test]
    fn dashboard_reads_start_just_before_an_id() {
        assert_eq!(just_before(EventId { ms: 5, seq: 2 }), Some(EventId { ms: 5, seq: 1 }));
        assert_eq!(just_before(EventId { ms: 5, seq: 0 }), Some(EventId { ms: 4, seq: u64::MAX }));
        assert_eq!(just_before(EventId { ms: 0, seq: 0 }), None);
    }

    #[tokio::test]
    async fn an_append_marks_a_silenced_container_and_audits_what_the_audit_log_keeps() {
        let silence = Silence {
            id: "s".into(),
            node: "host-a".into(),
            container: Some("web".into()),
            reason: "maintenance".into(),
            created_by: "operator:alice".into(),
            created_ms: 0,
            expires_ms: u64::MAX,
        };
        let (log, journal) = journal(MemoryLog { silences: vec![silence], ..MemoryLog::default() });
        journal.append(&record(EventKind::HealthAlert, "web")).await.unwrap();
        journal.append(&record(EventKind::FalseAlarm, "db")).await.unwrap();
        let events = read_from(&log.events, None, 10);
        let marks: Vec<(&str, bool)> =
            events.iter().map(|e| (e.record.container_name.as_str(), e.record.silenced)).collect();
        assert_eq!(marks, [("web", true), ("db", false)]);
        let audited: Vec<EventKind> = read_from(&log.audit, None, 10).iter().map(|e| e.record.kind).collect();
        assert_eq!(audited, [EventKind::FalseAlarm], "a decision is audited, an alert is not");
    }

    #[tokio::test]
    async fn a_scan_stops_at_the_end_of_its_range_at_its_limit_or_when_told() {
        let (_, journal) = journal(MemoryLog::default());
        for _ in 0..2500 {
            journal.append(&record(EventKind::HealthAlert, "web")).await.unwrap();
        }
        let id = |ms| Some(EventId { ms, seq: 0 });
        let mut seen = 0;
        let all = journal.scan(Log::Events, None, None, usize::MAX, |_| {
            seen += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(all.await.unwrap(), ScanEnd { last: id(2500), truncated: false });
        assert_eq!(seen, 2500, "every batch");
        let mut seen = Vec::new();
        let range = journal.scan(Log::Events, id(10), Some(15), usize::MAX, |e| {
            seen.push(e.id.ms);
            ControlFlow::Continue(())
        });
        assert_eq!(range.await.unwrap(), ScanEnd { last: id(14), truncated: false });
        assert_eq!(seen, [11, 12, 13, 14], "after the start, before the end");
        let limited = journal.scan(Log::Events, None, None, 1500, |_| ControlFlow::Continue(()));
        assert_eq!(limited.await.unwrap(), ScanEnd { last: id(1500), truncated: true });
        let told = journal.scan(Log::Events, None, None, usize::MAX, |e| {
            if e.id.ms == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        assert_eq!(told.await.unwrap(), ScanEnd { last: id(3), truncated: false });
        let empty = journal.scan(Log::Audit, id(7), None, usize::MAX, |_| ControlFlow::Continue(()));
        assert_eq!(empty.await.unwrap(), ScanEnd { last: id(7), truncated: false }, "nothing read: where it started");
    }

    #[tokio::test]
    async fn a_tail_sends_what_passes_its_filter_as_it_is_appended_and_ends_after_a_store_failure() {
        let (log, journal) = journal(MemoryLog::default());
        journal.append(&record(EventKind::Storm, "before")).await.unwrap();
        journal.append(&record(EventKind::HealthAlert, "web")).await.unwrap();
        let mut tail = journal.tail(Some(EventId { ms: 1, seq: 0 }), |r| r.kind == EventKind::Storm);
        journal.append(&record(EventKind::HealthAlert, "db")).await.unwrap();
        journal.append(&record(EventKind::Storm, "after")).await.unwrap();
        let event = next(&mut tail).await.unwrap().unwrap();
        assert_eq!((event.id.ms, event.record.container_name.as_str()), (4, "after"), "after the start, filtered");
        log.failing.store(true, Ordering::SeqCst);
        journal.append(&record(EventKind::Storm, "lost")).await.unwrap();
        assert!(matches!(next(&mut tail).await, Some(Err(StoreError::Unavailable { .. }))));
        assert!(next(&mut tail).await.is_none(), "the tail ends after the failure");
    }

    /// The tail's next item, within a deadline.
    async fn next(tail: &mut Tail) -> Option<Result<StoredEvent, StoreError>> {
        tokio::time::timeout(Duration::from_secs(5), tail.next()).await.expect("the next item in time")
    }
}
