//! Historical analytics, computed exactly from the event log over a period.
//!
//! Definitions (each figure the page shows is one of these, and each is tested on fixed event lists):
//! - **remediations**: `remediation_complete` events recorded in the period, with their outcomes;
//! - **success rate**: successes / remediations (none when there were no remediations);
//! - **decisions**: the analysis's decisions in the period: `false_alarm` events, and `remediation_needed`
//!   events decided by analysis (rules or a model), not by an operator (a manual action or an approval) nor
//!   by a node's local policy;
//! - **false alarm rate**: false alarms / decisions;
//! - **mean time to recovery**: for each successful (verified) remediation in the period whose decision came
//!   from a detection, the time from the `health_alert` that led to the decision (when the node observed
//!   it, else when it was recorded) to the `remediation_complete` of the same command, averaged and rounded
//!   to the millisecond;
//! - **most-remediated containers**: remediations per container (node and name) in the period, most first.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::validation::check_period;
use super::{Fleet, FleetError};
use crate::events::{EventKind, Outcome, StoredEvent};
use crate::remediation::journal::Log;

/// How far before a period the log is read, to find the detections and decisions behind its remediations.
pub const LOOKBACK_MS: u64 = 24 * 3600 * 1000;
/// How many containers the most-remediated list holds.
pub const TOP_CONTAINERS: usize = 10;

/// A period of time, in Unix milliseconds: from `since_ms` (included) to `until_ms` (excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Its start.
    pub since_ms: u64,
    /// Its end.
    pub until_ms: u64,
}

impl Period {
    /// Whether the time `ms` is in it.
    pub fn contains(&self, ms: u64) -> bool {
        self.since_ms <= ms && ms < self.until_ms
    }
}

/// Remediations of one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerRemediations {
    /// The node.
    pub node: String,
    /// The container's name (untrusted text).
    pub container: String,
    /// Remediations in the period.
    pub remediations: u64,
    /// Of which succeeded.
    pub successes: u64,
}

/// The figures of one period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analytics {
    /// The period.
    pub period: Period,
    /// `remediation_complete` events.
    pub remediations: u64,
    /// Of which succeeded (verified).
    pub successes: u64,
    /// Of which failed.
    pub failures: u64,
    /// Of which the node refused.
    pub refused: u64,
    /// Of which did not apply.
    pub not_applicable: u64,
    /// successes / remediations, from 0 to 1.
    pub success_rate: Option<f64>,
    /// The analysis's decisions.
    pub decisions: u64,
    /// Of which false alarms.
    pub false_alarms: u64,
    /// false alarms / decisions, from 0 to 1.
    pub false_alarm_rate: Option<f64>,
    /// How many successful remediations the mean time to recovery is over.
    pub recoveries_measured: u64,
    /// The mean time from detection to verified recovery, in milliseconds.
    pub mean_time_to_recovery_ms: Option<u64>,
    /// The most-remediated containers, most first (then by node and name), at most [`TOP_CONTAINERS`].
    pub most_remediated: Vec<ContainerRemediations>,
}

/// How far past a period's end the log is read: a record's time is taken just before the store numbers it.
const CLOCK_SLACK_MS: u64 = 60_000;

impl Fleet {
    /// The figures of `period`, computed exactly from the event log; refused when the period holds too many
    /// events to count exactly.
    pub async fn analytics(&self, period: Period) -> Result<Analytics, FleetError> {
        check_period(Some(period.since_ms), Some(period.until_ms))?;
        let since = period.since_ms.saturating_sub(LOOKBACK_MS);
        let events = self.window(Log::Events, since, period.until_ms.saturating_add(CLOCK_SLACK_MS)).await?;
        Ok(compute(&events, period))
    }
}

/// Computes the analytics of `period` from `events` (oldest first; they may start before the period, so
/// that detections and decisions behind its remediations are found).
pub fn compute(events: &[StoredEvent], period: Period) -> Analytics {
    let mut analytics = Analytics {
        period,
        remediations: 0,
        successes: 0,
        failures: 0,
        refused: 0,
        not_applicable: 0,
        success_rate: None,
        decisions: 0,
        false_alarms: 0,
        false_alarm_rate: None,
        recoveries_measured: 0,
        mean_time_to_recovery_ms: None,
        most_remediated: Vec::new(),
    };
    // The first decision of each command, by index.
    let mut decision_of: HashMap<&str, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let r = &event.record;
        if r.kind == EventKind::RemediationNeeded
            && let Some(command) = r.command_id.as_deref()
        {
            decision_of.entry(command).or_insert(index);
        }
    }
    let mut per_container: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    let (mut recovery_total, mut recoveries) = (0u128, 0u64);
    for event in events {
        let r = &event.record;
        if !period.contains(r.time_ms) {
            continue;
        }
        match r.kind {
            EventKind::FalseAlarm => {
                analytics.false_alarms += 1;
                analytics.decisions += 1;
            }
            EventKind::RemediationNeeded if by_analysis(r.analysis_method.as_deref()) => analytics.decisions += 1,
            EventKind::RemediationComplete => {
                analytics.remediations += 1;
                let success = r.outcome == Some(Outcome::Success);
                match r.outcome {
                    Some(Outcome::Success) => analytics.successes += 1,
                    Some(Outcome::Refused) => analytics.refused += 1,
                    Some(Outcome::NotApplicable) => analytics.not_applicable += 1,
                    Some(Outcome::Failed) | None => analytics.failures += 1,
                }
                let counts = per_container.entry((r.node.as_str(), r.container_name.as_str())).or_default();
                counts.0 += 1;
                counts.1 += u64::from(success);
                if success
                    && let Some(detected) = detection_ms(events, &decision_of, r.command_id.as_deref())
                    && detected <= r.time_ms
                {
                    recovery_total += u128::from(r.time_ms - detected);
                    recoveries += 1;
                }
            }
            _ => {}
        }
    }
    let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
    analytics.success_rate = ratio(analytics.successes, analytics.remediations);
    analytics.false_alarm_rate = ratio(analytics.false_alarms, analytics.decisions);
    analytics.recoveries_measured = recoveries;
    analytics.mean_time_to_recovery_ms =
        (recoveries > 0).then(|| ((recovery_total + u128::from(recoveries) / 2) / u128::from(recoveries)) as u64);
    let mut top: Vec<ContainerRemediations> = per_container
        .into_iter()
        .map(|((node, container), (remediations, successes))| ContainerRemediations {
            node: node.to_owned(),
            container: container.to_owned(),
            remediations,
            successes,
        })
        .collect();
    top.sort_by(|a, b| {
        b.remediations.cmp(&a.remediations).then_with(|| (&a.node, &a.container).cmp(&(&b.node, &b.container)))
    });
    top.truncate(TOP_CONTAINERS);
    analytics.most_remediated = top;
    analytics
}

/// Whether a decision's method is the analysis's own (not `operator`, not a node's `local` policy).
fn by_analysis(method: Option<&str>) -> bool {
    !matches!(method, Some("operator") | Some("local"))
}

/// When the problem behind `command` was detected: the latest `health_alert` of the same container before
/// the command's first decision, unless an operator decided it (a manual action has no detection).
fn detection_ms(events: &[StoredEvent], decision_of: &HashMap<&str, usize>, command: Option<&str>) -> Option<u64> {
    let index = *decision_of.get(command?)?;
    let decision = &events[index].record;
    if decision.analysis_method.as_deref() == Some("operator") {
        return None;
    }
    events[..index]
        .iter()
        .rev()
        .map(|e| &e.record)
        .find(|r| {
            r.kind == EventKind::HealthAlert && r.node == decision.node && r.container_id == decision.container_id
        })
        .map(|alert| alert.observed_ms.unwrap_or(alert.time_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Action, EventId, EventRecord};

    /// A log built in order: each event one id after the previous.
    struct Log(Vec<StoredEvent>);

    impl Log {
        fn push(&mut self, kind: EventKind, time_ms: u64, container: &str, edit: impl FnOnce(&mut EventRecord)) {
            let mut record = EventRecord::new(kind, "host-a", &format!("id-{container}"), container, "why");
            record.time_ms = time_ms;
            edit(&mut record);
            let id = EventId { ms: time_ms, seq: self.0.len() as u64 };
            self.0.push(StoredEvent { id, record });
        }

        fn alert(&mut self, time_ms: u64, observed_ms: Option<u64>, container: &str) {
            self.push(EventKind::HealthAlert, time_ms, container, |r| r.observed_ms = observed_ms);
        }

        fn decide(&mut self, time_ms: u64, container: &str, command: &str, method: &str) {
            self.push(EventKind::RemediationNeeded, time_ms, container, |r| {
                r.command_id = Some(command.into());
                r.analysis_method = Some(method.into());
                r.action = Some(Action::Restart);
            });
        }

        fn complete(&mut self, time_ms: u64, container: &str, command: &str, outcome: Outcome) {
            self.push(EventKind::RemediationComplete, time_ms, container, |r| {
                r.command_id = Some(command.into());
                r.outcome = Some(outcome);
            });
        }

        fn false_alarm(&mut self, time_ms: u64, container: &str) {
            self.push(EventKind::FalseAlarm, time_ms, container, |r| r.analysis_method = Some("rules".into()));
        }
    }

    const ALL: Period = Period { since_ms: 0, until_ms: u64::MAX };

    #[test]
    fn analytics_of_an_empty_log_have_no_rates() {
        let a = compute(&[], ALL);
        assert_eq!((a.remediations, a.decisions, a.recoveries_measured), (0, 0, 0));
        assert_eq!((a.success_rate, a.false_alarm_rate, a.mean_time_to_recovery_ms), (None, None, None));
        assert!(a.most_remediated.is_empty());
    }

    #[test]
    fn analytics_count_remediations_rates_and_recovery_times_exactly() {
        let mut log = Log(Vec::new());
        // web: detected at 1000 (observed 900), decided, recovered at 4000: 3100 ms.
        log.alert(1000, Some(900), "web");
        log.decide(1010, "web", "c1", "rules");
        log.complete(4000, "web", "c1", Outcome::Success);
        // api: detected at 5000 (no observed time), recovered at 6000: 1000 ms.
        log.alert(5000, None, "api");
        log.decide(5005, "api", "c2", "ai");
        log.complete(6000, "api", "c2", Outcome::Success);
        // web again: a failure, not a recovery.
        log.alert(7000, Some(7000), "web");
        log.decide(7001, "web", "c3", "rules");
        log.complete(9000, "web", "c3", Outcome::Failed);
        // batch: a false alarm.
        log.alert(10_000, None, "batch");
        log.false_alarm(10_001, "batch");
        // An operator's manual restart of api: counted as a remediation, not a decision, no detection time.
        log.alert(11_000, None, "api");
        log.decide(20_000, "api", "m1", "operator");
        log.complete(21_000, "api", "m1", Outcome::Success);
        // Unrelated events change nothing.
        log.push(EventKind::Rejected, 22_000, "web", |r| r.command_id = Some("c9".into()));
        log.push(EventKind::Resolved, 22_001, "web", |_| {});

        let a = compute(&log.0, ALL);
        assert_eq!((a.remediations, a.successes, a.failures, a.refused, a.not_applicable), (4, 3, 1, 0, 0));
        assert_eq!(a.success_rate, Some(0.75));
        assert_eq!((a.decisions, a.false_alarms), (4, 1), "three analysis decisions and a false alarm");
        assert_eq!(a.false_alarm_rate, Some(0.25));
        assert_eq!(a.recoveries_measured, 2);
        assert_eq!(a.mean_time_to_recovery_ms, Some((3100 + 1000) / 2));
        let top: Vec<(&str, u64, u64)> =
            a.most_remediated.iter().map(|c| (c.container.as_str(), c.remediations, c.successes)).collect();
        assert_eq!(top, [("api", 2, 2), ("web", 2, 1)], "ties by name");
    }

    #[test]
    fn analytics_count_only_the_period_but_find_detections_before_it() {
        let mut log = Log(Vec::new());
        log.alert(1000, Some(1000), "web");
        log.decide(1001, "web", "c1", "rules");
        log.false_alarm(1500, "db");
        log.complete(3001, "web", "c1", Outcome::Success);
        log.alert(5000, None, "web");
        log.decide(5001, "web", "c2", "rules");
        log.complete(6000, "web", "c2", Outcome::Refused);
        let a = compute(&log.0, Period { since_ms: 2000, until_ms: 6000 });
        assert_eq!(a.remediations, 1, "the remediation at 6000 is outside the period");
        assert_eq!(a.decisions, 1, "only the decision at 5001");
        assert_eq!(a.false_alarms, 0);
        assert_eq!(a.mean_time_to_recovery_ms, Some(2001), "detected before the period, recovered in it");
        let a = compute(&log.0, Period { since_ms: 6000, until_ms: 7000 });
        assert_eq!((a.remediations, a.refused, a.success_rate), (1, 1, Some(0.0)));
        assert_eq!(a.mean_time_to_recovery_ms, None);
    }

    #[test]
    fn analytics_link_an_approved_action_to_its_detection_and_round_the_mean() {
        let mut log = Log(Vec::new());
        log.alert(1000, Some(1000), "web");
        log.decide(1001, "web", "c1", "rules");
        log.push(EventKind::Rejected, 1002, "web", |r| r.command_id = Some("c1".into()));
        log.decide(8000, "web", "c1", "operator");
        log.complete(9001, "web", "c1", Outcome::Success);
        log.alert(10_000, Some(10_000), "api");
        log.decide(10_001, "api", "c2", "rules");
        log.complete(12_000, "api", "c2", Outcome::Success);
        let a = compute(&log.0, ALL);
        assert_eq!(a.decisions, 2, "the approval is not a second decision");
        assert_eq!(a.recoveries_measured, 2);
        assert_eq!(a.mean_time_to_recovery_ms, Some(5001), "(8001 + 2000) / 2 = 5000.5, rounded");
    }

    #[test]
    fn analytics_keep_the_ten_most_remediated_containers() {
        let mut log = Log(Vec::new());
        for i in 0..12u64 {
            for n in 0..=i {
                log.complete(100 * i + n, &format!("c{i:02}"), &format!("x{i}-{n}"), Outcome::Success);
            }
        }
        let a = compute(&log.0, ALL);
        assert_eq!(a.most_remediated.len(), TOP_CONTAINERS);
        assert_eq!(a.most_remediated[0].container, "c11");
        assert_eq!(a.most_remediated[0].remediations, 12);
        assert_eq!(a.most_remediated[9].container, "c02");
        assert_eq!(a.mean_time_to_recovery_ms, None, "no detection behind these");
    }
}
