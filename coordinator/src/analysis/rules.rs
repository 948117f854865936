//! The rule-based analyzer: the original's rules and confidences, written down as one decision table and
//! evaluated in this order (the first row that matches decides).
//!
//! | # | rule | matches when | action | confidence |
//! |---|---|---|---|---|
//! | 1 | `ignored` | an exit that was requested (`docker stop`/`kill`), clean (code 0), or of an opted-out container | — (no event) | — |
//! | 2 | `excessive_restarts` | the container restarts more than the limit within the window | none: restarting a crash loop does not help | 0.60 |
//! | 3 | `docker_restart_policy` | an unexpected exit, and Docker's restart policy restarts it | none | 0.90 |
//! | 4 | `non_zero_exit` | an unexpected non-zero exit or OOM kill | restart | 0.90 |
//! | 5 | `critical_anomaly` | a critical memory anomaly, or a critical CPU anomaly that is sustained | restart (CPU: scale_up, see below) | 0.85 |
//! | 6 | `memory_leak` | the samples show a memory leak (see [`super::patterns`]) | restart | 0.80 |
//! | 7 | `sustained_high_cpu` | CPU above its threshold for the whole sustain window | restart, or scale_up (below) | 0.75 |
//! | 8 | `unhealthy` | the health check fails | restart | 0.70 |
//! | 9 | `transient_spike` | CPU or memory above the threshold for less than the sustain window | none | 0.65 |
//! | 10 | `no_rule` | anything else (medium severities, stable high memory) | none | 0.50 |
//!
//! A condition of a host itself has one row, `low_disk` ([`decide_host`]): the engine's data root under the
//! node's `NODE_DISK_MIN_FREE_PERCENT` calls for a `cleanup` of the host, confidence 0.80.
//!
//! A container busy on CPU for the whole window whose Compose or Swarm service opted in with the label
//! `hemostat.scale_up.max=<replicas>` gets `scale_up` instead of a restart (the load is real; one more
//! replica serves it). The node never scales past the cap; when it cannot scale (at the cap, not a service it
//! can scale, a failure), the coordinator restarts the container instead, as the same decision's fallback
//! (see [`crate::remediation::node_commands`]).
//!
//! A decision for an action whose confidence is below `ANALYZER_CONFIDENCE_THRESHOLD` (0.7) becomes a false
//! alarm (see [`super::Analyzer`]).

use std::time::Duration;

use super::exit::{Assessed, Assessment, Decision};
use super::patterns::{self, Excursion, PatternConfig, Reading, Sample, excursion, memory_leak};
use crate::container::{
    AlertReport, AnomalyKind, ContainerFacts, HostCondition, HostReport, SCALE_UP_MAX_LABEL, Severity,
};
use crate::events::Action;

/// What the table decided, before the confidence threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleDecision {
    /// The row's name.
    pub rule: &'static str,
    /// The action, if the row calls for one.
    pub action: Option<Action>,
    /// Why, for people.
    pub reason: String,
    /// The row's confidence.
    pub confidence: f64,
}

/// The rows that leave a condition's episode open: a later sample may still call for action.
pub const WAITING_RULES: [&str; 2] = ["transient_spike", "no_rule"];

impl RuleDecision {
    /// Whether this row only says "not yet": the condition may still become sustained or a leak, so its
    /// episode stays open (see [`super::episode`]).
    pub fn waits(&self) -> bool {
        WAITING_RULES.contains(&self.rule)
    }
}

fn row(rule: &'static str, action: Option<Action>, confidence: f64, reason: String) -> Option<RuleDecision> {
    Some(RuleDecision { rule, action, reason, confidence })
}

/// Applies the table to an alert (its exit assessed once) and the container's samples (oldest first,
/// current last). `None` means row 1: nothing to record.
pub fn decide(case: &Assessed, samples: &[Sample], config: &PatternConfig) -> Option<RuleDecision> {
    let alert: &AlertReport = &case.alert;
    let anomaly = |kind| alert.anomalies.iter().find(|a| a.kind == kind);
    if let Some(Assessment::Ignore { .. }) = &case.exit {
        return None;
    }
    if let Some(restarts) = anomaly(AnomalyKind::ExcessiveRestarts) {
        return row(
            "excessive_restarts",
            None,
            0.6,
            format!(
                "{} restarts within the window (limit {}): restarting a crash loop does not help; it needs a person",
                restarts.actual, restarts.threshold
            ),
        );
    }
    if let Some(Assessment::Decide(decision)) = &case.exit {
        return match decision.clone() {
            Decision::FalseAlarm { reason, confidence } => row("docker_restart_policy", None, confidence, reason),
            Decision::Remediate { action, reason, confidence } => {
                row("non_zero_exit", Some(action), confidence, reason)
            }
        };
    }
    let cpu = anomaly(AnomalyKind::HighCpu);
    let memory = anomaly(AnomalyKind::HighMemory);
    let cpu_run = cpu.map(|a| excursion(samples, a.threshold, config.sustain, Reading::Average, patterns::cpu));
    let memory_run =
        memory.map(|a| excursion(samples, a.threshold, config.sustain, Reading::Instant, patterns::memory));
    let sustained = |run: Option<Excursion>| matches!(run, Some(Excursion::Sustained { .. }));

    if let Some(m) = memory.filter(|m| m.severity == Severity::Critical) {
        return row(
            "critical_anomaly",
            Some(Action::Restart),
            0.85,
            format!("memory critical: {:.1} % of the limit", m.actual),
        );
    }
    if let Some(c) = cpu.filter(|c| c.severity == Severity::Critical && sustained(cpu_run)) {
        let (action, instead) = busy_action(&alert.container);
        return row(
            "critical_anomaly",
            Some(action),
            0.85,
            format!("CPU critical: {:.1} %, above {} % for {}s{instead}", c.actual, c.threshold, above_secs(cpu_run)),
        );
    }
    if let Some(leak) = memory_leak(samples, config) {
        return row(
            "memory_leak",
            Some(Action::Restart),
            0.8,
            format!(
                "memory leak: rising {:.1} KiB/s (R² {:.2}), the limit in about {}",
                leak.bytes_per_second / 1024.0,
                leak.r_squared,
                in_words(leak.time_to_limit)
            ),
        );
    }
    if let Some(c) = cpu.filter(|c| c.severity >= Severity::High && sustained(cpu_run)) {
        let (action, instead) = busy_action(&alert.container);
        return row(
            "sustained_high_cpu",
            Some(action),
            0.75,
            format!(
                "sustained high CPU: {:.1} %, above {} % for {}s{instead}",
                c.actual,
                c.threshold,
                above_secs(cpu_run)
            ),
        );
    }
    if anomaly(AnomalyKind::Unhealthy).is_some() {
        return row("unhealthy", Some(Action::Restart), 0.7, "the health check is failing".into());
    }
    let transient = |run: Option<Excursion>| matches!(run, Some(Excursion::Transient { .. }));
    if cpu.is_some_and(|c| c.severity >= Severity::High) && transient(cpu_run)
        || memory.is_some_and(|m| m.severity >= Severity::High) && transient(memory_run)
    {
        let what = if transient(cpu_run) { "CPU" } else { "memory" };
        let secs = if transient(cpu_run) { above_secs(cpu_run) } else { above_secs(memory_run) };
        return row(
            "transient_spike",
            None,
            0.65,
            format!(
                "transient spike: {what} above its threshold for {secs}s, less than the {}s sustain window",
                config.sustain.as_secs()
            ),
        );
    }
    row("no_rule", None, 0.5, format!("no rule calls for action on: {}", alert.summary()))
}

/// The table for a condition of a host itself (its own row, as no container is concerned): `low_disk`, the
/// engine's data root under the node's free-space threshold, calls for a cleanup of the host (the node
/// removes the dangling images no container uses), confidence 0.80.
pub fn decide_host(report: &HostReport) -> RuleDecision {
    let reason = match report.condition {
        HostCondition::LowDisk => {
            format!("{}: cleaning the host (the dangling images that no container uses)", report.summary())
        }
    };
    RuleDecision { rule: report.condition.name(), action: Some(Action::Cleanup), reason, confidence: 0.8 }
}

/// What to do about a container busy for the whole window: one more replica of its service when it opted in
/// by label (`hemostat.scale_up.max`: the load is real, more capacity serves it), else a restart; with the
/// words that say which, for the reason.
fn busy_action(container: &ContainerFacts) -> (Action, String) {
    match container.scale_up_cap() {
        Some(cap) => (
            Action::ScaleUp,
            format!(
                "; scaling its service up by one replica (at most {cap}, label {SCALE_UP_MAX_LABEL}), restarting \
                 it instead if the node cannot"
            ),
        ),
        None => (Action::Restart, String::new()),
    }
}

fn above_secs(run: Option<Excursion>) -> u64 {
    run.map_or(0, |r| r.above_for().as_secs())
}

/// A duration for people: `45 s`, `12 min`, `2 h 5 min`.
pub fn in_words(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::analysis::patterns::tests::{cpu_series, memory_series};
    use crate::container::{Anomaly, ContainerFacts, ExitReport, Health, Status};

    fn facts(restart_policy: &str) -> ContainerFacts {
        ContainerFacts {
            id: "c1".into(),
            name: "web".into(),
            image: "busybox".into(),
            status: Status::Running,
            health: Health::None,
            exit_code: 0,
            restart_policy: restart_policy.into(),
            labels: Default::default(),
            started_at: None,
            memory_limit: 0,
            cpu_limit: 0.0,
        }
    }

    /// An alert of container `c1` (`web`, running, no memory limit) with these anomalies and exit: the
    /// analysis tests' one fixture.
    pub(in crate::analysis) fn alert(
        anomalies: &[(AnomalyKind, Severity, f64, f64)],
        exit: Option<ExitReport>,
        restart_policy: &str,
    ) -> AlertReport {
        AlertReport {
            container: facts(restart_policy),
            anomalies: anomalies
                .iter()
                .map(|(kind, severity, threshold, actual)| Anomaly {
                    kind: *kind,
                    severity: *severity,
                    threshold: *threshold,
                    actual: *actual,
                })
                .collect(),
            metrics: None,
            exit,
            observed_at: None,
            reasserted: false,
            recent: vec![],
            log_tail: vec![],
            health_outputs: vec![],
            local_restart: None,
        }
    }

    fn decided(alert: &AlertReport, samples: &[Sample]) -> (&'static str, Option<Action>, f64) {
        let d = decide(&Assessed::new(alert.clone()), samples, &PatternConfig::default()).expect("a decision");
        (d.rule, d.action, d.confidence)
    }

    use AnomalyKind::*;
    use Severity::*;

    const RESTART: Option<Action> = Some(Action::Restart);

    #[test]
    fn row_1_requested_clean_and_opted_out_exits_are_ignored() {
        for exit in [
            ExitReport { exit_code: 143, oom_killed: false, stop_requested: true },
            ExitReport { exit_code: 0, oom_killed: false, stop_requested: false },
        ] {
            assert_eq!(
                decide(
                    &Assessed::new(alert(&[(NonZeroExit, High, 0.0, 143.0)], Some(exit), "no")),
                    &[],
                    &PatternConfig::default()
                ),
                None,
                "{exit:?}"
            );
        }
    }

    #[test]
    fn row_2_a_crash_loop_is_not_restarted() {
        let loop_alert = alert(
            &[(ExcessiveRestarts, High, 5.0, 7.0), (NonZeroExit, High, 0.0, 1.0)],
            Some(ExitReport { exit_code: 1, oom_killed: false, stop_requested: false }),
            "always",
        );
        let (rule, action, confidence) = decided(&loop_alert, &[]);
        assert_eq!((rule, action, confidence), ("excessive_restarts", None, 0.6));
    }

    #[test]
    fn rows_3_and_4_unexpected_exits() {
        let crash = Some(ExitReport { exit_code: 1, oom_killed: false, stop_requested: false });
        assert_eq!(
            decided(&alert(&[(NonZeroExit, High, 0.0, 1.0)], crash, "unless-stopped"), &[]),
            ("docker_restart_policy", None, 0.9)
        );
        assert_eq!(
            decided(&alert(&[(NonZeroExit, High, 0.0, 1.0)], crash, "no"), &[]),
            ("non_zero_exit", RESTART, 0.9)
        );
        let oom = Some(ExitReport { exit_code: 137, oom_killed: true, stop_requested: false });
        assert_eq!(
            decided(&alert(&[(OomKilled, Critical, 0.0, 137.0)], oom, "no"), &[]),
            ("non_zero_exit", RESTART, 0.9)
        );
    }

    #[test]
    fn row_5_critical_memory_at_once_critical_cpu_only_when_sustained() {
        assert_eq!(
            decided(&alert(&[(HighMemory, Critical, 80.0, 97.0)], None, "no"), &[]),
            ("critical_anomaly", RESTART, 0.85)
        );
        let sustained = cpu_series(30, &[99.0, 99.0, 99.0]);
        assert_eq!(
            decided(&alert(&[(HighCpu, Critical, 85.0, 99.0)], None, "no"), &sustained),
            ("critical_anomaly", RESTART, 0.85)
        );
        let spike = cpu_series(30, &[10.0, 12.0, 99.0]);
        assert_eq!(
            decided(&alert(&[(HighCpu, Critical, 85.0, 99.0)], None, "no"), &spike),
            ("transient_spike", None, 0.65)
        );
    }

    #[test]
    fn row_6_a_memory_leak_is_restarted_before_it_hits_the_limit() {
        let rising: Vec<f64> = (0..10).map(|i| 180.0 + 2.0 * i as f64).collect();
        let samples = memory_series(60, &rising, 256);
        let high = alert(&[(HighMemory, Medium, 80.0, 77.0)], None, "no");
        assert_eq!(decided(&high, &samples), ("memory_leak", RESTART, 0.8));
        let reason = decide(&Assessed::new(high.clone()), &samples, &PatternConfig::default()).unwrap().reason;
        assert!(reason.contains("the limit in about 29 min"), "{reason}");
    }

    #[test]
    fn row_7_sustained_cpu_including_between_the_threshold_and_90() {
        let samples = cpu_series(30, &[20.0, 86.0, 87.0, 88.0]);
        assert_eq!(
            decided(&alert(&[(HighCpu, High, 85.0, 88.0)], None, "no"), &samples),
            ("sustained_high_cpu", RESTART, 0.75)
        );
    }

    #[test]
    fn rows_5_and_7_scale_up_a_busy_service_that_opted_in_and_restart_anything_else() {
        let samples = cpu_series(30, &[20.0, 86.0, 87.0, 88.0]);
        let busy = |labels: &[(&str, &str)]| {
            let mut high = alert(&[(HighCpu, High, 85.0, 88.0)], None, "no");
            high.container.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            decided(&high, &samples).1
        };
        let compose = ("com.docker.compose.service", "api");
        assert_eq!(busy(&[compose, (SCALE_UP_MAX_LABEL, "3")]), Some(Action::ScaleUp));
        assert_eq!(busy(&[("com.docker.swarm.service.id", "s1"), (SCALE_UP_MAX_LABEL, "2")]), Some(Action::ScaleUp));
        assert_eq!(busy(&[compose]), RESTART, "not opted in");
        assert_eq!(busy(&[(SCALE_UP_MAX_LABEL, "3")]), RESTART, "not part of a service");
        for bad in ["0", "lots", "-1", ""] {
            assert_eq!(busy(&[compose, (SCALE_UP_MAX_LABEL, bad)]), RESTART, "{bad:?}");
        }
    }

    #[test]
    fn row_8_unhealthy() {
        assert_eq!(decided(&alert(&[(Unhealthy, High, 0.0, 1.0)], None, "no"), &[]), ("unhealthy", RESTART, 0.7));
    }

    #[test]
    fn rows_9_and_10_spikes_and_everything_else_need_no_action() {
        let samples = cpu_series(30, &[20.0, 30.0, 88.0]);
        assert_eq!(
            decided(&alert(&[(HighCpu, High, 85.0, 88.0)], None, "no"), &samples),
            ("transient_spike", None, 0.65)
        );
        let samples = cpu_series(30, &[70.0, 70.0, 70.0]);
        assert_eq!(decided(&alert(&[(HighCpu, Medium, 85.0, 70.0)], None, "no"), &samples), ("no_rule", None, 0.5));
        let flat = memory_series(60, &[210.0; 10], 256);
        assert_eq!(
            decided(&alert(&[(HighMemory, High, 80.0, 82.0)], None, "no"), &flat),
            ("no_rule", None, 0.5),
            "stable high memory"
        );
    }
}
