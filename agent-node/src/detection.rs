//! Detection: which anomalies a container has, and when that is worth an alert.
//!
//! | anomaly | from | severity |
//! |---|---|---|
//! | `high_cpu` | each metrics sample | critical above 95 %, high above `THRESHOLD_CPU_PERCENT` (85), medium above 80 % of it |
//! | `high_memory` | each metrics sample | the same scale with `THRESHOLD_MEMORY_PERCENT` (80) |
//! | `unhealthy` | Docker's `health_status: unhealthy` (never `starting`, never a stopped container) | high |
//! | `non_zero_exit` | a `die` with a non-zero code that nobody asked for | high |
//! | `oom_killed` | a `die` after the OOM killer | critical |
//! | `excessive_restarts` | more than `restart_limit` starts after an exit within `restart_window` | high; critical at twice the limit |
//!
//! The first four of these are *conditions* that hold for a while: an alert goes out when one appears or
//! changes severity, a `resolved` when it clears, and the alert is re-asserted only every
//! `reassert_every`. The exit anomalies are *occurrences*: each exit is one alert.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub use hemostat_model::{Anomaly, AnomalyKind, Severity};

/// The detection settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectionConfig {
    /// `THRESHOLD_CPU_PERCENT`: CPU % (100 = one core, as `docker stats`).
    pub cpu_threshold: f64,
    /// `THRESHOLD_MEMORY_PERCENT`: memory % of the limit.
    pub memory_threshold: f64,
    /// Restarts counted within this window.
    pub restart_window: Duration,
    /// More restarts than this within the window is excessive.
    pub restart_limit: u32,
    /// A standing anomaly is alerted again after this long.
    pub reassert_every: Duration,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            cpu_threshold: 85.0,
            memory_threshold: 80.0,
            restart_window: Duration::from_secs(600),
            restart_limit: 5,
            reassert_every: Duration::from_secs(1800),
        }
    }
}

/// The seed's scale: critical above 95 %, high above the threshold, medium above 80 % of the threshold.
pub fn percent_anomaly(kind: AnomalyKind, actual: f64, threshold: f64) -> Option<Anomaly> {
    let severity = if actual > 95.0 && actual > threshold {
        Severity::Critical
    } else if actual > threshold {
        Severity::High
    } else if actual > 0.8 * threshold {
        Severity::Medium
    } else {
        return None;
    };
    Some(Anomaly { kind, severity, threshold, actual })
}

/// Restarts within a sliding window (not Docker's lifetime counter).
#[derive(Clone, Debug, Default)]
pub struct RestartWindow {
    starts: VecDeque<Instant>,
}

impl RestartWindow {
    /// Records a restart at `now`.
    pub fn record(&mut self, now: Instant) {
        self.starts.push_back(now);
    }

    /// Restarts within `window` before `now`.
    pub fn count(&mut self, now: Instant, window: Duration) -> u32 {
        while self.starts.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.starts.pop_front();
        }
        self.starts.len() as u32
    }
}

/// The anomaly for a restart count, if it is excessive.
pub fn restart_anomaly(count: u32, limit: u32) -> Option<Anomaly> {
    (count > limit).then(|| Anomaly {
        kind: AnomalyKind::ExcessiveRestarts,
        severity: if count >= 2 * limit.max(1) { Severity::Critical } else { Severity::High },
        threshold: f64::from(limit),
        actual: f64::from(count),
    })
}

/// What changed in a container's standing anomalies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// Send an alert with every standing anomaly: one appeared or changed severity, or it is time to
    /// re-assert.
    pub alert: bool,
    /// Anomalies that cleared.
    pub resolved: Vec<AnomalyKind>,
}

/// The standing anomalies of one container, and when they were last alerted.
#[derive(Clone, Debug, Default)]
pub struct Standing {
    active: BTreeMap<AnomalyKind, Anomaly>,
    last_alert: Option<Instant>,
}

impl Standing {
    /// Replaces the standing anomalies of the kinds in `scope` with `current` and says what to send.
    /// Kinds outside `scope` keep their state (a metrics sample says nothing about health).
    pub fn update(
        &mut self,
        now: Instant,
        scope: &[AnomalyKind],
        current: &[Anomaly],
        reassert_every: Duration,
    ) -> Changes {
        let mut changes = Changes::default();
        for kind in scope {
            let new = current.iter().find(|a| a.kind == *kind);
            match (self.active.get(kind), new) {
                (None, Some(anomaly)) => {
                    changes.alert = true;
                    self.active.insert(*kind, *anomaly);
                }
                (Some(old), Some(anomaly)) => {
                    if old.severity != anomaly.severity {
                        changes.alert = true;
                    }
                    self.active.insert(*kind, *anomaly);
                }
                (Some(_), None) => {
                    self.active.remove(kind);
                    changes.resolved.push(*kind);
                }
                (None, None) => {}
            }
        }
        let due = self.last_alert.is_none_or(|t| now.duration_since(t) >= reassert_every);
        if !self.active.is_empty() && due {
            changes.alert = true;
        }
        if changes.alert {
            self.last_alert = Some(now);
        }
        changes
    }

    /// Every standing anomaly.
    pub fn anomalies(&self) -> Vec<Anomaly> {
        self.active.values().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_severity_scale_matches_the_seed() {
        let cpu = |v| percent_anomaly(AnomalyKind::HighCpu, v, 85.0).map(|a| a.severity);
        assert_eq!(cpu(60.0), None);
        assert_eq!(cpu(68.5), Some(Severity::Medium), "above 80 % of 85");
        assert_eq!(cpu(87.0), Some(Severity::High), "between the threshold and 95");
        assert_eq!(cpu(95.5), Some(Severity::Critical));
        assert_eq!(cpu(250.0), Some(Severity::Critical), "several cores");
        let mem = |v| percent_anomaly(AnomalyKind::HighMemory, v, 80.0).map(|a| a.severity);
        assert_eq!(
            (mem(64.0), mem(64.5), mem(81.0), mem(96.0)),
            (None, Some(Severity::Medium), Some(Severity::High), Some(Severity::Critical))
        );
    }

    #[test]
    fn restarts_are_counted_in_a_sliding_window() {
        let t0 = Instant::now();
        let mut window = RestartWindow::default();
        for s in [0, 10, 20, 30, 40, 50] {
            window.record(t0 + Duration::from_secs(s));
        }
        let w = Duration::from_secs(60);
        assert_eq!(window.count(t0 + Duration::from_secs(50), w), 6);
        assert_eq!(restart_anomaly(6, 5).map(|a| a.severity), Some(Severity::High));
        assert_eq!(window.count(t0 + Duration::from_secs(85), w), 3, "the first three aged out");
        assert_eq!(restart_anomaly(3, 5), None);
        assert_eq!(restart_anomaly(10, 5).map(|a| a.severity), Some(Severity::Critical));
    }

    #[test]
    fn a_standing_anomaly_alerts_on_change_and_on_the_slow_timer_only() {
        let t0 = Instant::now();
        let every = Duration::from_secs(1800);
        let scope = [AnomalyKind::HighCpu, AnomalyKind::HighMemory];
        let high = percent_anomaly(AnomalyKind::HighCpu, 90.0, 85.0).unwrap();
        let critical = percent_anomaly(AnomalyKind::HighCpu, 99.0, 85.0).unwrap();
        let mut standing = Standing::default();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(standing.update(at(0), &scope, &[high], every), Changes { alert: true, resolved: vec![] });
        for s in [30, 60, 90, 600] {
            assert_eq!(standing.update(at(s), &scope, &[high], every), Changes::default(), "steady at {s}s");
        }
        assert!(standing.update(at(630), &scope, &[critical], every).alert, "severity changed");
        assert!(!standing.update(at(660), &scope, &[critical], every).alert);
        assert!(standing.update(at(630 + 1800), &scope, &[critical], every).alert, "re-asserted");
        // A sample outside the scope (health) leaves CPU standing.
        assert_eq!(standing.update(at(2500), &[AnomalyKind::Unhealthy], &[], every), Changes::default());
        assert_eq!(
            standing.update(at(2530), &scope, &[], every),
            Changes { alert: false, resolved: vec![AnomalyKind::HighCpu] }
        );
        assert!(standing.anomalies().is_empty());
    }
}
