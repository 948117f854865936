//! Episodes: a container's condition (high CPU or memory, a failing health check, too many restarts) from
//! its first alert until the node says it cleared, decided once.
//!
//! The node alerts when a condition appears or changes severity (and re-asserts it every half hour); the
//! coordinator re-evaluates the decision table on every metrics sample that arrives while the episode is
//! open (each poll's report, which the node sends anyway). The coordinator, not the node, does this because
//! it holds what the decision needs: the sustain window, the leak window and horizon, the alert history
//! and the LLM; the node would need all of those to know when "sustained" or "a trend" is reached, and
//! would still have to send the samples. So, at any poll interval:
//!
//! - a CPU above its threshold is decided on the first sample at which its run covers the sustain window,
//!   that is within one poll interval after the window (when the window is not a whole number of poll
//!   intervals, after the window rounded up to whole intervals);
//! - memory rising toward its limit is decided on the first sample at which the fit calls it a leak
//!   ([`super::patterns`]), with the projected time to the limit in the reason;
//! - while the table only says "not yet" (`transient_spike`, `no_rule`) nothing is recorded; if the
//!   condition clears while the container runs, that last verdict is recorded once, as the episode's
//!   decision (a spike shorter than the window: one `transient_spike`). If it clears because the container
//!   exited, nothing is recorded for it: the exit is decided on its own.
//!
//! An episode is decided once: later samples, re-assertions and severity changes of the conditions it was
//! decided on record nothing more (the `health_alert`s of the node's alerts are still recorded). A new kind
//! of condition appearing in a decided episode opens it again. Episodes are kept in the memory of the
//! coordinator the node is connected to; after a coordinator restart the node's next alert (it re-asserts
//! its standing conditions on every new session) begins a new one, with the samples kept in the alert
//! history.

use std::time::{Duration, SystemTime};

use crate::container::Episode as EpisodeView;

use super::HistoryEntry;
use super::evidence::EpisodeEvidence;
use super::exit::Assessed;
use super::patterns::{self, Excursion, PatternConfig, Reading, Sample, excursion};
use super::rules::{self, RuleDecision};
use super::{sample_of, samples_of};
use crate::container::{AlertReport, AnomalyKind, Metrics};
use crate::events::Action;

/// How an episode was decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The conditions it was decided on.
    pub kinds: Vec<AnomalyKind>,
    /// The rule.
    pub rule: &'static str,
    /// The action decided (after the label and the confidence threshold), if any.
    pub action: Option<Action>,
    /// The decision's reason.
    pub reason: String,
}

/// One container's running condition.
#[derive(Clone, Debug)]
pub struct Episode {
    first_seen_ms: u64,
    case: Assessed,
    history: Vec<HistoryEntry>,
    samples: Vec<Sample>,
    keep: Duration,
    latest: Option<RuleDecision>,
    decided: Option<Decided>,
}

impl Episode {
    /// An episode beginning with `alert` (a condition, not an exit) at `now_ms`, with the container's alert
    /// history; samples older than `keep` before the latest are dropped.
    pub fn begin(alert: AlertReport, history: Vec<HistoryEntry>, now_ms: u64, keep: Duration) -> Self {
        let samples = samples_of(&alert, &history);
        Episode {
            first_seen_ms: now_ms,
            case: Assessed::new(alert),
            history,
            samples,
            keep,
            latest: None,
            decided: None,
        }
    }

    /// How long samples are kept for decisions with `config`: the leak window, or twice the sustain window.
    pub fn keep_for(config: &PatternConfig) -> Duration {
        config.leak_window.max(2 * config.sustain)
    }

    /// Takes a new alert of the node into the episode: its conditions and samples. A condition that the
    /// episode was not decided on opens it again.
    pub fn alerted(&mut self, alert: AlertReport) {
        let mut samples = std::mem::take(&mut self.samples);
        samples.extend(super::alert_samples(&alert));
        self.samples = patterns::merge(samples);
        self.trim();
        if let Some(decided) = &self.decided
            && alert.anomalies.iter().any(|a| !decided.kinds.contains(&a.kind))
        {
            self.decided = None;
        }
        self.case = Assessed::new(alert);
    }

    /// Takes a metrics sample into the episode, the anomalies' figures following it; false when it adds
    /// nothing (no time, or one it has).
    pub fn sampled(&mut self, metrics: &Metrics) -> bool {
        let Some(sample) = sample_of(metrics) else { return false };
        if self.samples.last().is_some_and(|last| last.at_ms >= sample.at_ms) {
            return false;
        }
        self.samples.push(sample);
        self.trim();
        for anomaly in &mut self.case.alert.anomalies {
            match anomaly.kind {
                AnomalyKind::HighCpu => anomaly.actual = metrics.cpu_percent.unwrap_or(anomaly.actual),
                AnomalyKind::HighMemory => anomaly.actual = metrics.memory_percent,
                _ => {}
            }
        }
        self.case.alert.metrics = Some(*metrics);
        true
    }

    fn trim(&mut self) {
        let Some(last) = self.samples.last().map(|s| s.at_ms) else { return };
        let oldest = last.saturating_sub(self.keep.as_millis() as u64);
        self.samples.retain(|s| s.at_ms >= oldest);
    }

    /// Takes out the conditions that cleared; true when none is left (the episode is over).
    pub fn cleared(&mut self, kinds: &[AnomalyKind]) -> bool {
        self.case.alert.anomalies.retain(|a| !kinds.contains(&a.kind));
        self.case.alert.anomalies.is_empty()
    }

    /// Applies the decision table to the episode as it stands; `None` when the table has nothing to say.
    pub fn evaluate(&mut self, config: &PatternConfig) -> Option<RuleDecision> {
        let rule = rules::decide(&self.case, &self.samples, config)?;
        self.latest = Some(rule.clone());
        Some(rule)
    }

    /// Marks it decided at `at_ms` by `rule`, with the action and reason of the verdict.
    pub fn decide(&mut self, at_ms: u64, rule: &'static str, action: Option<Action>, reason: String) {
        let kinds = self.case.alert.anomalies.iter().map(|a| a.kind).collect();
        self.decided = Some(Decided { at_ms, kinds, rule, action, reason });
    }

    /// How it was decided, if it was.
    pub fn decided(&self) -> Option<&Decided> {
        self.decided.as_ref()
    }

    /// The latest evaluation's row.
    pub fn latest(&self) -> Option<&RuleDecision> {
        self.latest.as_ref()
    }

    /// The latest alert, with the latest figures.
    pub fn case(&self) -> &Assessed {
        &self.case
    }

    /// Its samples, oldest first.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The container's alert history when it began.
    pub fn history(&self) -> &[HistoryEntry] {
        &self.history
    }

    /// When its first alert arrived, Unix milliseconds.
    pub fn first_seen_ms(&self) -> u64 {
        self.first_seen_ms
    }

    /// Since when the CPU (or else the memory) has been above its threshold, Unix milliseconds.
    pub fn above_since_ms(&self, config: &PatternConfig) -> Option<u64> {
        let last = self.samples.last()?.at_ms;
        let run = |kind, reading, value: fn(&Sample) -> Option<f64>| {
            let anomaly = self.case.alert.anomalies.iter().find(|a| a.kind == kind)?;
            match excursion(&self.samples, anomaly.threshold, config.sustain, reading, value) {
                Excursion::Below => None,
                run => Some(last.saturating_sub(run.above_for().as_millis() as u64)),
            }
        };
        run(AnomalyKind::HighCpu, Reading::Average, patterns::cpu)
            .or_else(|| run(AnomalyKind::HighMemory, Reading::Instant, patterns::memory))
    }

    /// Its moments, for a decision's evidence at `decided_ms`.
    pub fn evidence(&self, config: &PatternConfig, decided_ms: u64) -> EpisodeEvidence {
        EpisodeEvidence { first_seen_ms: self.first_seen_ms, above_since_ms: self.above_since_ms(config), decided_ms }
    }

    /// What people are shown of it.
    pub fn view(&self, config: &PatternConfig) -> EpisodeView {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let (rule, reason, action) = match (&self.decided, &self.latest) {
            (Some(d), _) => (d.rule.to_owned(), d.reason.clone(), d.action),
            (None, Some(latest)) => (latest.rule.to_owned(), latest.reason.clone(), None),
            (None, None) => (String::new(), String::new(), None),
        };
        EpisodeView {
            first_seen: at(self.first_seen_ms),
            anomalies: self.case.alert.anomalies.iter().map(|a| a.kind).collect(),
            above_since: self.above_since_ms(config).map(at),
            sustain: config.sustain,
            decided_at: self.decided.as_ref().map(|d| at(d.at_ms)),
            rule,
            reason,
            action,
        }
    }
}

/// The episode's timeline for a decision's reason: `episode since 12:00:01Z, above the threshold since
/// 12:00:03Z`.
pub fn timeline(evidence: &EpisodeEvidence) -> String {
    let at = |ms: u64| {
        let time = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)).to_string();
        time.split_once('T').map_or(time.clone(), |(_, t)| t.to_owned())
    };
    match evidence.above_since_ms {
        Some(above) => format!("episode since {}, above the threshold since {}", at(evidence.first_seen_ms), at(above)),
        None => format!("episode since {}", at(evidence.first_seen_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Severity;

    const T0: u64 = 1_800_000_000_000;

    fn alert(anomalies: &[(AnomalyKind, Severity, f64, f64)]) -> AlertReport {
        let mut alert = crate::analysis::rules::tests::alert(anomalies, None, "no");
        alert.container.memory_limit = 64 << 20;
        alert
    }

    fn metrics(at_s: u64, cpu: f64, memory_mib: f64) -> Metrics {
        Metrics {
            sampled_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(T0 + at_s * 1000)),
            cpu_percent: Some(cpu),
            memory_used: (memory_mib * 1048576.0) as u64,
            memory_limit: 64 << 20,
            memory_percent: memory_mib / 64.0 * 100.0,
            ..Metrics::default()
        }
    }

    /// Feeds samples every `step` seconds from `from`, evaluating after each the way the pipeline does;
    /// returns the second at which the table first had more than "not yet" to say, and its row.
    fn run_until_decided(
        episode: &mut Episode,
        config: &PatternConfig,
        seconds: impl IntoIterator<Item = (u64, f64, f64)>,
    ) -> Option<(u64, RuleDecision)> {
        for (at, cpu, memory) in seconds {
            assert!(episode.sampled(&metrics(at, cpu, memory)));
            if let Some(rule) = episode.evaluate(config).filter(|r| !r.waits()) {
                return Some((at, rule));
            }
        }
        None
    }

    fn config(sustain: u64) -> PatternConfig {
        PatternConfig { sustain: Duration::from_secs(sustain), ..PatternConfig::default() }
    }

    #[test]
    fn sustained_cpu_is_decided_within_one_poll_after_the_window_at_any_interval() {
        // The busy loop starts at second 1000 + offset; polls every `step` seconds from second 0.
        for (sustain, step) in [(60u64, 30u64), (60, 10), (60, 1), (10, 2), (10, 1), (60, 7)] {
            for offset in [0, 1, step / 2, step.saturating_sub(1)] {
                let config = config(sustain);
                let start = 1000 + offset;
                // Each sample is the average CPU over the interval before it.
                let cpu_at = |t: u64| {
                    let busy = t.saturating_sub(start).min(step) as f64;
                    busy / step as f64 * 100.0
                };
                let polls: Vec<u64> = (0..).map(|i| i * step).take_while(|t| *t < start + 10 * sustain).collect();
                let first_alert = polls.iter().copied().find(|t| cpu_at(*t) > 85.0).unwrap();
                let mut episode = Episode::begin(
                    alert(&[(AnomalyKind::HighCpu, Severity::Critical, 85.0, 100.0)]),
                    vec![],
                    T0,
                    Episode::keep_for(&config),
                );
                let feed = polls.iter().copied().filter(|t| *t >= start.saturating_sub(3 * step));
                let (at, rule) =
                    run_until_decided(&mut episode, &config, feed.map(|t| (t, cpu_at(t), 10.0))).expect("decided");
                assert_eq!(rule.rule, "critical_anomaly", "{rule:?}");
                // A sample is the average over its interval: one above 85 % may have been busy for only 85 %
                // of that interval, so the window can be full up to 15 % of a poll interval early.
                assert!(
                    at as f64 >= (start + sustain) as f64 - 0.15 * step as f64,
                    "not before the window: {sustain}/{step}/{offset}: at {at}"
                );
                // The run is counted in whole polls: the window rounded up to them, plus one poll.
                let whole = sustain.div_ceil(step) * step;
                assert!(
                    at <= start + whole + step,
                    "within one poll after the window: {sustain}/{step}/{offset}: at {at}, first alert {first_alert}"
                );
            }
        }
    }

    #[test]
    fn a_spike_shorter_than_the_window_only_waits_and_a_new_condition_reopens_a_decided_episode() {
        let config = config(10);
        let mut episode = Episode::begin(
            alert(&[(AnomalyKind::HighCpu, Severity::High, 85.0, 90.0)]),
            vec![],
            T0,
            Episode::keep_for(&config),
        );
        let spike = [(0, 5.0, 10.0), (1, 95.0, 10.0), (2, 95.0, 10.0), (3, 95.0, 10.0), (4, 95.0, 10.0)];
        assert_eq!(run_until_decided(&mut episode, &config, spike), None);
        let latest = episode.latest().unwrap();
        assert_eq!(latest.rule, "transient_spike");
        assert!(latest.reason.contains("for 4s, less than the 10s sustain window"), "{}", latest.reason);
        assert_eq!(episode.above_since_ms(&config), Some(T0));
        // Decided on CPU; the same condition re-asserted changes nothing, memory appearing reopens it.
        episode.decide(T0 + 5000, "sustained_high_cpu", Some(Action::Restart), "r".into());
        episode.alerted(alert(&[(AnomalyKind::HighCpu, Severity::Critical, 85.0, 99.0)]));
        assert!(episode.decided().is_some());
        episode.alerted(alert(&[
            (AnomalyKind::HighCpu, Severity::Critical, 85.0, 99.0),
            (AnomalyKind::HighMemory, Severity::Medium, 80.0, 70.0),
        ]));
        assert!(episode.decided().is_none());
        assert!(!episode.cleared(&[AnomalyKind::HighCpu]));
        assert!(episode.cleared(&[AnomalyKind::HighMemory]));
    }

    #[test]
    fn memory_growing_toward_the_limit_is_decided_before_it_with_the_time_left() {
        let config = PatternConfig::default();
        // 0.5 MiB a second into 64 MiB from 20 MiB, sampled every 2 s; the node alerts at 64 % (41 MiB).
        let mut episode = Episode::begin(
            alert(&[(AnomalyKind::HighMemory, Severity::Medium, 80.0, 64.5)]),
            vec![],
            T0,
            Episode::keep_for(&config),
        );
        let growth = (0..100).map(|i| (2 * i, 1.0, (20.0 + i as f64).min(64.0)));
        let (at, rule) = run_until_decided(&mut episode, &config, growth).expect("decided");
        assert_eq!(rule.rule, "memory_leak");
        let oom_at = 88; // 44 MiB to go at 0.5 MiB/s
        assert!(at < oom_at - 10, "decided at {at}s, the limit at {oom_at}s");
        assert!(rule.reason.contains("the limit in about"), "{}", rule.reason);
        assert!(rule.reason.contains(" s"), "seconds left, in the reason: {}", rule.reason);
    }

    #[test]
    fn the_timeline_reads_in_utc_seconds() {
        let evidence = EpisodeEvidence { first_seen_ms: 0, above_since_ms: Some(62_000), decided_ms: 70_000 };
        assert_eq!(timeline(&evidence), "episode since 00:00:00Z, above the threshold since 00:01:02Z");
    }
}
