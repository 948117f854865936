//! What the coordinator knows of a container: the facts a node reported, converted once from the wire.

use std::collections::BTreeMap;
use std::time::SystemTime;

use hemostat_proto::v1 as pb;

/// The label with which a container opts out of HemoStat (`hemostat.enable=false`).
pub const OPT_OUT_LABEL: &str = "hemostat.enable";

/// A container's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted by Docker's restart policy.
    Restarting,
    /// Exited.
    Exited,
    /// Dead (failed to stop or remove).
    Dead,
    /// Being removed.
    Removing,
    /// The node did not say.
    Unknown,
}

/// A container's health check state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No health check.
    None,
    /// Within the start period.
    Starting,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
    /// The node did not say.
    Unknown,
}

/// The facts a node reported about one container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerFacts {
    /// Docker's container id.
    pub id: String,
    /// The container's name (untrusted text).
    pub name: String,
    /// Its image.
    pub image: String,
    /// Lifecycle state.
    pub status: Status,
    /// Health check state.
    pub health: Health,
    /// Exit code of the last run.
    pub exit_code: i64,
    /// Docker's restart policy name.
    pub restart_policy: String,
    /// Labels (untrusted text).
    pub labels: BTreeMap<String, String>,
    /// When it last started.
    pub started_at: Option<SystemTime>,
    /// Its memory limit, bytes; 0 for none.
    pub memory_limit: u64,
    /// Its CPU limit, in CPUs; 0 for none.
    pub cpu_limit: f64,
}

impl ContainerFacts {
    /// From the wire.
    pub fn from_proto(state: &pb::ContainerState) -> Self {
        let status = match state.status() {
            pb::ContainerStatus::Created => Status::Created,
            pb::ContainerStatus::Running => Status::Running,
            pb::ContainerStatus::Paused => Status::Paused,
            pb::ContainerStatus::Restarting => Status::Restarting,
            pb::ContainerStatus::Exited => Status::Exited,
            pb::ContainerStatus::Dead => Status::Dead,
            pb::ContainerStatus::Removing => Status::Removing,
            pb::ContainerStatus::Unspecified => Status::Unknown,
        };
        let health = match state.health() {
            pb::HealthStatus::None => Health::None,
            pb::HealthStatus::Starting => Health::Starting,
            pb::HealthStatus::Healthy => Health::Healthy,
            pb::HealthStatus::Unhealthy => Health::Unhealthy,
            pb::HealthStatus::Unspecified => Health::Unknown,
        };
        ContainerFacts {
            id: state.id.clone(),
            name: state.name.clone(),
            image: state.image.clone(),
            status,
            health,
            exit_code: state.exit_code,
            restart_policy: state.restart_policy.clone(),
            labels: state.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            started_at: state.started_at.as_ref().map(hemostat_proto::timestamp::from_proto),
            memory_limit: state.memory_limit_bytes,
            cpu_limit: state.cpu_limit,
        }
    }

    /// To the wire.
    pub fn to_proto(&self) -> pb::ContainerState {
        let status = match self.status {
            Status::Created => pb::ContainerStatus::Created,
            Status::Running => pb::ContainerStatus::Running,
            Status::Paused => pb::ContainerStatus::Paused,
            Status::Restarting => pb::ContainerStatus::Restarting,
            Status::Exited => pb::ContainerStatus::Exited,
            Status::Dead => pb::ContainerStatus::Dead,
            Status::Removing => pb::ContainerStatus::Removing,
            Status::Unknown => pb::ContainerStatus::Unspecified,
        };
        let health = match self.health {
            Health::None => pb::HealthStatus::None,
            Health::Starting => pb::HealthStatus::Starting,
            Health::Healthy => pb::HealthStatus::Healthy,
            Health::Unhealthy => pb::HealthStatus::Unhealthy,
            Health::Unknown => pb::HealthStatus::Unspecified,
        };
        pb::ContainerState {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            status: status as i32,
            health: health as i32,
            exit_code: self.exit_code,
            restart_policy: self.restart_policy.clone(),
            labels: self.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            started_at: self.started_at.map(hemostat_proto::timestamp::to_proto),
            memory_limit_bytes: self.memory_limit,
            cpu_limit: self.cpu_limit,
        }
    }

    /// Whether the container opted out with `hemostat.enable=false`.
    pub fn opted_out(&self) -> bool {
        self.labels.get(OPT_OUT_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("false"))
    }

    /// Whether Docker's own restart policy brings it back after a crash.
    pub fn docker_restarts_it(&self) -> bool {
        matches!(self.restart_policy.as_str(), "always" | "unless-stopped" | "on-failure")
    }

    /// The identity that remediation budgets belong to on `node`: the Compose project, service and replica
    /// number when the container has Compose labels, else its name; so re-creating a container does not
    /// reset its cooldown.
    pub fn budget_key(&self, node: &str) -> String {
        let label = |k: &str| self.labels.get(k).map(String::as_str);
        match (
            label("com.docker.compose.project"),
            label("com.docker.compose.service"),
            label("com.docker.compose.container-number"),
        ) {
            (Some(project), Some(service), Some(number)) => format!("{node}/compose/{project}/{service}/{number}"),
            _ => format!("{node}/name/{}", self.name),
        }
    }
}

/// How a container's process ended, as the node saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitReport {
    /// The exit code.
    pub exit_code: i64,
    /// Killed by the kernel's OOM killer.
    pub oom_killed: bool,
    /// Someone asked for the stop (`docker stop`, `docker kill`, a restart) before it died.
    pub stop_requested: bool,
}

impl ExitReport {
    /// From the wire.
    pub fn from_proto(exit: &pb::ExitDetails) -> Self {
        ExitReport { exit_code: exit.exit_code, oom_killed: exit.oom_killed, stop_requested: exit.stop_requested }
    }
}

/// The kinds of anomaly a node detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// CPU above (a fraction of) the threshold.
    HighCpu,
    /// Memory above (a fraction of) the threshold.
    HighMemory,
    /// The health check fails.
    Unhealthy,
    /// Exited with a non-zero code, unasked.
    NonZeroExit,
    /// Killed by the OOM killer.
    OomKilled,
    /// Restarting too often.
    ExcessiveRestarts,
}

impl AnomalyKind {
    /// From the wire; `None` for UNSPECIFIED.
    pub fn from_proto(kind: pb::AnomalyType) -> Option<Self> {
        Some(match kind {
            pb::AnomalyType::Unspecified => return None,
            pb::AnomalyType::HighCpu => AnomalyKind::HighCpu,
            pb::AnomalyType::HighMemory => AnomalyKind::HighMemory,
            pb::AnomalyType::Unhealthy => AnomalyKind::Unhealthy,
            pb::AnomalyType::NonZeroExit => AnomalyKind::NonZeroExit,
            pb::AnomalyType::OomKilled => AnomalyKind::OomKilled,
            pb::AnomalyType::ExcessiveRestarts => AnomalyKind::ExcessiveRestarts,
        })
    }

    /// To the wire.
    pub fn to_proto(self) -> pb::AnomalyType {
        match self {
            AnomalyKind::HighCpu => pb::AnomalyType::HighCpu,
            AnomalyKind::HighMemory => pb::AnomalyType::HighMemory,
            AnomalyKind::Unhealthy => pb::AnomalyType::Unhealthy,
            AnomalyKind::NonZeroExit => pb::AnomalyType::NonZeroExit,
            AnomalyKind::OomKilled => pb::AnomalyType::OomKilled,
            AnomalyKind::ExcessiveRestarts => pb::AnomalyType::ExcessiveRestarts,
        }
    }

    /// The name used in events and messages, e.g. `high_cpu`.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::HighCpu => "high_cpu",
            AnomalyKind::HighMemory => "high_memory",
            AnomalyKind::Unhealthy => "unhealthy",
            AnomalyKind::NonZeroExit => "non_zero_exit",
            AnomalyKind::OomKilled => "oom_killed",
            AnomalyKind::ExcessiveRestarts => "excessive_restarts",
        }
    }
}

/// How bad an anomaly is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Above 80 % of the threshold.
    Medium,
    /// Above the threshold.
    High,
    /// Far above it.
    Critical,
}

/// An anomaly, as the node reported it.
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

impl Anomaly {
    /// From the wire; `None` when the type is unspecified or unknown.
    pub fn from_proto(anomaly: &pb::Anomaly) -> Option<Self> {
        let severity = match anomaly.severity() {
            pb::Severity::Medium => Severity::Medium,
            pb::Severity::Critical => Severity::Critical,
            pb::Severity::High | pb::Severity::Unspecified => Severity::High,
        };
        Some(Anomaly {
            kind: AnomalyKind::from_proto(pb::AnomalyType::try_from(anomaly.r#type).ok()?)?,
            severity,
            threshold: anomaly.threshold,
            actual: anomaly.actual,
        })
    }

    /// To the wire.
    pub fn to_proto(&self) -> pb::Anomaly {
        let severity = match self.severity {
            Severity::Medium => pb::Severity::Medium,
            Severity::High => pb::Severity::High,
            Severity::Critical => pb::Severity::Critical,
        };
        pb::Anomaly {
            r#type: self.kind.to_proto() as i32,
            severity: severity as i32,
            threshold: self.threshold,
            actual: self.actual,
        }
    }
}

/// One metrics sample of a container, as the node computed it (docker CLI formulas).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    /// When Docker read it.
    pub sampled_at: Option<SystemTime>,
    /// CPU %, 100 = one core; `None` on a container's first sample.
    pub cpu_percent: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory limit, bytes.
    pub memory_limit: u64,
    /// Memory in use, % of the limit.
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
    /// Restarts within the node's window.
    pub restarts_in_window: u32,
}

impl Metrics {
    /// From the wire.
    pub fn from_proto(m: &pb::ContainerMetrics) -> Self {
        Metrics {
            sampled_at: m.sampled_at.as_ref().map(hemostat_proto::timestamp::from_proto),
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

    /// To the wire, for the container `facts`.
    pub fn to_proto(&self, facts: &ContainerFacts) -> pb::ContainerMetrics {
        let state = facts.to_proto();
        pb::ContainerMetrics {
            container_id: facts.id.clone(),
            sampled_at: self.sampled_at.map(hemostat_proto::timestamp::to_proto),
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
            status: state.status,
            health: state.health,
            exit_code: state.exit_code,
        }
    }
}

/// A node's health alert about one container.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertReport {
    /// The container.
    pub container: ContainerFacts,
    /// Every anomaly it has now.
    pub anomalies: Vec<Anomaly>,
    /// The latest sample, if the alert came from one.
    pub metrics: Option<Metrics>,
    /// For exit anomalies: how it exited.
    pub exit: Option<ExitReport>,
    /// When the node observed it.
    pub observed_at: Option<SystemTime>,
    /// Whether it only re-asserts standing anomalies.
    pub reasserted: bool,
    /// The node's recent samples, oldest first.
    pub recent: Vec<Metrics>,
    /// The last log lines, gathered at the failure (untrusted, secrets masked by the node).
    pub log_tail: Vec<String>,
    /// The last health check outputs (untrusted).
    pub health_outputs: Vec<String>,
    /// When the node, cut off, restarted the container on its own: its command id.
    pub local_restart: Option<String>,
}

impl AlertReport {
    /// From the wire; `None` without a container.
    pub fn from_proto(alert: &pb::HealthAlert) -> Option<Self> {
        Some(AlertReport {
            container: ContainerFacts::from_proto(alert.container.as_ref()?),
            anomalies: alert.anomalies.iter().filter_map(Anomaly::from_proto).collect(),
            metrics: alert.metrics.as_ref().map(Metrics::from_proto),
            exit: alert.exit.as_ref().map(ExitReport::from_proto),
            observed_at: alert.observed_at.as_ref().map(hemostat_proto::timestamp::from_proto),
            reasserted: alert.reasserted,
            recent: alert.recent.iter().map(Metrics::from_proto).collect(),
            log_tail: alert.log_tail.clone(),
            health_outputs: alert.health_outputs.clone(),
            local_restart: (alert.local_action() == pb::Action::Restart && !alert.local_command_id.is_empty())
                .then(|| alert.local_command_id.clone()),
        })
    }

    /// The alert's one-line summary for people, e.g. `high_cpu (critical, 99.2 > 85)`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .anomalies
            .iter()
            .map(|a| match a.kind {
                AnomalyKind::NonZeroExit => format!("exited unexpectedly with code {}", a.actual),
                AnomalyKind::OomKilled => format!("killed by the OOM killer (exit code {})", a.actual),
                AnomalyKind::Unhealthy => "health check failing".to_owned(),
                AnomalyKind::ExcessiveRestarts => {
                    format!("{} restarts in the window (limit {})", a.actual, a.threshold)
                }
                kind => format!("{} {:?}: {:.1} % (threshold {} %)", kind.name(), a.severity, a.actual, a.threshold),
            })
            .collect();
        parts.join("; ")
    }
}
