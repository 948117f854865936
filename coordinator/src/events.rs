//! The event log's records: what happened, to which container, on which node, and why.
//!
//! Event types keep the original's channel names (`health_alert`, `remediation_needed`, `false_alarm`,
//! `remediation_complete`) and add `rejected`. Records are stored as JSON in the state store; the store gives
//! each an [`EventId`] that orders them.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hemostat_proto::v1 as pb;
use serde::{Deserialize, Serialize};

pub use hemostat_model::{Action, EventKind, Outcome};

use crate::container::Anomaly;

/// A stable, ordered event id: milliseconds since the epoch and a sequence number within that
/// millisecond, written `<ms>-<seq>` exactly like a Redis stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// Milliseconds since the Unix epoch when the event was appended.
    pub ms: u64,
    /// Order within the millisecond.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A string that is not an event id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid event id {0:?}: expected <milliseconds>-<sequence>, e.g. 1732800000000-0")]
pub struct InvalidEventId(pub String);

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEventId(s.chars().take(64).collect());
        let (ms, seq) = s.split_once('-').ok_or_else(invalid)?;
        Ok(EventId { ms: ms.parse().map_err(|_| invalid())?, seq: seq.parse().map_err(|_| invalid())? })
    }
}

/// Of each event type, and of the audit log, the newest this many records are never trimmed by age, only by
/// count: age is measured on the appending coordinator's wall clock, and a clock stepped forward (by a week,
/// a year) must not empty the logs. It drops what is older than the retention before the step, but these
/// stay.
pub const KEPT_WHATEVER_THEIR_AGE: u64 = 100;

/// How long the event log keeps events (`ALERT_MAX_EVENTS`, `ALERT_EVENT_TTL`), trimmed as events are appended.
///
/// The original kept 100 events for an hour; an operator looking back at last night's incident needs more, so
/// the defaults are 10,000 events of each type and 7 days, whichever is reached first (but see
/// [`KEPT_WHATEVER_THEIR_AGE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRetention {
    /// Events kept of each type.
    pub max_per_type: u64,
    /// Events older than this are dropped.
    pub max_age: Duration,
}

impl Default for EventRetention {
    fn default() -> Self {
        EventRetention { max_per_type: 10_000, max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// How much the audit log keeps: records younger than `max_age`, at most `max_entries` of them (the oldest go
/// first), so neither a long quiet time nor a flood can make it unbounded. Defaults: 7 days, 100,000 records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRetention {
    /// Records older than this are dropped.
    pub max_age: Duration,
    /// Records kept at most.
    pub max_entries: u64,
}

impl Default for AuditRetention {
    fn default() -> Self {
        AuditRetention { max_age: Duration::from_secs(7 * 24 * 3600), max_entries: 100_000 }
    }
}

/// Why the safety policy stopped an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The container was acted on less than the cooldown ago.
    CooldownActive,
    /// The container has used its attempts for the rolling hour.
    CircuitOpen,
    /// The node that reported the problem is no longer connected.
    NodeDisconnected,
    /// Dry-run mode: recorded, not done.
    DryRun,
    /// The storm breaker is on.
    Storm,
    /// The decision waits for an admin's approval.
    AwaitingApproval,
    /// An operator silenced the container or its node.
    Silenced,
}

impl Rejection {
    /// The code recorded in events, e.g. `cooldown_active`.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::CooldownActive => "cooldown_active",
            Rejection::CircuitOpen => "circuit_open",
            Rejection::NodeDisconnected => "node_disconnected",
            Rejection::DryRun => "dry_run",
            Rejection::Storm => "storm",
            Rejection::AwaitingApproval => "awaiting_approval",
            Rejection::Silenced => "silenced",
        }
    }
}

/// One event, as appended to the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// What kind of event.
    pub kind: EventKind,
    /// When the coordinator recorded it, in milliseconds since the Unix epoch (UTC).
    pub time_ms: u64,
    /// The node the container is on.
    pub node: String,
    /// The container's id.
    pub container_id: String,
    /// The container's name (untrusted text).
    pub container_name: String,
    /// The action decided or executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Why, in words for people.
    pub reason: String,
    /// For `remediation_complete`: how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// For `rejected`: which rule stopped the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
    /// For decisions: confidence from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// For decisions: `rules`, `ai` or `operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_method: Option<String>,
    /// Links the events of one action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// For alerts about an exit: the exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// For `health_alert`: the anomalies; for `resolved`: those that cleared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<Anomaly>,
    /// For `health_alert`: when the node observed it, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_ms: Option<u64>,
    /// For decisions: the rule's name, the model's, or the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// For decisions: the evidence, a JSON document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// For `remediation_complete` of a diagnostic command: its output (capped, secrets masked by the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// For `remediation_complete`: how long the action took on the node, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// For actions: the arguments sent to the node (an exec's argument vector, a restart's stop timeout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// The container or its node was silenced when this was recorded: notifications leave it out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub silenced: bool,
}

impl EventRecord {
    /// A record of `kind` about one container, stamped now, with the other fields empty.
    pub fn new(
        kind: EventKind,
        node: &str,
        container_id: &str,
        container_name: &str,
        reason: impl Into<String>,
    ) -> Self {
        EventRecord {
            kind,
            time_ms: unix_ms(SystemTime::now()),
            node: node.to_owned(),
            container_id: container_id.to_owned(),
            container_name: container_name.to_owned(),
            action: None,
            reason: reason.into(),
            outcome: None,
            rejection: None,
            confidence: None,
            analysis_method: None,
            command_id: None,
            exit_code: None,
            anomalies: Vec::new(),
            observed_ms: None,
            decided_by: None,
            evidence: None,
            output: None,
            duration_ms: None,
            arguments: Vec::new(),
            silenced: false,
        }
    }
}

/// An event as read back from the log.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Its id in the log.
    pub id: EventId,
    /// The record.
    pub record: EventRecord,
}

impl StoredEvent {
    /// The wire form.
    pub fn to_proto(&self) -> pb::Event {
        let r = &self.record;
        pb::Event {
            id: self.id.to_string(),
            time: Some(hemostat_proto::timestamp::to_proto(UNIX_EPOCH + Duration::from_millis(r.time_ms))),
            r#type: pb::EventType::from(r.kind) as i32,
            node: r.node.clone(),
            container_id: r.container_id.clone(),
            container_name: r.container_name.clone(),
            action: r.action.map_or(pb::Action::Unspecified, pb::Action::from) as i32,
            reason: r.reason.clone(),
            outcome: r.outcome.map_or(pb::Outcome::Unspecified, pb::Outcome::from) as i32,
            rejection: r.rejection.map(|r| r.code().to_owned()).unwrap_or_default(),
            confidence: r.confidence.unwrap_or_default(),
            analysis_method: r.analysis_method.clone().unwrap_or_default(),
            command_id: r.command_id.clone().unwrap_or_default(),
            exit_code: r.exit_code.unwrap_or_default(),
            anomalies: r.anomalies.iter().map(pb::Anomaly::from).collect(),
            observed_at: r
                .observed_ms
                .map(|ms| hemostat_proto::timestamp::to_proto(UNIX_EPOCH + Duration::from_millis(ms))),
            decided_by: r.decided_by.clone().unwrap_or_default(),
            evidence: r.evidence.clone().unwrap_or_default(),
            output: r.output.clone().unwrap_or_default(),
            duration_ms: r.duration_ms.unwrap_or_default(),
            arguments: r.arguments.clone(),
        }
    }
}

/// Unix milliseconds as an RFC 3339 UTC time, for people: `2026-11-28T16:00:00Z`.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_parse_and_order_like_redis_stream_ids() {
        let a: EventId = "1732800000000-0".parse().unwrap();
        let b: EventId = "1732800000000-1".parse().unwrap();
        let c: EventId = "1732800000001-0".parse().unwrap();
        assert!(a < b && b < c);
        assert_eq!(b.to_string(), "1732800000000-1");
        for bad in ["", "12", "a-1", "1-b", "-1", "1-"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }
}
