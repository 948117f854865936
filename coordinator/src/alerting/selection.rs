//! Which events become notifications, and which of them may be deduplicated.
//!
//! Notified: `remediation_complete` (every outcome), `rejected`, `false_alarm`, `storm`, `node_lost`,
//! `node_recovered`, `spool_overflow`. Not notified: `health_alert`, `resolved`, `remediation_needed` and
//! `operator_action`: each problem already ends in a notified result, rejection or false alarm, and operators
//! know what they did themselves; the event log keeps them all. Nothing about a silenced container or node
//! is notified (an operator muted it on purpose), except a storm, which is about the whole fleet.

use crate::events::{EventKind, EventRecord, Outcome, Rejection};

/// Every event type that can be notified.
pub const NOTIFIED: [EventKind; 8] = [
    EventKind::RemediationComplete,
    EventKind::Rejected,
    EventKind::FalseAlarm,
    EventKind::Storm,
    EventKind::NodeLost,
    EventKind::NodeRecovered,
    EventKind::SpoolOverflow,
    EventKind::StoreUnavailable,
];

/// What happens to an event on its way to the sinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Not notified; the event log keeps it.
    Skip,
    /// Notified unless the same (type, node, container, result) was notified within the dedupe TTL.
    Deduplicated,
    /// Always notified, never deduplicated nor quieted: a storm, and an exhausted budget (`circuit_open`).
    Always,
}

/// How `record` is treated; with `quiet_success`, verified successful remediations are not notified.
pub fn select(record: &EventRecord, quiet_success: bool) -> Selection {
    match record.kind {
        EventKind::Storm | EventKind::StoreUnavailable => Selection::Always,
        _ if record.silenced => Selection::Skip,
        EventKind::Rejected if record.rejection == Some(Rejection::CircuitOpen) => Selection::Always,
        EventKind::RemediationComplete if quiet_success && record.outcome == Some(Outcome::Success) => Selection::Skip,
        EventKind::RemediationComplete
        | EventKind::Rejected
        | EventKind::FalseAlarm
        | EventKind::NodeLost
        | EventKind::NodeRecovered
        | EventKind::SpoolOverflow => Selection::Deduplicated,
        EventKind::HealthAlert
        | EventKind::Resolved
        | EventKind::RemediationNeeded
        | EventKind::OperatorAction
        | EventKind::NodeNotice
        | EventKind::InputRefused => Selection::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: EventKind, outcome: Option<Outcome>, rejection: Option<Rejection>) -> EventRecord {
        EventRecord { outcome, rejection, ..EventRecord::new(kind, "host-a", "c1", "web", "why") }
    }

    #[test]
    fn results_rejections_false_alarms_and_node_news_notify_the_rest_does_not() {
        for kind in [EventKind::FalseAlarm, EventKind::NodeLost, EventKind::NodeRecovered, EventKind::SpoolOverflow] {
            assert_eq!(select(&record(kind, None, None), false), Selection::Deduplicated, "{kind:?}");
        }
        for outcome in [Outcome::Success, Outcome::Failed, Outcome::Refused, Outcome::NotApplicable] {
            let complete = record(EventKind::RemediationComplete, Some(outcome), None);
            assert_eq!(select(&complete, false), Selection::Deduplicated, "{outcome:?}");
        }
        for rejection in [Rejection::CooldownActive, Rejection::DryRun, Rejection::Storm, Rejection::AwaitingApproval] {
            let rejected = record(EventKind::Rejected, None, Some(rejection));
            assert_eq!(select(&rejected, true), Selection::Deduplicated, "{rejection:?}");
        }
        for kind in
            [EventKind::HealthAlert, EventKind::Resolved, EventKind::RemediationNeeded, EventKind::OperatorAction]
        {
            assert_eq!(select(&record(kind, None, None), false), Selection::Skip, "{kind:?}");
        }
    }

    #[test]
    fn the_notified_list_is_what_select_can_pass() {
        for kind in crate::alerting::notification::tests::ALL_KINDS {
            let passes = select(&record(kind, Some(Outcome::Failed), None), false) != Selection::Skip;
            assert_eq!(passes, NOTIFIED.contains(&kind), "{kind:?}");
        }
    }

    #[test]
    fn storms_and_exhausted_budgets_always_notify_and_quiet_success_quiets_only_successes() {
        assert_eq!(select(&record(EventKind::Storm, None, None), true), Selection::Always);
        let exhausted = record(EventKind::Rejected, None, Some(Rejection::CircuitOpen));
        assert_eq!(select(&exhausted, true), Selection::Always);
        let success = record(EventKind::RemediationComplete, Some(Outcome::Success), None);
        assert_eq!(select(&success, true), Selection::Skip);
        assert_eq!(select(&success, false), Selection::Deduplicated);
        let failed = record(EventKind::RemediationComplete, Some(Outcome::Failed), None);
        assert_eq!(select(&failed, true), Selection::Deduplicated, "a failure is never quiet");
    }

    #[test]
    fn a_silenced_target_is_not_notified_but_a_storm_is() {
        for (kind, rejection) in [
            (EventKind::RemediationComplete, None),
            (EventKind::Rejected, Some(Rejection::CircuitOpen)),
            (EventKind::Rejected, Some(Rejection::Silenced)),
            (EventKind::FalseAlarm, None),
            (EventKind::NodeLost, None),
        ] {
            let silenced = EventRecord { silenced: true, ..record(kind, Some(Outcome::Failed), rejection) };
            assert_eq!(select(&silenced, false), Selection::Skip, "{kind:?} {rejection:?}");
        }
        let storm = EventRecord { silenced: true, ..record(EventKind::Storm, None, None) };
        assert_eq!(select(&storm, false), Selection::Always);
    }
}
