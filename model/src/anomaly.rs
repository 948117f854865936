//! Anomalies: what a node detects in a container, and how bad it is.

use hemostat_proto::v1 as pb;

use crate::named::NoValue;

named_enum! {
    /// The kinds of anomaly a node detects.
    pub enum AnomalyKind("anomaly type") {
        /// CPU above (a fraction of) the threshold.
        HighCpu => "high_cpu",
        /// Memory above (a fraction of) the threshold.
        HighMemory => "high_memory",
        /// The health check fails.
        Unhealthy => "unhealthy",
        /// Exited with a non-zero code, unasked.
        NonZeroExit => "non_zero_exit",
        /// Killed by the OOM killer.
        OomKilled => "oom_killed",
        /// Restarting too often.
        ExcessiveRestarts => "excessive_restarts",
    }
}

named_enum! {
    /// How bad an anomaly is; ordered from the mildest.
    pub enum Severity("severity") {
        /// Above 80 % of the threshold.
        Medium => "medium",
        /// Above the threshold.
        High => "high",
        /// Far above it.
        Critical => "critical",
    }
}

/// An anomaly with the figures that show it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Anomaly {
    /// What kind.
    pub kind: AnomalyKind,
    /// How bad.
    pub severity: Severity,
    /// The threshold crossed.
    pub threshold: f64,
    /// The value seen.
    pub actual: f64,
}

impl From<AnomalyKind> for pb::AnomalyType {
    fn from(kind: AnomalyKind) -> Self {
        match kind {
            AnomalyKind::HighCpu => pb::AnomalyType::HighCpu,
            AnomalyKind::HighMemory => pb::AnomalyType::HighMemory,
            AnomalyKind::Unhealthy => pb::AnomalyType::Unhealthy,
            AnomalyKind::NonZeroExit => pb::AnomalyType::NonZeroExit,
            AnomalyKind::OomKilled => pb::AnomalyType::OomKilled,
            AnomalyKind::ExcessiveRestarts => pb::AnomalyType::ExcessiveRestarts,
        }
    }
}

impl TryFrom<pb::AnomalyType> for AnomalyKind {
    type Error = NoValue;

    /// The kind; an error for UNSPECIFIED.
    fn try_from(kind: pb::AnomalyType) -> Result<Self, Self::Error> {
        Ok(match kind {
            pb::AnomalyType::Unspecified => {
                return Err(NoValue { what: "an anomaly type", wire: kind.as_str_name() });
            }
            pb::AnomalyType::HighCpu => AnomalyKind::HighCpu,
            pb::AnomalyType::HighMemory => AnomalyKind::HighMemory,
            pb::AnomalyType::Unhealthy => AnomalyKind::Unhealthy,
            pb::AnomalyType::NonZeroExit => AnomalyKind::NonZeroExit,
            pb::AnomalyType::OomKilled => AnomalyKind::OomKilled,
            pb::AnomalyType::ExcessiveRestarts => AnomalyKind::ExcessiveRestarts,
        })
    }
}

impl TryFrom<i32> for AnomalyKind {
    type Error = NoValue;

    /// The kind a raw wire value names; an error for UNSPECIFIED and values newer than this build.
    fn try_from(raw: i32) -> Result<Self, Self::Error> {
        let kind = pb::AnomalyType::try_from(raw)
            .map_err(|_| NoValue { what: "an anomaly type", wire: "an unknown anomaly type" })?;
        AnomalyKind::try_from(kind)
    }
}

impl From<Severity> for pb::Severity {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Medium => pb::Severity::Medium,
            Severity::High => pb::Severity::High,
            Severity::Critical => pb::Severity::Critical,
        }
    }
}

impl From<pb::Severity> for Severity {
    /// The severity; an unspecified one counts as high.
    fn from(severity: pb::Severity) -> Self {
        match severity {
            pb::Severity::Medium => Severity::Medium,
            pb::Severity::Critical => Severity::Critical,
            pb::Severity::High | pb::Severity::Unspecified => Severity::High,
        }
    }
}

impl From<&Anomaly> for pb::Anomaly {
    fn from(anomaly: &Anomaly) -> Self {
        pb::Anomaly {
            r#type: pb::AnomalyType::from(anomaly.kind) as i32,
            severity: pb::Severity::from(anomaly.severity) as i32,
            threshold: anomaly.threshold,
            actual: anomaly.actual,
        }
    }
}

impl TryFrom<&pb::Anomaly> for Anomaly {
    type Error = NoValue;

    /// The anomaly; an error when its type is unspecified or unknown.
    fn try_from(anomaly: &pb::Anomaly) -> Result<Self, Self::Error> {
        Ok(Anomaly {
            kind: AnomalyKind::try_from(anomaly.r#type)?,
            severity: Severity::from(anomaly.severity()),
            threshold: anomaly.threshold,
            actual: anomaly.actual,
        })
    }
}
