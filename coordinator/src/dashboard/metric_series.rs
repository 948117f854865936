//! A container's metric series for the charts: the samples the registry keeps, with the byte counters
//! turned into rates.

use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::container::Metrics;

/// One point of a container's charts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// When Docker took the sample, Unix milliseconds.
    pub t_ms: u64,
    /// CPU %, 100 = one core; none on a container's first sample.
    pub cpu_percent: Option<f64>,
    /// Memory in use, % of the limit.
    pub memory_percent: f64,
    /// Bytes received per second since the previous sample.
    pub net_rx_per_s: Option<f64>,
    /// Bytes sent per second.
    pub net_tx_per_s: Option<f64>,
    /// Bytes read from block devices per second.
    pub block_read_per_s: Option<f64>,
    /// Bytes written to block devices per second.
    pub block_write_per_s: Option<f64>,
}

/// The points of `samples` (oldest first). Samples without a time are skipped; a rate needs the previous
/// sample and is none when a counter went down (the container restarted) or no time passed.
pub fn series(samples: impl IntoIterator<Item = Metrics>) -> Vec<SeriesPoint> {
    let mut points = Vec::new();
    let mut previous: Option<(u64, Metrics)> = None;
    for sample in samples {
        let Some(t_ms) =
            sample.sampled_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64)
        else {
            continue;
        };
        let rate = |now: fn(&Metrics) -> u64| {
            let (then_ms, then) = previous.as_ref()?;
            let (now_value, then_value) = (now(&sample), now(then));
            (t_ms > *then_ms && now_value >= then_value)
                .then(|| (now_value - then_value) as f64 * 1000.0 / (t_ms - then_ms) as f64)
        };
        points.push(SeriesPoint {
            t_ms,
            cpu_percent: sample.cpu_percent,
            memory_percent: sample.memory_percent,
            net_rx_per_s: rate(|m| m.network_rx_bytes),
            net_tx_per_s: rate(|m| m.network_tx_bytes),
            block_read_per_s: rate(|m| m.block_read_bytes),
            block_write_per_s: rate(|m| m.block_write_bytes),
        });
        previous = Some((t_ms, sample));
    }
    points
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sample(at_ms: Option<u64>, rx: u64, read: u64) -> Metrics {
        Metrics {
            sampled_at: at_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            cpu_percent: Some(12.5),
            memory_percent: 40.0,
            network_rx_bytes: rx,
            network_tx_bytes: rx / 2,
            block_read_bytes: read,
            ..Metrics::default()
        }
    }

    #[test]
    fn metric_series_turn_counters_into_rates_per_second() {
        let points = series([
            sample(Some(10_000), 1000, 0),
            sample(None, 5000, 0),
            sample(Some(12_000), 3000, 4096),
            sample(Some(12_500), 500, 8192),
            sample(Some(12_500), 600, 8192),
        ]);
        assert_eq!(points.len(), 4, "the sample without a time is skipped");
        assert_eq!(points[0].net_rx_per_s, None, "no previous sample");
        assert_eq!(points[1].net_rx_per_s, Some(1000.0), "2000 bytes in 2 s");
        assert_eq!(points[1].net_tx_per_s, Some(500.0));
        assert_eq!(points[1].block_read_per_s, Some(2048.0));
        assert_eq!(points[2].net_rx_per_s, None, "the counter went down: a restart");
        assert_eq!(points[2].block_read_per_s, Some(8192.0), "4096 bytes in half a second");
        assert_eq!(points[3].net_rx_per_s, None, "no time passed");
        assert_eq!((points[3].cpu_percent, points[3].memory_percent), (Some(12.5), 40.0));
    }
}
