//! State store outages, as people hear of them: the first failure to record a node's report sends one
//! `store_unavailable` notification saying why (the log itself cannot be written); the first success after
//! it records in the log how long the outage lasted (without a second notification).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::journal::Journal;
use crate::events::{EventKind, EventRecord, rfc3339, unix_ms};
use crate::store::StoreError;

/// Since when the store has not answered, while it does not.
pub struct StoreOutage {
    journal: Arc<Journal>,
    /// Unix ms of the first failure of the current outage.
    down_since: Mutex<Option<u64>>,
}

impl StoreOutage {
    /// Outages noticed through `journal`.
    pub fn new(journal: Arc<Journal>) -> Self {
        StoreOutage { journal, down_since: Mutex::new(None) }
    }

    /// Notes that the state store failed to record a node's report; the first failure of an outage sends
    /// the notification.
    pub fn store_failed(&self, error: &StoreError) {
        let now = unix_ms(SystemTime::now());
        {
            let mut down_since = self.down_since.lock().expect("store outage lock");
            if down_since.is_some() {
                return;
            }
            *down_since = Some(now);
        }
        tracing::error!(%error, "the state store does not answer: nothing is acted on until it does");
        let reason = format!(
            "the state store does not answer ({error}); nothing is acted on until it does, and the nodes keep \
             their reports and send them again"
        );
        let record = EventRecord { time_ms: now, ..EventRecord::new(EventKind::StoreUnavailable, "", "", "", reason) };
        self.journal.notify_unrecorded(&record);
    }

    /// Notes that the state store answered; after an outage, records in the log how long it lasted.
    pub async fn store_answered(&self) {
        let Some(since) = self.down_since.lock().expect("store outage lock").take() else { return };
        let now = unix_ms(SystemTime::now());
        let reason = format!(
            "the state store did not answer from {} to {} ({}s); nothing was acted on meanwhile, and the nodes' \
             reports were processed once it answered",
            rfc3339(since),
            rfc3339(now),
            (now - since) / 1000
        );
        tracing::warn!("the state store answers again: resuming");
        let record = EventRecord::new(EventKind::StoreUnavailable, "", "", "", reason);
        if let Err(error) = self.journal.append_unnotified(&record).await {
            tracing::warn!(%error, "could not record the end of the state store's outage");
        }
    }
}
