//! Patterns on a container's metrics samples (the node's recent ones, the current one last, plus those kept
//! in the alert history and those of the running episode, see [`super::episode`]):
//!
//! - **sustained**: the run of consecutive samples above the threshold that ends with the current sample
//!   covers at least the sustain window (`ANALYZER_SUSTAIN_SECONDS`, 60 s). A CPU % is the average over the
//!   interval since the node's previous poll, so the run covers that interval too: it starts one poll
//!   interval (the samples' typical spacing) before its first sample. A memory figure is an instant, so its
//!   run starts at its first sample. A CPU between the threshold and 90 % that stays there is sustained,
//!   like any other value above the threshold.
//! - **transient**: above the threshold now, but that run is shorter than the window: a single short
//!   excursion (or too little history yet to call it more).
//! - **memory leak**: within the leak window (`ANALYZER_LEAK_WINDOW_SECONDS`, 1800 s), the shortest run of the
//!   latest samples (at least 5) whose memory use fits a rising straight line (least squares, R² ≥ 0.9) that
//!   reaches the limit within the horizon (`ANALYZER_LEAK_HORIZON_SECONDS`, 3600 s), observed for at least
//!   2 minutes, or for as long as the line says is left before the limit, whichever is shorter. So a slow
//!   leak needs two minutes of evidence, and a fast one is called once it has risen for as long as it has
//!   left: early enough to restart it before the kernel's OOM killer ends it, late enough that a short
//!   climb that levels off is not called a leak.

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

/// What a sampled value stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The average over the interval since the previous poll (CPU %).
    Average,
    /// The value at the sample's time (memory).
    Instant,
}

/// The CPU % of a sample, an average over the poll interval.
pub fn cpu(sample: &Sample) -> Option<f64> {
    sample.cpu
}

/// The memory % of a sample, an instant.
pub fn memory(sample: &Sample) -> Option<f64> {
    Some(sample.memory_percent())
}

/// The typical spacing of the samples (their median interval), zero with fewer than two.
pub fn typical_step(samples: &[Sample]) -> Duration {
    let mut steps: Vec<u64> = samples.windows(2).map(|w| w[1].at_ms.saturating_sub(w[0].at_ms)).collect();
    if steps.is_empty() {
        return Duration::ZERO;
    }
    steps.sort_unstable();
    Duration::from_millis(steps[steps.len() / 2])
}

/// Classifies the run above `threshold` of `value` (CPU % or memory %) ending at the last sample; a run of
/// [`Reading::Average`] values covers the poll interval before its first sample too.
pub fn excursion(
    samples: &[Sample],
    threshold: f64,
    sustain: Duration,
    reading: Reading,
    value: impl Fn(&Sample) -> Option<f64>,
) -> Excursion {
    let mut valued = samples.iter().filter_map(|s| value(s).map(|v| (s.at_ms, v))).rev();
    let Some((last_at, last)) = valued.next() else { return Excursion::Below };
    if last <= threshold {
        return Excursion::Below;
    }
    let mut first_at = last_at;
    let mut before = None;
    for (at, v) in valued {
        if v <= threshold {
            before = Some(at);
            break;
        }
        first_at = at;
    }
    let start = match reading {
        Reading::Instant => first_at,
        // The interval began at the previous poll: one typical step back, never before the sample that
        // was below the threshold.
        Reading::Average => {
            let step = typical_step(samples).as_millis() as u64;
            first_at.saturating_sub(step).max(before.unwrap_or(0))
        }
    };
    let above_for = Duration::from_millis(last_at - start);
    if above_for >= sustain { Excursion::Sustained { above_for } } else { Excursion::Transient { above_for } }
}

impl Excursion {
    /// How long the value has been above its threshold (zero when it is not).
    pub fn above_for(self) -> Duration {
        match self {
            Excursion::Below => Duration::ZERO,
            Excursion::Sustained { above_for } | Excursion::Transient { above_for } => above_for,
        }
    }
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

/// Evidence of a leak over a short time: two minutes, or less when the limit is nearer than that.
pub const LEAK_EVIDENCE: Duration = Duration::from_secs(120);
/// The fewest samples a leak is fitted on.
pub const LEAK_MIN_SAMPLES: usize = 5;

/// The memory leak the samples show, if any (see the module docs for the definition).
pub fn memory_leak(samples: &[Sample], config: &PatternConfig) -> Option<Leak> {
    let last = *samples.last()?;
    if last.memory_limit == 0 {
        return None;
    }
    let window_start = last.at_ms.saturating_sub(config.leak_window.as_millis() as u64);
    // Seconds before the last sample, and bytes relative to it (small numbers keep the sums exact).
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at_ms >= window_start)
        .map(|s| ((s.at_ms as f64 - last.at_ms as f64) / 1000.0, s.memory_used as f64 - last.memory_used as f64))
        .collect();
    let remaining = last.memory_limit.saturating_sub(last.memory_used) as f64;
    // The latest runs, from the shortest to the whole window: the first that qualifies is the leak, its
    // rate the latest trend's.
    let (mut n, mut sx, mut sy, mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (count, (x, y)) in points.iter().rev().enumerate() {
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
        if count + 1 < LEAK_MIN_SAMPLES {
            continue;
        }
        let (vxx, vxy, vyy) = (sxx - sx * sx / n, sxy - sx * sy / n, syy - sy * sy / n);
        if vxx <= 0.0 || vyy <= 0.0 {
            continue;
        }
        let slope = vxy / vxx;
        let r_squared = (vxy * vxy) / (vxx * vyy);
        if slope <= 0.0 || r_squared < 0.9 {
            continue;
        }
        let time_to_limit = Duration::from_secs_f64(remaining / slope);
        let observed = Duration::from_secs_f64(-x);
        if time_to_limit <= config.leak_horizon && observed >= LEAK_EVIDENCE.min(time_to_limit) {
            return Some(Leak { bytes_per_second: slope, r_squared, time_to_limit });
        }
    }
    None
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
        let run = |samples: &[Sample]| excursion(samples, 85.0, MIN, Reading::Average, cpu);
        // 30 s polls: 86-88 % for two samples is 60 s above 85, the first sample's interval included:
        // sustained (the original never acted here).
        assert_eq!(run(&cpu_series(30, &[40.0, 86.0, 88.0])), Excursion::Sustained { above_for: MIN });
        assert_eq!(
            run(&cpu_series(30, &[40.0, 86.0, 88.0, 89.0])),
            Excursion::Sustained { above_for: Duration::from_secs(90) }
        );
        // Only the current sample above: a transient of one interval.
        assert_eq!(
            run(&cpu_series(30, &[40.0, 42.0, 99.0])),
            Excursion::Transient { above_for: Duration::from_secs(30) }
        );
        // A dip below the threshold restarts the run.
        assert_eq!(
            run(&cpu_series(30, &[90.0, 90.0, 50.0, 90.0])),
            Excursion::Transient { above_for: Duration::from_secs(30) }
        );
        assert_eq!(run(&cpu_series(30, &[90.0, 50.0])), Excursion::Below);
        assert_eq!(run(&[]), Excursion::Below);
        // Memory is an instant: its run starts at its first sample.
        let mem = memory_series(30, &[10.0, 90.0, 90.0, 90.0], 100);
        assert_eq!(excursion(&mem, 80.0, MIN, Reading::Instant, memory), Excursion::Sustained { above_for: MIN });
        assert_eq!(
            excursion(&mem[..3], 80.0, MIN, Reading::Instant, memory),
            Excursion::Transient { above_for: Duration::from_secs(30) }
        );
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

    #[test]
    fn a_fast_rise_is_a_leak_once_it_has_risen_for_as_long_as_it_has_left() {
        let config = PatternConfig::default();
        // 1 MiB a second into a 64 MiB limit, sampled every second, after a flat minute at 8 MiB.
        let mut mib: Vec<f64> = vec![8.0; 60];
        let leak_at = (1..=56).map(|s| 8.0 + s as f64).find_map(|now| {
            mib.push(now);
            memory_leak(&memory_series(1, &mib, 64), &config).map(|leak| (now, leak))
        });
        let (now, leak) = leak_at.expect("called a leak before the limit");
        // Risen for t seconds with 56 - t left: called once t ≥ 56 - t, i.e. at about 36 MiB.
        assert!((35.0..=38.0).contains(&now), "called at {now} MiB");
        assert!((leak.bytes_per_second / 1048576.0 - 1.0).abs() < 0.1, "{leak:?}");
        assert!(leak.time_to_limit <= Duration::from_secs(32), "{leak:?}");
        // A climb of ten seconds that levels off for a minute is no leak.
        let mut plateau: Vec<f64> = (0..10).map(|s| 30.0 + 2.0 * s as f64).collect();
        plateau.extend([50.0; 60]);
        assert_eq!(memory_leak(&memory_series(1, &plateau, 64), &config), None);
    }
}
