//! The alerts firing now, for the sinks that speak Alertmanager's language (the Alertmanager sink, and the
//! generic webhook in Alertmanager's format): each event is applied in order ([`alerts::transition`]),
//! and what it changed is sent.
//!
//! Resolved alerts are kept for a while too, so a resolution whose push failed is sent again with the
//! firing ones (as Prometheus does).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::alerts::{self, Alert, Transition};
use super::filter::SinkFilter;
use super::notification::Notification;

/// What applying events changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The alerts that fired (or fired again).
    pub fired: Vec<Alert>,
    /// The alerts that ended, with their end.
    pub resolved: Vec<Alert>,
}

/// The alerts firing, and those resolved lately, by fingerprint.
#[derive(Debug, Default)]
pub struct Conditions {
    firing: BTreeMap<String, Alert>,
    resolved: BTreeMap<String, Alert>,
}

impl Conditions {
    /// Applies an event's transition, recorded at `at_ms`: what it ends first, then what it fires.
    pub fn apply(&mut self, transition: Transition, at_ms: u64) -> Changes {
        let mut changes = Changes::default();
        let ended: Vec<String> = self
            .firing
            .iter()
            .filter(|(_, alert)| transition.ends.iter().any(|ending| ending.ends(alert)))
            .map(|(key, _)| key.clone())
            .collect();
        for key in ended {
            if let Some(mut alert) = self.firing.remove(&key) {
                alert.resolved_ms = Some(at_ms);
                self.resolved.insert(key, alert.clone());
                changes.resolved.push(alert);
            }
        }
        if let Some(mut alert) = transition.fires {
            let key = alert.fingerprint();
            if let Some(earlier) = self.firing.get(&key) {
                alert.starts_ms = alert.starts_ms.min(earlier.starts_ms);
            }
            self.resolved.remove(&key);
            self.firing.insert(key, alert.clone());
            changes.fired.push(alert);
        }
        changes
    }

    /// What to send again at `now_ms`: the alerts firing (those past their expiry forgotten: Alertmanager
    /// ends them at their `endsAt`) and those resolved within `keep_resolved`.
    pub fn current(&mut self, now_ms: u64, keep_resolved: Duration) -> Vec<Alert> {
        self.firing.retain(|_, alert| alert.expires_ms.is_none_or(|expires| expires > now_ms));
        let keep = keep_resolved.as_millis() as u64;
        self.resolved.retain(|_, alert| alert.resolved_ms.is_some_and(|at| at.saturating_add(keep) > now_ms));
        self.firing.values().chain(self.resolved.values()).cloned().collect()
    }

    /// How many alerts fire.
    pub fn firing(&self) -> usize {
        self.firing.len()
    }
}

/// The conditions of one sink, with its filter: an alert fires only if the filter takes its event; it ends
/// whatever the filter says.
pub struct ConditionTracker {
    filter: SinkFilter,
    approval_ttl: Duration,
    conditions: Mutex<Conditions>,
}

impl ConditionTracker {
    /// A tracker firing only what `filter` takes; approvals expire after `approval_ttl`.
    pub fn new(filter: SinkFilter, approval_ttl: Duration) -> Self {
        ConditionTracker { filter, approval_ttl, conditions: Mutex::new(Conditions::default()) }
    }

    /// What `notification` does here (nothing fires when the filter refuses it; a test always fires).
    fn transition(&self, notification: &Notification) -> Transition {
        let mut transition = alerts::transition(notification, self.approval_ttl);
        if !notification.test && !self.filter.admits(notification) {
            transition.fires = None;
        }
        transition
    }

    /// Whether `notification` may change an alert (whether or not the shared rules select it: a success
    /// that ends a failure matters even when successes are quiet or deduplicated).
    pub fn wants(&self, notification: &Notification) -> bool {
        !self.transition(notification).is_empty()
    }

    /// Applies notifications in order; returns what changed, each alert once in its last state (an alert
    /// that fired and ended within one burst is sent resolved).
    pub fn apply(&self, notifications: &[Notification]) -> Changes {
        let mut conditions = self.conditions.lock().expect("conditions lock");
        let mut last: BTreeMap<String, Alert> = BTreeMap::new();
        for notification in notifications {
            let applied = conditions.apply(self.transition(notification), notification.record.time_ms);
            for alert in applied.fired.into_iter().chain(applied.resolved) {
                last.insert(alert.fingerprint(), alert);
            }
        }
        let (resolved, fired) = last.into_values().partition(|alert| alert.resolved_ms.is_some());
        Changes { fired, resolved }
    }

    /// The alerts to send again at `now_ms` (see [`Conditions::current`]).
    pub fn current(&self, now_ms: u64, keep_resolved: Duration) -> Vec<Alert> {
        self.conditions.lock().expect("conditions lock").current(now_ms, keep_resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::Severity;
    use crate::alerting::notification::tests::notification;
    use crate::events::{EventKind, Outcome};

    fn complete(name: &str, outcome: Outcome, at_ms: u64) -> Notification {
        let mut n = notification(EventKind::RemediationComplete, name);
        n.record.outcome = Some(outcome);
        n.record.time_ms = at_ms;
        n
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_failure_fires_until_a_success_then_stays_resolved_for_a_while() {
        let tracker = ConditionTracker::new(SinkFilter::default(), Duration::from_secs(3600));
        let failed = tracker.apply(&[complete("web", Outcome::Failed, 1_000), complete("db", Outcome::Failed, 1_500)]);
        assert_eq!(failed.fired.len(), 2);
        let again = tracker.apply(&[complete("web", Outcome::Failed, 9_000)]);
        assert_eq!(again.fired[0].starts_ms, 1_000, "still the same condition, since it started");
        assert_eq!(tracker.current(10_000, MINUTE).len(), 2);
        let fixed = tracker.apply(&[complete("web", Outcome::Success, 20_000)]);
        assert_eq!((fixed.fired.len(), fixed.resolved.len()), (0, 1));
        assert_eq!(fixed.resolved[0].resolved_ms, Some(20_000));
        let current = tracker.current(30_000, MINUTE);
        assert_eq!(current.len(), 2, "db firing, web resolved and re-sent");
        assert_eq!(tracker.current(20_000 + 60_000, MINUTE).len(), 1, "web forgotten a minute after");
        assert!(tracker.apply(&[complete("web", Outcome::Success, 90_000)]).resolved.is_empty(), "nothing to end");
        let burst =
            tracker.apply(&[complete("api", Outcome::Failed, 91_000), complete("api", Outcome::Success, 92_000)]);
        assert_eq!((burst.fired.len(), burst.resolved.len()), (0, 1), "fired and ended in one burst: sent resolved");
    }

    #[test]
    fn expired_alerts_are_forgotten_and_the_filter_decides_what_fires() {
        let critical_only = SinkFilter { min_severity: Some(Severity::Critical), ..SinkFilter::default() };
        let tracker = ConditionTracker::new(critical_only, Duration::from_secs(10));
        let mut waiting = notification(EventKind::Rejected, "web");
        waiting.record.rejection = Some(crate::events::Rejection::AwaitingApproval);
        waiting.record.command_id = Some("c1".into());
        assert!(!tracker.wants(&waiting), "a warning is below the filter");
        let unfiltered = ConditionTracker::new(SinkFilter::default(), Duration::from_secs(10));
        assert!(unfiltered.wants(&waiting));
        unfiltered.apply(&[waiting.clone()]);
        let at = waiting.record.time_ms;
        assert_eq!(unfiltered.current(at + 9_000, MINUTE).len(), 1);
        assert!(unfiltered.current(at + 10_000, MINUTE).is_empty(), "expired with the approval");
        let mut success = complete("web", Outcome::Success, 5);
        success.record.command_id = Some("c9".into());
        assert!(tracker.wants(&success), "what ends an alert passes any filter");
        assert!(!tracker.wants(&notification(EventKind::FalseAlarm, "web")));
    }
}
