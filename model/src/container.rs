//! What is known of a container: the facts a node reports about it, and how its process ended.

use std::collections::BTreeMap;
use std::time::SystemTime;

use hemostat_proto::timestamp;
use hemostat_proto::v1 as pb;

/// The label with which a container opts out of HemoStat (`hemostat.enable=false`).
pub const OPT_OUT_LABEL: &str = "hemostat.enable";

/// The label with which a Compose or Swarm service's container opts in to being scaled up when it is busy,
/// and caps its replicas (`hemostat.scale_up.max=<replicas>`); the node never scales past it.
pub const SCALE_UP_MAX_LABEL: &str = "hemostat.scale_up.max";

named_enum! {
    /// A container's lifecycle state.
    pub enum Status("container status") {
        /// Created, never started.
        Created => "created",
        /// Running.
        Running => "running",
        /// Paused.
        Paused => "paused",
        /// Being restarted by Docker's restart policy.
        Restarting => "restarting",
        /// Exited.
        Exited => "exited",
        /// Dead (failed to stop or remove).
        Dead => "dead",
        /// Being removed.
        Removing => "removing",
        /// The node did not say.
        Unknown => "unknown",
    }
}

named_enum! {
    /// A container's health check state.
    pub enum Health("health status") {
        /// No health check.
        None => "none",
        /// Within the start period.
        Starting => "starting",
        /// Passing.
        Healthy => "healthy",
        /// Failing.
        Unhealthy => "unhealthy",
        /// The node did not say.
        Unknown => "unknown",
    }
}

impl From<pb::ContainerStatus> for Status {
    fn from(status: pb::ContainerStatus) -> Self {
        match status {
            pb::ContainerStatus::Created => Status::Created,
            pb::ContainerStatus::Running => Status::Running,
            pb::ContainerStatus::Paused => Status::Paused,
            pb::ContainerStatus::Restarting => Status::Restarting,
            pb::ContainerStatus::Exited => Status::Exited,
            pb::ContainerStatus::Dead => Status::Dead,
            pb::ContainerStatus::Removing => Status::Removing,
            pb::ContainerStatus::Unspecified => Status::Unknown,
        }
    }
}

impl From<Status> for pb::ContainerStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Created => pb::ContainerStatus::Created,
            Status::Running => pb::ContainerStatus::Running,
            Status::Paused => pb::ContainerStatus::Paused,
            Status::Restarting => pb::ContainerStatus::Restarting,
            Status::Exited => pb::ContainerStatus::Exited,
            Status::Dead => pb::ContainerStatus::Dead,
            Status::Removing => pb::ContainerStatus::Removing,
            Status::Unknown => pb::ContainerStatus::Unspecified,
        }
    }
}

impl From<pb::HealthStatus> for Health {
    fn from(health: pb::HealthStatus) -> Self {
        match health {
            pb::HealthStatus::None => Health::None,
            pb::HealthStatus::Starting => Health::Starting,
            pb::HealthStatus::Healthy => Health::Healthy,
            pb::HealthStatus::Unhealthy => Health::Unhealthy,
            pb::HealthStatus::Unspecified => Health::Unknown,
        }
    }
}

impl From<Health> for pb::HealthStatus {
    fn from(health: Health) -> Self {
        match health {
            Health::None => pb::HealthStatus::None,
            Health::Starting => pb::HealthStatus::Starting,
            Health::Healthy => pb::HealthStatus::Healthy,
            Health::Unhealthy => pb::HealthStatus::Unhealthy,
            Health::Unknown => pb::HealthStatus::Unspecified,
        }
    }
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
    /// Whether the container opted out with `hemostat.enable=false`.
    pub fn opted_out(&self) -> bool {
        self.labels.get(OPT_OUT_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("false"))
    }

    /// Whether Docker's own restart policy brings it back after a crash.
    pub fn docker_restarts_it(&self) -> bool {
        matches!(self.restart_policy.as_str(), "always" | "unless-stopped" | "on-failure")
    }

    /// The replica cap of a container that opted in to `scale_up`: one of a Compose service (or a Swarm task)
    /// whose `hemostat.scale_up.max` label is a positive whole number. `None` for any other container, and
    /// for a label that is not a number (the node refuses those with the reason).
    pub fn scale_up_cap(&self) -> Option<u64> {
        let in_service = self.labels.contains_key("com.docker.compose.service")
            || self.labels.contains_key("com.docker.swarm.service.id");
        let cap = self.labels.get(SCALE_UP_MAX_LABEL)?.trim().parse::<u64>().ok().filter(|&max| max > 0)?;
        in_service.then_some(cap)
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

impl From<&pb::ContainerState> for ContainerFacts {
    fn from(state: &pb::ContainerState) -> Self {
        ContainerFacts {
            id: state.id.clone(),
            name: state.name.clone(),
            image: state.image.clone(),
            status: state.status().into(),
            health: state.health().into(),
            exit_code: state.exit_code,
            restart_policy: state.restart_policy.clone(),
            labels: state.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            started_at: state.started_at.as_ref().map(timestamp::from_proto),
            memory_limit: state.memory_limit_bytes,
            cpu_limit: state.cpu_limit,
        }
    }
}

impl From<&ContainerFacts> for pb::ContainerState {
    fn from(facts: &ContainerFacts) -> Self {
        pb::ContainerState {
            id: facts.id.clone(),
            name: facts.name.clone(),
            image: facts.image.clone(),
            status: pb::ContainerStatus::from(facts.status) as i32,
            health: pb::HealthStatus::from(facts.health) as i32,
            exit_code: facts.exit_code,
            restart_policy: facts.restart_policy.clone(),
            labels: facts.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            started_at: facts.started_at.map(timestamp::to_proto),
            memory_limit_bytes: facts.memory_limit,
            cpu_limit: facts.cpu_limit,
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

impl From<&pb::ExitDetails> for ExitReport {
    fn from(exit: &pb::ExitDetails) -> Self {
        ExitReport { exit_code: exit.exit_code, oom_killed: exit.oom_killed, stop_requested: exit.stop_requested }
    }
}
