//! Conditions of a Docker host itself rather than of one of its containers, as its node reports them: the
//! engine's disk running out of space.

use std::time::SystemTime;

use hemostat_proto::timestamp;
use hemostat_proto::v1 as pb;

use crate::named::NoValue;

named_enum! {
    /// What is wrong with a host.
    pub enum HostCondition("host condition") {
        /// The engine's data root has less free space than the node's threshold.
        LowDisk => "low_disk",
    }
}

/// A node's report of a host condition beginning, lasting or ending.
#[derive(Clone, Debug, PartialEq)]
pub struct HostReport {
    /// What is wrong.
    pub condition: HostCondition,
    /// Whether it has ended.
    pub cleared: bool,
    /// The filesystem checked (untrusted text).
    pub path: String,
    /// Bytes free on it for unprivileged use.
    pub free_bytes: u64,
    /// Its size, bytes.
    pub total_bytes: u64,
    /// The node's threshold: below this percentage free the disk is low.
    pub min_free_percent: f64,
    /// When the node measured it.
    pub observed_at: Option<SystemTime>,
}

impl HostReport {
    /// The percentage of the filesystem free (0 for an empty size).
    pub fn free_percent(&self) -> f64 {
        if self.total_bytes == 0 { 0.0 } else { self.free_bytes as f64 * 100.0 / self.total_bytes as f64 }
    }

    /// One line for people, e.g. `disk low: /var/lib/docker has 3.2 % free (1.1 GiB of 34.0 GiB), under the
    /// node's 10 %`.
    pub fn summary(&self) -> String {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        format!(
            "disk {}: {:?} has {:.1} % free ({:.1} GiB of {:.1} GiB), {} the node's NODE_DISK_MIN_FREE_PERCENT {} %",
            if self.cleared { "has room again" } else { "low" },
            self.path,
            self.free_percent(),
            gib(self.free_bytes),
            gib(self.total_bytes),
            if self.cleared { "at or above" } else { "under" },
            self.min_free_percent
        )
    }
}

impl TryFrom<&pb::HostAlert> for HostReport {
    type Error = NoValue;

    /// The report; an error for an UNSPECIFIED condition (one this coordinator does not know).
    fn try_from(alert: &pb::HostAlert) -> Result<Self, Self::Error> {
        let condition = match alert.condition() {
            pb::HostCondition::LowDisk => HostCondition::LowDisk,
            other @ pb::HostCondition::Unspecified => {
                return Err(NoValue { what: "a host condition", wire: other.as_str_name() });
            }
        };
        Ok(HostReport {
            condition,
            cleared: alert.cleared,
            path: alert.path.clone(),
            free_bytes: alert.free_bytes,
            total_bytes: alert.total_bytes,
            min_free_percent: alert.min_free_percent,
            observed_at: alert.observed_at.as_ref().map(timestamp::from_proto),
        })
    }
}

impl From<&HostReport> for pb::HostAlert {
    fn from(report: &HostReport) -> Self {
        pb::HostAlert {
            condition: match report.condition {
                HostCondition::LowDisk => pb::HostCondition::LowDisk,
            } as i32,
            cleared: report.cleared,
            path: report.path.clone(),
            free_bytes: report.free_bytes,
            total_bytes: report.total_bytes,
            min_free_percent: report.min_free_percent,
            observed_at: report.observed_at.map(timestamp::to_proto),
        }
    }
}
