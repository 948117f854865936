//! The host's disk: with `NODE_DISK_MIN_FREE_PERCENT` set, the node measures the free space of the engine's
//! data root (`docker info`'s DockerRootDir, or `NODE_DISK_PATH`) at every poll and reports a host condition,
//! `low_disk`, when the free share falls under the threshold, again on the slow re-assert timer while it
//! lasts, and `cleared` once it is one point above the threshold again (so a disk hovering at the threshold
//! does not flap). The coordinator decides what to do (a cleanup: the dangling images no container uses).
//!
//! A data root the node cannot measure (a node in a container without the engine's folder mounted) is said
//! once at start, and the check stays off: mount it, or point `NODE_DISK_PATH` at a folder on the same
//! filesystem.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hemostat_model::{HostCondition, HostReport};
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;

use crate::outbox::Outbox;

/// The disk check's settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskConfig {
    /// `NODE_DISK_MIN_FREE_PERCENT`: below this share free the disk is low; 0 turns the check off.
    pub min_free_percent: f64,
    /// `NODE_DISK_PATH`: the filesystem measured; `None` is the engine's data root.
    pub path: Option<PathBuf>,
}

impl DiskConfig {
    /// Whether the check is on.
    pub fn enabled(&self) -> bool {
        self.min_free_percent > 0.0
    }
}

/// How full a filesystem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Bytes free for unprivileged use.
    pub free_bytes: u64,
    /// Its size.
    pub total_bytes: u64,
}

impl Usage {
    /// The percentage free.
    pub fn free_percent(&self) -> f64 {
        if self.total_bytes == 0 { 0.0 } else { self.free_bytes as f64 * 100.0 / self.total_bytes as f64 }
    }
}

/// Measures the filesystem that holds `path`.
pub fn usage(path: &Path) -> std::io::Result<Usage> {
    let stat = rustix::fs::statvfs(path)?;
    let block = stat.f_frsize.max(1);
    Ok(Usage { free_bytes: stat.f_bavail.saturating_mul(block), total_bytes: stat.f_blocks.saturating_mul(block) })
}

/// What a measurement means for the condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The disk became low.
    Began,
    /// Still low, and the re-assert time has come.
    Reasserted,
    /// It has room again.
    Cleared,
}

/// The condition's state between measurements.
#[derive(Clone, Debug)]
pub struct DiskState {
    min_free_percent: f64,
    reassert_every: Duration,
    /// When it was last reported low, while it is.
    low_since_report: Option<tokio::time::Instant>,
}

/// The free share above the threshold at which a low disk counts as cleared.
pub const HYSTERESIS_POINTS: f64 = 1.0;

impl DiskState {
    /// A state for the threshold `min_free_percent`, re-asserting a low disk every `reassert_every`.
    pub fn new(min_free_percent: f64, reassert_every: Duration) -> Self {
        DiskState { min_free_percent, reassert_every, low_since_report: None }
    }

    /// Takes a measurement at `now`; what to report, if anything.
    pub fn observe(&mut self, usage: Usage, now: tokio::time::Instant) -> Option<Change> {
        let free = usage.free_percent();
        match self.low_since_report {
            None if free < self.min_free_percent => {
                self.low_since_report = Some(now);
                Some(Change::Began)
            }
            None => None,
            Some(_) if free >= self.min_free_percent + HYSTERESIS_POINTS => {
                self.low_since_report = None;
                Some(Change::Cleared)
            }
            Some(reported) if now.duration_since(reported) >= self.reassert_every => {
                self.low_since_report = Some(now);
                Some(Change::Reasserted)
            }
            Some(_) => None,
        }
    }
}

/// The task that measures the disk and reports on it.
pub struct DiskWatch {
    path: PathBuf,
    interval: Duration,
    state: DiskState,
    outbox: Arc<Outbox>,
}

impl DiskWatch {
    /// A watch of `path` every `interval` with `config`'s threshold, re-asserting every `reassert_every`, or
    /// `None` (said in the log) when `path` cannot be measured.
    pub fn new(
        config: &DiskConfig,
        path: PathBuf,
        interval: Duration,
        reassert_every: Duration,
        outbox: Arc<Outbox>,
    ) -> Option<Self> {
        if let Err(error) = usage(&path) {
            tracing::warn!(
                path = ?path,
                %error,
                "the disk check (NODE_DISK_MIN_FREE_PERCENT) is off: cannot measure the engine's data root; mount it \
                 into the node's container or set NODE_DISK_PATH to a folder on the same filesystem"
            );
            return None;
        }
        tracing::info!(path = ?path, min_free_percent = config.min_free_percent, "watching the host's disk");
        Some(DiskWatch { path, interval, state: DiskState::new(config.min_free_percent, reassert_every), outbox })
    }

    /// Measures every interval, forever.
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let usage = match usage(&self.path) {
                Ok(usage) => usage,
                Err(error) => {
                    tracing::warn!(path = ?self.path, %error, "could not measure the host's disk");
                    continue;
                }
            };
            let Some(change) = self.state.observe(usage, tokio::time::Instant::now()) else { continue };
            let report = HostReport {
                condition: HostCondition::LowDisk,
                cleared: change == Change::Cleared,
                path: self.path.display().to_string(),
                free_bytes: usage.free_bytes,
                total_bytes: usage.total_bytes,
                min_free_percent: self.state.min_free_percent,
                observed_at: Some(SystemTime::now()),
            };
            match change {
                Change::Began => tracing::warn!("{}", report.summary()),
                Change::Cleared => tracing::info!("{}", report.summary()),
                Change::Reasserted => tracing::debug!("{}", report.summary()),
            }
            self.outbox.push(Body::HostAlert(pb::HostAlert::from(&report)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(free: u64) -> Usage {
        Usage { free_bytes: free, total_bytes: 100 }
    }

    #[test]
    fn a_low_disk_is_said_when_it_begins_on_the_slow_timer_and_when_it_has_room_again() {
        let mut state = DiskState::new(10.0, Duration::from_secs(1800));
        let t0 = tokio::time::Instant::now();
        assert_eq!(state.observe(at(50), t0), None);
        assert_eq!(state.observe(at(9), t0), Some(Change::Began));
        assert_eq!(state.observe(at(5), t0 + Duration::from_secs(60)), None, "said once while it lasts");
        assert_eq!(state.observe(at(10), t0 + Duration::from_secs(120)), None, "at the threshold: not yet cleared");
        assert_eq!(state.observe(at(10), t0 + Duration::from_secs(1800)), Some(Change::Reasserted));
        assert_eq!(state.observe(at(11), t0 + Duration::from_secs(1900)), Some(Change::Cleared), "one point above");
        assert_eq!(state.observe(at(11), t0 + Duration::from_secs(2000)), None);
        assert_eq!(state.observe(at(0), t0 + Duration::from_secs(2100)), Some(Change::Began));
    }

    #[test]
    fn an_empty_filesystem_size_counts_as_full_and_a_real_one_is_measured() {
        assert_eq!(Usage { free_bytes: 0, total_bytes: 0 }.free_percent(), 0.0);
        let tmp = usage(Path::new("/tmp")).expect("/tmp can be measured");
        assert!(tmp.total_bytes > 0 && tmp.free_bytes <= tmp.total_bytes, "{tmp:?}");
        assert!(usage(Path::new("/no/such/folder")).is_err());
    }
}
