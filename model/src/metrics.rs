//! One metrics sample of a container, as a node computes it with the docker CLI's formulas (CPU 100 % is
//! one core; memory without inactive file cache), so the figures agree with `docker stats`.

use std::time::SystemTime;

use hemostat_proto::timestamp;
use hemostat_proto::v1 as pb;
use serde::Serialize;

/// One metrics sample of a container.
///
/// Its JSON form (the CLI's `-o json`) names the fields as the wire does (`memory_used_bytes`), with
/// `sampled_at` as an RFC 3339 UTC time with milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// When Docker read the counters.
    #[serde(serialize_with = "rfc3339_millis")]
    pub sampled_at: Option<SystemTime>,
    /// CPU %, 100 = one core; `None` on a container's first sample (no previous one yet).
    pub cpu_percent: Option<f64>,
    /// Memory in use without inactive file cache, bytes.
    #[serde(rename = "memory_used_bytes")]
    pub memory_used: u64,
    /// Memory limit, bytes (the host's memory when the container has none).
    #[serde(rename = "memory_limit_bytes")]
    pub memory_limit: u64,
    /// Memory in use as a percentage of the limit.
    pub memory_percent: f64,
    /// Bytes received.
    pub network_rx_bytes: u64,
    /// Bytes sent.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
    /// Restarts the node saw within its restart window.
    pub restarts_in_window: u32,
}

impl Metrics {
    /// The wire form of this sample of `container`, whose id and state at sampling time go with it.
    pub fn to_wire(&self, container: &pb::ContainerState) -> pb::ContainerMetrics {
        pb::ContainerMetrics {
            container_id: container.id.clone(),
            sampled_at: self.sampled_at.map(timestamp::to_proto),
            cpu_percent: self.cpu_percent,
            memory_used_bytes: self.memory_used,
            memory_limit_bytes: self.memory_limit,
            memory_percent: self.memory_percent,
            network_rx_bytes: self.network_rx_bytes,
            network_tx_bytes: self.network_tx_bytes,
            block_read_bytes: self.block_read_bytes,
            block_write_bytes: self.block_write_bytes,
            pids: self.pids,
            restarts_in_window: self.restarts_in_window,
            status: container.status,
            health: container.health,
            exit_code: container.exit_code,
        }
    }
}

impl From<&pb::ContainerMetrics> for Metrics {
    fn from(m: &pb::ContainerMetrics) -> Self {
        Metrics {
            sampled_at: m.sampled_at.as_ref().map(timestamp::from_proto),
            cpu_percent: m.cpu_percent,
            memory_used: m.memory_used_bytes,
            memory_limit: m.memory_limit_bytes,
            memory_percent: m.memory_percent,
            network_rx_bytes: m.network_rx_bytes,
            network_tx_bytes: m.network_tx_bytes,
            block_read_bytes: m.block_read_bytes,
            block_write_bytes: m.block_write_bytes,
            pids: m.pids,
            restarts_in_window: m.restarts_in_window,
        }
    }
}

fn rfc3339_millis<S: serde::Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.collect_str(&humantime::format_rfc3339_millis(*time)),
        None => serializer.serialize_none(),
    }
}
