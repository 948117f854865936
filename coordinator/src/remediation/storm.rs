//! The storm breaker's fleet-wide threshold, relative to the fleet: a storm on one host is that host's
//! (the per-node threshold, [`StormConfig::threshold`]), and the whole fleet storms only when more than a
//! fraction of the containers watched need remediation within the window (never fewer than a minimum), so
//! a fleet of a thousand hosts is not stopped by its ordinary crashes.

use crate::store::StormConfig;

/// The store scope of the whole fleet.
pub const FLEET_SCOPE: &str = "fleet";

/// The store scope of one node.
pub fn node_scope(node: &str) -> String {
    format!("node:{node}")
}

/// The fleet-wide storm threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FleetStorm {
    /// More than this percentage of the watched containers needing remediation within the window is a
    /// fleet-wide storm.
    pub percent: f64,
    /// ... but never fewer containers than this.
    pub minimum: u32,
}

// The percentage is never NaN (the configuration clamps it), so equality is an equivalence.
impl Eq for FleetStorm {}

impl Default for FleetStorm {
    fn default() -> Self {
        FleetStorm { percent: 2.0, minimum: 20 }
    }
}

impl FleetStorm {
    /// The fleet-wide threshold with `watched` containers: more containers than this needing remediation
    /// within the window is a storm.
    pub fn threshold(&self, watched: usize) -> u32 {
        let percent = if self.percent.is_nan() { 0.0 } else { self.percent.clamp(0.0, 100.0) };
        let relative = (percent / 100.0 * watched as f64).ceil();
        (relative.min(u32::MAX as f64) as u32).max(self.minimum)
    }

    /// The store limits for the fleet scope with `watched` containers, in `storm`'s window.
    pub fn config(&self, storm: &StormConfig, watched: usize) -> StormConfig {
        StormConfig { threshold: self.threshold(watched), ..*storm }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_threshold_is_a_fraction_of_the_watched_containers_with_a_floor() {
        let fleet = FleetStorm::default();
        assert_eq!(fleet.threshold(0), 20);
        assert_eq!(fleet.threshold(100), 20, "2 % of 100 is below the minimum");
        assert_eq!(fleet.threshold(100_000), 2_000);
        assert_eq!(fleet.threshold(1_001), 21, "rounded up");
        let strict = FleetStorm { percent: 0.0, minimum: 5 };
        assert_eq!(strict.threshold(100_000), 5, "0 % keeps the absolute threshold");
        let window = StormConfig::default();
        assert_eq!(fleet.config(&window, 100_000), StormConfig { threshold: 2_000, window: window.window });
    }
}
