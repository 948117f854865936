//! The kinds of event in the event log, named as the original HemoStat's channels (`health_alert`,
//! `remediation_needed`, `false_alarm`, `remediation_complete`) and more.

use hemostat_proto::v1 as pb;

use crate::named::NoValue;

named_enum! {
    /// The kinds of event.
    pub enum EventKind("event type") {
        /// A node reported a problem with a container.
        HealthAlert => "health_alert",
        /// Analysis decided an action is needed.
        RemediationNeeded => "remediation_needed",
        /// Analysis decided no action is needed.
        FalseAlarm => "false_alarm",
        /// A node executed an action; the record carries its outcome.
        RemediationComplete => "remediation_complete",
        /// The safety policy stopped an action.
        Rejected => "rejected",
        /// A container's standing anomalies cleared.
        Resolved => "resolved",
        /// Too many containers needed remediation at once; automatic actions stopped.
        Storm => "storm",
        /// A node dropped unacknowledged messages from its full spool.
        SpoolOverflow => "spool_overflow",
        /// A node missed its heartbeats for longer than `NODE_LOST_SECONDS`.
        NodeLost => "node_lost",
        /// A lost node is back.
        NodeRecovered => "node_recovered",
        /// An operator changed something: a silence, dry-run, a manual action (the reason says what).
        OperatorAction => "operator_action",
        /// The state store stopped answering; nothing was acted on meanwhile. Notified when it starts,
        /// recorded when the store answers again.
        StoreUnavailable => "store_unavailable",
        /// A node said something about its own reports: what it cut to keep a message within bounds, damage
        /// in its spool, a new message stream.
        NodeNotice => "node_notice",
        /// The coordinator cut or refused part of what a node sent: over an intake limit, or a result for a
        /// command that node was not sent.
        InputRefused => "input_refused",
    }
}

impl EventKind {
    /// Whether records of this kind also go to the audit log: decisions, rejections, results, storms and
    /// operators' changes.
    pub fn audited(self) -> bool {
        matches!(
            self,
            EventKind::RemediationNeeded
                | EventKind::FalseAlarm
                | EventKind::Rejected
                | EventKind::RemediationComplete
                | EventKind::Storm
                | EventKind::OperatorAction
        )
    }
}

impl From<EventKind> for pb::EventType {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::HealthAlert => pb::EventType::HealthAlert,
            EventKind::RemediationNeeded => pb::EventType::RemediationNeeded,
            EventKind::FalseAlarm => pb::EventType::FalseAlarm,
            EventKind::RemediationComplete => pb::EventType::RemediationComplete,
            EventKind::Rejected => pb::EventType::Rejected,
            EventKind::Resolved => pb::EventType::Resolved,
            EventKind::Storm => pb::EventType::Storm,
            EventKind::SpoolOverflow => pb::EventType::SpoolOverflow,
            EventKind::NodeLost => pb::EventType::NodeLost,
            EventKind::NodeRecovered => pb::EventType::NodeRecovered,
            EventKind::OperatorAction => pb::EventType::OperatorAction,
            EventKind::StoreUnavailable => pb::EventType::StoreUnavailable,
            EventKind::NodeNotice => pb::EventType::NodeNotice,
            EventKind::InputRefused => pb::EventType::InputRefused,
        }
    }
}

impl TryFrom<pb::EventType> for EventKind {
    type Error = NoValue;

    /// The kind; an error for UNSPECIFIED.
    fn try_from(kind: pb::EventType) -> Result<Self, Self::Error> {
        Ok(match kind {
            pb::EventType::Unspecified => return Err(NoValue { what: "an event type", wire: kind.as_str_name() }),
            pb::EventType::HealthAlert => EventKind::HealthAlert,
            pb::EventType::RemediationNeeded => EventKind::RemediationNeeded,
            pb::EventType::FalseAlarm => EventKind::FalseAlarm,
            pb::EventType::RemediationComplete => EventKind::RemediationComplete,
            pb::EventType::Rejected => EventKind::Rejected,
            pb::EventType::Resolved => EventKind::Resolved,
            pb::EventType::Storm => EventKind::Storm,
            pb::EventType::SpoolOverflow => EventKind::SpoolOverflow,
            pb::EventType::NodeLost => EventKind::NodeLost,
            pb::EventType::NodeRecovered => EventKind::NodeRecovered,
            pb::EventType::OperatorAction => EventKind::OperatorAction,
            pb::EventType::StoreUnavailable => EventKind::StoreUnavailable,
            pb::EventType::NodeNotice => EventKind::NodeNotice,
            pb::EventType::InputRefused => EventKind::InputRefused,
        })
    }
}
