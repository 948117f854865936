//! Patterns on a container's metrics samples (the node's recent ones, the current one last, plus those kept
//! in the alert history):
//!
//! - **sustained**: the run of consecutive samples above the threshold that ends with the current sample
//!   spans at least the sustain window (`ANALYZER_SUSTAIN_SECONDS`, 60 s). A CPU between the threshold and
//!   90 % that stays there is sustained, like any other value above the threshold.
//! - **transient**: above the threshold now, but that run is shorter than the window: a single short
//!   excursion (or too little history yet to call it more).
//! - **memory leak**: over the leak window (`ANALYZER_LEAK_WINDOW_SECONDS`, 1800 s), at least 5 samples
//!   spanning 2 minutes or more whose memory use fits a rising straight line (least squares, R² ≥ 0.9) that
//!   reaches the limit within the horizon (`ANALYZER_LEAK_HORIZON_SECONDS`, 3600 s).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One sample, reduced to what the patterns and the history need.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken, Unix milliseconds.
    pub at_ms: u64,
    /// CPU %, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory limit, bytes.
    pub memory_limit: u64,
}

impl Sample {
    /// Memory in use as a percentage of the limit.
    pub fn memory_percent(&self) -> f64 {
        if self.memory_limit == 0 { 0.0 } else { self.memory_used as f64 / self.memory_limit as f64 * 100.0 }
    }
}

/// The pattern settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PatternConfig {
    /// How long a value must stay above the threshold to be sustained.
    pub sustain: Duration,
    /// The window a leak is fitted over.
    pub leak_window: Duration,
    /// A leak matters if it reaches the limit within this time.
    pub leak_horizon: Duration,
}

impl Default for PatternConfig {
    fn default() -> Self {
        PatternConfig {
            sustain: Duration::from_secs(60),
            leak_window: Duration::from_secs(1800),
            leak_horizon: Duration::from_secs(3600),
        }
    }
}

/// Where the current value stands relative to a threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Excursion {
    /// The current sample is not above the threshold.
    Below,
    /// Above, for at least the sustain window.
    Sustained {
        /// How long it has been above.
        above_for: Duration,
    },
    /// Above, for less than the sustain window.
    Transient {
        /// How long it has been above.
        above_for: Duration,
    },
}

/// Classifies the run above `threshold` of `value` (CPU % or memory %) ending at the last sample.
pub fn excursion(
    samples: &[Sample],
    threshold: f64,
    sustain: Duration,
    value: impl Fn(&Sample) -> Option<f64>,
) -> Excursion {
    let mut valued = samples.iter().filter_map(|s| value(s).map(|v| (s.at_ms, v))).rev();
    let Some((last_at, last)) = valued.next() else { return Excursion::Below };
    if last <= threshold {
        return Excursion::Below;
    }
    let mut first_at = last_at;
    for (at, v) in valued {
        if v <= threshold {
            break;
        }
        first_at = at;
    }
    let above_for = Duration::from_millis(last_at - first_at);
    if above_for >= sustain { Excursion::Sustained { above_for } } else { Excursion::Transient { above_for } }
}

/// A fitted memory leak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leak {
    /// Growth, bytes per second.
    pub bytes_per_second: f64,
    /// Goodness of fit, 0 to 1.
    pub r_squared: f64,
    /// Time until the limit at this rate.
    pub time_to_limit: Duration,
}

/// The memory leak the samples show, if any (see the module docs for the definition).
pub fn memory_leak(samples: &[Sample], config: &PatternConfig) -> Option<Leak> {
    let last = samples.last()?;
    let window_start = last.at_ms.saturating_sub(config.leak_window.as_millis() as u64);
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at_ms >= window_start)
        .map(|s| ((s.at_ms - window_start) as f64 / 1000.0, s.memory_used as f64))
        .collect();
    if points.len() < 5 || points.last()?.0 - points.first()?.0 < 120.0 {
        return None;
    }
    let n = points.len() as f64;
    let (mean_x, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r_squared = (sxy * sxy) / (sxx * syy);
    if slope <= 0.0 || r_squared < 0.9 || last.memory_limit == 0 {
        return None;
    }
    let remaining = last.memory_limit.saturating_sub(last.memory_used) as f64;
    let time_to_limit = Duration::from_secs_f64(remaining / slope);
    (time_to_limit <= config.leak_horizon).then_some(Leak { bytes_per_second: slope, r_squared, time_to_limit })
}

/// Merges sample lists by time, dropping duplicates (same time), oldest first.
pub fn merge(mut samples: Vec<Sample>) -> Vec<Sample> {
    samples.sort_by_key(|s| s.at_ms);
    samples.dedup_by_key(|s| s.at_ms);
    samples
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Samples every `step` seconds with these CPU values and a flat memory.
    pub fn cpu_series(step: u64, values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                at_ms: 1_000_000 + i as u64 * step * 1000,
                cpu: Some(*v),
                memory_used: 100,
                memory_limit: 1000,
            })
            .collect()
    }

    /// Samples every `step` seconds with these memory values (MiB) under `limit` MiB.
    pub fn memory_series(step: u64, mib: &[f64], limit: u64) -> Vec<Sample> {
        mib.iter()
            .enumerate()
            .map(|(i, m)| Sample {
                at_ms: 1_000_000 + i as u64 * step * 1000,
                cpu: Some(1.0),
                memory_used: (m * 1048576.0) as u64,
                memory_limit: limit << 20,
            })
            .collect()
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn sustained_needs_the_whole_window_above_the_threshold() {
        let cpu = |s: &Sample| s.cpu;
        // 30 s polls: 86-89 % for three samples is 60 s above 85: sustained (the original never acted here).
        assert_eq!(
            excursion(&cpu_series(30, &[40.0, 86.0, 88.0, 89.0]), 85.0, MIN, cpu),
            Excursion::Sustained { above_for: MIN }
        );
        // Only the current sample above: a transient.
        assert_eq!(
            excursion(&cpu_series(30, &[40.0, 42.0, 99.0]), 85.0, MIN, cpu),
            Excursion::Transient { above_for: Duration::ZERO }
        );
        // A dip below the threshold restarts the run.
        assert!(matches!(
            excursion(&cpu_series(30, &[90.0, 90.0, 50.0, 90.0, 90.0]), 85.0, MIN, cpu),
            Excursion::Transient { .. }
        ));
        assert_eq!(excursion(&cpu_series(30, &[90.0, 50.0]), 85.0, MIN, cpu), Excursion::Below);
        assert_eq!(excursion(&[], 85.0, MIN, cpu), Excursion::Below);
    }

    #[test]
    fn a_steady_rise_towards_the_limit_is_a_leak_and_noise_or_a_plateau_is_not() {
        let config = PatternConfig::default();
        // +2 MiB a minute from 200 MiB under 256 MiB: the limit in ~20 minutes.
        let rising: Vec<f64> = (0..10).map(|i| 200.0 + 2.0 * i as f64).collect();
        let leak = memory_leak(&memory_series(60, &rising, 256), &config).expect("a leak");
        assert!((leak.bytes_per_second - 2.0 * 1048576.0 / 60.0).abs() < 1.0);
        assert!(leak.time_to_limit < Duration::from_secs(1800) && leak.r_squared > 0.99);
        // The same rise under a 64 GiB limit would take days: not within the horizon.
        assert_eq!(memory_leak(&memory_series(60, &rising, 65536), &config), None);
        // Flat, or up and down: no leak.
        assert_eq!(memory_leak(&memory_series(60, &[200.0; 10], 256), &config), None);
        let noisy = [200.0, 230.0, 190.0, 240.0, 185.0, 235.0, 195.0, 228.0, 199.0, 210.0];
        assert_eq!(memory_leak(&memory_series(60, &noisy, 256), &config), None);
        // Too short a history to tell.
        assert_eq!(memory_leak(&memory_series(10, &rising[..5], 256), &config), None);
    }
}
