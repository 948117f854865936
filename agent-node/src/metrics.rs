//! Metrics computed with the docker CLI's formulas, so that the figures agree with `docker stats`, from a
//! [`Reading`] of a container's counters: Docker's one-shot stats ([`Reading::from_engine`]) or the
//! container's cgroup files ([`crate::cgroup`]), on cgroup v1 and v2.
//!
//! One-shot stats answer at once but carry no previous CPU sample (the 2-second call exists only to get
//! one); the node keeps each container's previous CPU counters itself.
//!
//! - CPU % = Δ container CPU time / Δ system CPU time × online CPUs × 100 (100 % is one core, never capped).
//! - Memory used = usage − inactive file cache (`total_inactive_file` on cgroup v1, `inactive_file` on v2);
//!   memory % = used / limit × 100, where the limit is the host's memory when the container has none.
//! - Network: received and sent bytes summed over the container's interfaces (loopback excluded).
//! - Block I/O: bytes read and written, summed over devices.

use std::time::SystemTime;

use bollard::models::ContainerStatsResponse;
pub use hemostat_model::Metrics;

/// The cumulative CPU counters one CPU % is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuCounters {
    /// Container CPU time, nanoseconds.
    pub container: u64,
    /// System CPU time, nanoseconds (all CPUs).
    pub system: u64,
}

/// One reading of a container's counters, whichever source it came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// When it was read, if the source says.
    pub read_at: Option<SystemTime>,
    /// CPU time of the container and of the system.
    pub cpu: CpuCounters,
    /// CPUs online (at least 1).
    pub online_cpus: u32,
    /// Memory charged to the container, bytes (page cache included).
    pub memory_usage: u64,
    /// Inactive file cache, bytes: the part of the usage `docker stats` leaves out.
    pub memory_inactive_file: u64,
    /// The container's memory limit, bytes; the host's memory when it has none.
    pub memory_limit: u64,
    /// Bytes received over the container's interfaces.
    pub network_rx_bytes: u64,
    /// Bytes sent over the container's interfaces.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// Processes and threads in the container.
    pub pids: u64,
}

impl Reading {
    /// The counters in Docker's one-shot stats (the daemon has already read the cgroup files and capped
    /// the memory limit at the host's memory).
    pub fn from_engine(stats: &ContainerStatsResponse) -> Self {
        let cpu = stats.cpu_stats.as_ref();
        let counters = CpuCounters {
            container: cpu.and_then(|c| c.cpu_usage.as_ref()).and_then(|u| u.total_usage).unwrap_or(0),
            system: cpu.and_then(|c| c.system_cpu_usage).unwrap_or(0),
        };
        let online_cpus = cpu
            .and_then(|c| c.online_cpus.filter(|n| *n > 0))
            .or_else(|| {
                cpu.and_then(|c| c.cpu_usage.as_ref()).and_then(|u| u.percpu_usage.as_ref()).map(|p| p.len() as u32)
            })
            .unwrap_or(1);
        let memory = stats.memory_stats.as_ref();
        let cache_stat = |key: &str| memory.and_then(|m| m.stats.as_ref()).and_then(|s| s.get(key).copied());
        let (mut network_rx_bytes, mut network_tx_bytes) = (0, 0);
        for network in stats.networks.iter().flat_map(|n| n.values()) {
            network_rx_bytes += network.rx_bytes.unwrap_or(0);
            network_tx_bytes += network.tx_bytes.unwrap_or(0);
        }
        let (mut block_read_bytes, mut block_write_bytes) = (0, 0);
        let entries = stats.blkio_stats.as_ref().and_then(|b| b.io_service_bytes_recursive.as_ref());
        for entry in entries.into_iter().flatten() {
            match entry.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => block_read_bytes += entry.value.unwrap_or(0),
                Some("write") => block_write_bytes += entry.value.unwrap_or(0),
                _ => {}
            }
        }
        Reading {
            read_at: stats.read.as_ref().and_then(|t| humantime::parse_rfc3339_weak(&t.to_string()).ok()),
            cpu: counters,
            online_cpus,
            memory_usage: memory.and_then(|m| m.usage).unwrap_or(0),
            memory_inactive_file: cache_stat("total_inactive_file")
                .or_else(|| cache_stat("inactive_file"))
                .unwrap_or(0),
            memory_limit: memory.and_then(|m| m.limit).unwrap_or(0),
            network_rx_bytes,
            network_tx_bytes,
            block_read_bytes,
            block_write_bytes,
            pids: stats.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
        }
    }
}

/// Computes a sample from a reading and the previous CPU counters; the reading's counters are the ones
/// to keep for the next sample.
pub fn compute(reading: &Reading, previous: Option<CpuCounters>) -> Metrics {
    let counters = reading.cpu;
    let cpu_percent = previous.map(|prev| {
        let container = counters.container.saturating_sub(prev.container) as f64;
        let system = counters.system.saturating_sub(prev.system) as f64;
        if system > 0.0 && container > 0.0 {
            container / system * f64::from(reading.online_cpus.max(1)) * 100.0
        } else {
            0.0
        }
    });
    let (usage, inactive) = (reading.memory_usage, reading.memory_inactive_file);
    let memory_used = if inactive < usage { usage - inactive } else { usage };
    let memory_limit = reading.memory_limit;
    let memory_percent = if memory_limit > 0 { memory_used as f64 / memory_limit as f64 * 100.0 } else { 0.0 };
    Metrics {
        sampled_at: reading.read_at,
        cpu_percent,
        memory_used,
        memory_limit,
        memory_percent,
        network_rx_bytes: reading.network_rx_bytes,
        network_tx_bytes: reading.network_tx_bytes,
        block_read_bytes: reading.block_read_bytes,
        block_write_bytes: reading.block_write_bytes,
        pids: reading.pids,
        // The monitor counts restarts; a sample of Docker's stats knows none.
        restarts_in_window: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(json: serde_json::Value) -> ContainerStatsResponse {
        serde_json::from_value(json).expect("a stats document")
    }

    #[test]
    fn cgroup_v1_figures_follow_the_docker_cli() {
        let s = stats(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000u64, "percpu_usage": [1, 2]}, "system_cpu_usage": 20_000_000_000u64},
            "memory_stats": {"usage": 100_000_000u64, "limit": 200_000_000u64, "stats": {"total_inactive_file": 20_000_000u64, "inactive_file": 1u64}},
            "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 7}, {"op": "Write", "value": 9}, {"op": "Total", "value": 16}]},
            "pids_stats": {"current": 3}
        }));
        let previous = CpuCounters { container: 2_000_000_000, system: 18_000_000_000 };
        let reading = Reading::from_engine(&s);
        let m = compute(&reading, Some(previous));
        // 1 s of CPU over 2 s of system time on 2 CPUs: 100 %, one core.
        assert_eq!(m.cpu_percent, Some(100.0));
        assert_eq!(reading.cpu, CpuCounters { container: 3_000_000_000, system: 20_000_000_000 });
        assert_eq!((m.memory_used, m.memory_percent), (80_000_000, 40.0));
        assert_eq!(
            (m.network_rx_bytes, m.network_tx_bytes, m.block_read_bytes, m.block_write_bytes, m.pids),
            (11, 22, 7, 9, 3)
        );
        assert_eq!(compute(&reading, None).cpu_percent, None, "no previous sample, no CPU %");
    }

    #[test]
    fn cgroup_v2_uses_inactive_file_and_online_cpus() {
        let s = stats(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 500u64}, "system_cpu_usage": 1000u64, "online_cpus": 4},
            "memory_stats": {"usage": 1000u64, "limit": 4000u64, "stats": {"inactive_file": 200u64}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 5}, {"op": "write", "value": 6}]}
        }));
        let m = compute(&Reading::from_engine(&s), Some(CpuCounters { container: 250, system: 0 }));
        assert_eq!(m.cpu_percent, Some(100.0), "250/1000 × 4 CPUs");
        assert_eq!((m.memory_used, m.memory_percent), (800, 20.0));
        assert_eq!((m.block_read_bytes, m.block_write_bytes), (5, 6));
    }

    #[test]
    fn inactive_cache_above_the_usage_leaves_the_usage() {
        let reading = Reading { memory_usage: 100, memory_inactive_file: 150, memory_limit: 400, ..Reading::default() };
        let m = compute(&reading, None);
        assert_eq!((m.memory_used, m.memory_percent), (100, 25.0));
    }
}
