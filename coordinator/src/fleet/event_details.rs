//! One event with the events of the same action: the detection, the decision, rejections and the result,
//! and their audit records — what the dashboard shows when an event is clicked.

use std::ops::ControlFlow;
use std::time::Duration;

use super::{Fleet, FleetError};
use crate::events::{EventId, EventKind, EventRecord, StoredEvent};
use crate::remediation::journal::{Log, from_time};

/// How far around an event its details look for the events of the same action (plus the approval wait,
/// when decisions wait for one).
const DETAILS_WINDOW: Duration = Duration::from_secs(2 * 3600);
/// The most events the details read around an event.
const DETAILS_SCAN: usize = 500_000;

/// An event, what led to it and what followed.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDetails {
    /// The event.
    pub event: StoredEvent,
    /// The events of the same action, oldest first.
    pub related: Vec<StoredEvent>,
    /// Their audit records, oldest first.
    pub audit: Vec<StoredEvent>,
}

impl Fleet {
    /// The event `id`, with the events of the same action and their audit records.
    pub async fn event_details(&self, id: EventId) -> Result<EventDetails, FleetError> {
        let event = self.event(id).await?;
        let window = self.approval_ttl().unwrap_or_default() + DETAILS_WINDOW;
        let from = id.ms.saturating_sub(window.as_millis() as u64);
        let to = id.ms.saturating_add(window.as_millis() as u64);
        let mut nearby: Vec<StoredEvent> = Vec::new();
        let r = &event.record;
        let same_container = |other: &EventRecord| other.node == r.node && other.container_id == r.container_id;
        self.journal()
            .scan(Log::Events, from_time(from), Some(to), DETAILS_SCAN, |e| {
                if same_container(&e.record) {
                    nearby.push(e);
                }
                ControlFlow::Continue(())
            })
            .await?;
        // The action this event belongs to: its own command, or (for a detection) that of the decision after it.
        let position = nearby.iter().position(|e| e.id == id).unwrap_or(0);
        let command = r.command_id.clone().or_else(|| {
            (r.kind == EventKind::HealthAlert)
                .then(|| {
                    nearby[position..]
                        .iter()
                        .skip(1)
                        .take_while(|e| e.record.kind != EventKind::HealthAlert)
                        .find(|e| matches!(e.record.kind, EventKind::RemediationNeeded | EventKind::FalseAlarm))
                        .and_then(|e| e.record.command_id.clone())
                })
                .flatten()
        });
        let mut related: Vec<&StoredEvent> = match &command {
            Some(command) => nearby.iter().filter(|e| e.record.command_id.as_ref() == Some(command)).collect(),
            None => vec![&event],
        };
        // A detection without an action: the false alarm that followed it.
        if command.is_none() && r.kind == EventKind::HealthAlert {
            let mut next = nearby[position..].iter().skip(1).take_while(|e| e.record.kind != EventKind::HealthAlert);
            if let Some(decision) = next.find(|e| e.record.kind == EventKind::FalseAlarm) {
                related.push(decision);
            }
        }
        // The detection behind the first decision, unless an operator made it.
        let first = related.iter().map(|e| e.id).min();
        if let Some(first_at) = first.and_then(|first| nearby.iter().position(|e| e.id == first))
            && nearby[first_at].record.kind != EventKind::HealthAlert
            && nearby[first_at].record.analysis_method.as_deref() != Some("operator")
            && let Some(alert) = nearby[..first_at].iter().rev().find(|e| e.record.kind == EventKind::HealthAlert)
        {
            related.push(alert);
        }
        related.sort_by_key(|e| e.id);
        related.dedup_by_key(|e| e.id);
        let mut audit = Vec::new();
        self.journal()
            .scan(Log::Audit, from_time(from), Some(to), DETAILS_SCAN, |record| {
                let a = &record.record;
                let belongs = match &command {
                    Some(command) => a.command_id.as_ref() == Some(command),
                    None => related.iter().any(|e| {
                        e.record.kind == a.kind
                            && e.record.time_ms == a.time_ms
                            && e.record.container_id == a.container_id
                    }),
                };
                if belongs {
                    audit.push(record);
                }
                ControlFlow::Continue(())
            })
            .await?;
        let related = related.into_iter().cloned().collect();
        Ok(EventDetails { event, related, audit })
    }
}
