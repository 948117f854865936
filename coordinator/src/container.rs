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
