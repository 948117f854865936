//! Detection: which anomalies a container has, and when that is worth an alert.
//!
//! | anomaly | from | severity |
//! |---|---|---|
//! | `high_cpu` | each metrics sample | critical above 95 %, high above `THRESHOLD_CPU_PERCENT` (85), medium above 80 % of it |
//! | `high_memory` | each metrics sample | the same scale with `THRESHOLD_MEMORY_PERCENT` (80) |
//! | `unhealthy` | Docker's `health_status: unhealthy` (never `starting`, never a stopped container), or a `hemostat.probe` that failed `retries` times in a row ([`crate::probe`]) | high |
//! | `non_zero_exit` | a `die` with a non-zero code that nobody asked for | high |
//! | `oom_killed` | a `die` after the OOM killer | critical |
//! | `excessive_restarts` | more than `restart_limit` starts after an exit within `restart_window` | high; critical at twice the limit |
//!
//! A container's start grace and `hemostat.unhealthy_for` hold some of these back ([`crate::grace`]).
//!
//! The first four of these are *conditions* that hold for a while: an alert goes out when one appears or
//! changes severity, a `resolved` when it clears, and the alert is re-asserted only every
//! `reassert_every`. The exit anomalies are *occurrences*: each exit is one alert.
//!
//! An exit is read from what Docker's event stream says happened ([`exit_requested`]): it was asked for
//! only when, since the container last started, Docker delivered a stopping signal to it for someone
//! (`docker stop`, `docker kill`, `docker restart`, `docker rm -f`, HemoStat's own restart: each is a `kill`
//! event carrying the signal), and its exit code does not name a different killing signal. A process killed
//! by a signal nobody sent through Docker (`kill -9` of its process on the host, `kill` inside it), and
//! the kernel's OOM kill, are faults whatever the exit code.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use hemostat_model::{Anomaly, AnomalyKind, Severity};
use hemostat_model::{InvalidLabel, PolicyLabel};

/// Signals that end a process that does not handle them and that someone sends to end one: HUP, INT,
/// QUIT, KILL, TERM. An exit code of 128 + one of these says that signal ended the container.
pub const KILLING_SIGNALS: [i32; 5] = [1, 2, 3, 9, 15];
/// Signals that ask a container to stop when Docker delivers them (INT, QUIT, KILL, TERM), besides the
/// container's own stop signal.
pub const STOP_SIGNALS: [i32; 4] = [2, 3, 9, 15];

/// A signal's number from Docker's spelling of it: `15`, `TERM` or `SIGTERM` (the common ones).
pub fn signal_number(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let name = text.strip_prefix("SIG").unwrap_or(text);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ABRT" => 6,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "WINCH" => 28,
        "PWR" => 30,
        _ => return None,
    })
}

/// Whether an exit is one an operator asked for: `sent` are the signals Docker delivered to the container
/// since it last started (its `kill` events), `stop_signal` the one `docker stop` sends it. Asked for when
/// one of them is a stopping signal and the exit code does not say a killing signal Docker did not send
/// ended it; never after the kernel's OOM kill.
pub fn exit_requested(sent: &[i32], stop_signal: Option<i32>, exit_code: i64, oom_killed: bool) -> bool {
    if oom_killed {
        return false;
    }
    let stopping = sent.iter().any(|s| STOP_SIGNALS.contains(s) || Some(*s) == stop_signal);
    let killed_by =
        exit_code.checked_sub(128).and_then(|n| i32::try_from(n).ok()).filter(|n| KILLING_SIGNALS.contains(n));
    stopping && killed_by.is_none_or(|n| sent.contains(&n))
}

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
    /// `NODE_START_GRACE_SECONDS`: no actionable anomaly this long after a container starts, unless its
    /// `hemostat.grace` label says otherwise ([`crate::grace`]). 0, the default, keeps none.
    pub start_grace: Duration,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            cpu_threshold: 85.0,
            memory_threshold: 80.0,
            restart_window: Duration::from_secs(600),
            restart_limit: 5,
            reassert_every: Duration::from_secs(1800),
            start_grace: Duration::ZERO,
        }
    }
}

impl DetectionConfig {
    /// The CPU and memory thresholds of a container with `labels`: its `hemostat.cpu_threshold` and
    /// `hemostat.memory_threshold` when valid (1 to 100 %, [`hemostat_model::policy`]), else the node's
    /// settings. A bad value is logged once by the watcher, and told by the coordinator in an event.
    pub fn thresholds(&self, labels: &HashMap<String, String>) -> (f64, f64) {
        let read = |label: PolicyLabel, setting: f64| {
            labels.get(label.name()).and_then(|value| label.percent(value).ok()).unwrap_or(setting)
        };
        (read(PolicyLabel::CpuThreshold, self.cpu_threshold), read(PolicyLabel::MemoryThreshold, self.memory_threshold))
    }
}

/// The threshold labels of `labels` whose values are not valid (the node's settings apply).
pub fn bad_threshold_labels(labels: &HashMap<String, String>) -> Vec<InvalidLabel> {
    [PolicyLabel::CpuThreshold, PolicyLabel::MemoryThreshold]
        .into_iter()
        .filter_map(|label| label.check(labels.get(label.name())?).err())
        .collect()
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

    /// Whether an anomaly of this kind stands.
    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.active.contains_key(&kind)
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
    fn threshold_labels_override_the_node_settings_and_a_bad_one_leaves_them() {
        let config = DetectionConfig::default();
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(config.thresholds(&labels(&[])), (85.0, 80.0));
        let set = labels(&[("hemostat.cpu_threshold", "10"), ("hemostat.memory_threshold", "50%")]);
        assert_eq!(config.thresholds(&set), (10.0, 50.0));
        assert!(bad_threshold_labels(&set).is_empty());
        let bad = labels(&[("hemostat.cpu_threshold", "0"), ("hemostat.memory_threshold", "lots")]);
        assert_eq!(config.thresholds(&bad), (85.0, 80.0));
        let named: Vec<&str> = bad_threshold_labels(&bad).iter().map(|b| b.label.name()).collect();
        assert_eq!(named, ["hemostat.cpu_threshold", "hemostat.memory_threshold"]);
    }

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
    fn an_exit_is_asked_for_only_after_docker_delivered_a_stopping_signal_that_explains_it() {
        // docker stop: TERM, then (if it lingers) KILL; the container's own code, or 143/137.
        for code in [0, 1, 143] {
            assert!(exit_requested(&[15], None, code, false), "stop, code {code}");
        }
        assert!(exit_requested(&[15, 9], None, 137, false), "stop after the timeout");
        assert!(exit_requested(&[9], None, 137, false), "docker kill");
        assert!(exit_requested(&[10], Some(10), 0, false), "docker stop with the container's own stop signal");
        // Nothing through Docker: a kill on the host or inside, or a crash.
        for code in [137, 143, 1, 139] {
            assert!(!exit_requested(&[], Some(15), code, false), "code {code} with no signal through Docker");
        }
        // A TERM the process ignored, then a kill -9 on the host: the code says KILL, which Docker did not send.
        assert!(!exit_requested(&[15], None, 137, false));
        // A HUP to reload is no stop.
        assert!(!exit_requested(&[1], None, 1, false));
        // The OOM killer, whatever else happened.
        assert!(!exit_requested(&[15, 9], None, 137, true));
        assert_eq!(
            ["15", "TERM", "SIGTERM", "SIGUSR1", "SIGRTMIN+3"].map(signal_number),
            [Some(15), Some(15), Some(15), Some(10), None]
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
