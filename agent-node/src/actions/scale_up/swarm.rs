//! Swarm services, as the node sees them: one more replica of the replicated service a task's container
//! belongs to (`scale_up`), and the check that it runs.
//!
//! Services can only be read and changed on a swarm manager, so a node on a worker (or on an engine that
//! is not in swarm mode) answers that the action does not apply, never that it failed. A global service
//! (one task on every node) and a job (tasks that run to completion) have no replica count to raise, so
//! they do not apply either. A replicated service is updated with its own current version and its spec
//! unchanged but for the replica count, exactly what `docker service scale` does; a concurrent change
//! makes the update fail instead of being overwritten. A service at its replica cap
//! ([`super::ReplicaCap`]: the task container's label, else the service's, else the node's) is refused.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{LocalNodeState, Service, ServiceSpec, ServiceSpecModeReplicated, SwarmInfo, Task, TaskState};
use bollard::query_parameters::{ListTasksOptions, UpdateServiceOptions};

use super::ReplicaCap;

/// The label Docker puts on every task container: the id of the service the task belongs to.
pub const SERVICE_ID_LABEL: &str = "com.docker.swarm.service.id";

/// How often the service's tasks are looked at while waiting for the new replica.
const POLL: Duration = Duration::from_millis(250);

/// One more replica of a service, seen running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaledUp {
    /// The service's name.
    pub service: String,
    /// Its replica count before.
    pub from: u64,
    /// Its replica count now.
    pub to: u64,
    /// How long it took for `to` tasks to run.
    pub waited: Duration,
}

/// Why a service did not get one more running replica.
#[derive(Debug, thiserror::Error)]
pub enum ScaleUpError {
    /// This engine cannot change services: it is not in swarm mode, or it is a worker.
    #[error("scale_up of a Swarm service needs the node on a manager (this engine is {state})")]
    NotManager {
        /// What the engine is instead, in words.
        state: String,
    },
    /// A global service runs one task on every eligible node; it has no replica count.
    #[error("service {service} is global (one task on every node): it has no replica count to raise")]
    Global {
        /// The service's name.
        service: String,
    },
    /// A job's tasks run to completion; adding one is not a remedy for a running container.
    #[error("service {service} is a {mode} job: its tasks run to completion, there is no replica to add")]
    Job {
        /// The service's name.
        service: String,
        /// `replicated` or `global`.
        mode: &'static str,
    },
    /// The service's version index does not fit the update call (an `i32` in the Docker client).
    #[error("service {service} is at version {index}, beyond what the update call can carry")]
    Version {
        /// The service's name.
        service: String,
        /// Its version index.
        index: u64,
    },
    /// The service is at its replica cap, or its cap label cannot be read.
    #[error("{0}")]
    Capped(String),
    /// A Docker call failed.
    #[error("cannot {step} service {service}: {source}")]
    Docker {
        /// What the node was doing.
        step: &'static str,
        /// The service's name (or id, before it was read).
        service: String,
        /// Docker's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The update was accepted, but the tasks did not all run within the verification window.
    #[error("scaled {service} from {from} to {to} replicas, but after {waited}s: {seen}")]
    NotRunning {
        /// The service's name.
        service: String,
        /// Its replica count before.
        from: u64,
        /// The replica count asked for.
        to: u64,
        /// Seconds waited.
        waited: u64,
        /// What the node saw of the service's tasks.
        seen: String,
    },
}

impl ScaleUpError {
    /// Whether `scale_up` does not apply to this service or engine (as opposed to having failed).
    pub fn is_not_applicable(&self) -> bool {
        matches!(self, ScaleUpError::NotManager { .. } | ScaleUpError::Global { .. } | ScaleUpError::Job { .. })
    }

    /// Whether the node refuses to scale this service (its replica cap).
    pub fn is_refused(&self) -> bool {
        matches!(self, ScaleUpError::Capped(_))
    }

    /// A Docker error, read as "not a manager" when that is what the engine says (HTTP 503).
    fn docker(step: &'static str, service: &str, source: bollard::errors::Error) -> Self {
        if let bollard::errors::Error::DockerResponseServerError { status_code: 503, message } = &source
            && message.contains("not a swarm manager")
        {
            return ScaleUpError::NotManager { state: "not a swarm manager".into() };
        }
        ScaleUpError::Docker { step, service: service.to_owned(), source }
    }
}

/// Checks that the engine, from its `/info` swarm section, is an active swarm manager.
pub fn require_manager(swarm: Option<&SwarmInfo>) -> Result<(), ScaleUpError> {
    let state = swarm.and_then(|s| s.local_node_state).unwrap_or(LocalNodeState::INACTIVE);
    let manager = swarm.and_then(|s| s.control_available).unwrap_or(false);
    let state = match state {
        LocalNodeState::ACTIVE if manager => return Ok(()),
        LocalNodeState::ACTIVE => "a swarm worker".to_owned(),
        LocalNodeState::INACTIVE | LocalNodeState::EMPTY => "not in swarm mode".to_owned(),
        LocalNodeState::ERROR => format!(
            "in swarm error state: {}",
            swarm.and_then(|s| s.error.clone()).filter(|e| !e.is_empty()).unwrap_or_else(|| "no detail".into())
        ),
        other => format!("a swarm node in state {other}"),
    };
    Err(ScaleUpError::NotManager { state })
}

/// The update that gives a replicated service one more replica: its spec, unchanged but for the replica
/// count, the version it is an update of, and the counts before and after.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaUpdate {
    /// The new spec.
    pub spec: ServiceSpec,
    /// The service's current version index, which the update must name.
    pub version: i32,
    /// The replica count before.
    pub from: u64,
    /// The replica count after.
    pub to: u64,
}

/// The update for one more replica of `service`, or why it does not apply.
pub fn one_more_replica(service: &Service) -> Result<ReplicaUpdate, ScaleUpError> {
    let name = service_name(service);
    let mut spec = service.spec.clone().unwrap_or_default();
    let mode = spec.mode.get_or_insert_with(Default::default);
    if mode.global.is_some() {
        return Err(ScaleUpError::Global { service: name });
    }
    if mode.replicated_job.is_some() {
        return Err(ScaleUpError::Job { service: name, mode: "replicated" });
    }
    if mode.global_job.is_some() {
        return Err(ScaleUpError::Job { service: name, mode: "global" });
    }
    // A spec without a mode is replicated with one replica (Docker's default), as is one without a count.
    let replicated = mode.replicated.get_or_insert(ServiceSpecModeReplicated { replicas: Some(1) });
    let from = replicated.replicas.map_or(1, |r| r.max(0) as u64);
    let to = from + 1;
    replicated.replicas = Some(to as i64);
    let index = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
    let version = i32::try_from(index).map_err(|_| ScaleUpError::Version { service: name.clone(), index })?;
    Ok(ReplicaUpdate { spec, version, from, to })
}

/// Gives the service `service_id` one more replica, unless that passes its cap (from the task container's
/// `labels`, the service's labels, else `default_cap`), and waits up to `window` for that many of its
/// tasks to run.
pub async fn scale_up(
    docker: &Docker,
    service_id: &str,
    labels: &HashMap<String, String>,
    default_cap: u64,
    window: Duration,
) -> Result<ScaledUp, ScaleUpError> {
    let info = docker.info().await.map_err(|e| ScaleUpError::docker("read the swarm state for", service_id, e))?;
    require_manager(info.swarm.as_ref())?;
    let service =
        docker.inspect_service(service_id, None).await.map_err(|e| ScaleUpError::docker("inspect", service_id, e))?;
    let name = service_name(&service);
    let update = one_more_replica(&service)?;
    let service_labels = service.spec.as_ref().and_then(|s| s.labels.as_ref());
    let cap = ReplicaCap::from_labels(labels, service_labels, default_cap).map_err(ScaleUpError::Capped)?;
    if let Some(why) = cap.refusal(&format!("Swarm service {name}"), update.from) {
        return Err(ScaleUpError::Capped(why));
    }
    let options = UpdateServiceOptions { version: update.version, ..Default::default() };
    let response = docker
        .update_service(service_id, update.spec, options, None)
        .await
        .map_err(|e| ScaleUpError::docker("update", &name, e))?;
    for warning in response.warnings.unwrap_or_default() {
        tracing::info!(service = %name, %warning, "Docker warned about the service update");
    }
    let started = Instant::now();
    loop {
        let tasks =
            running_tasks(docker, service_id).await.map_err(|e| ScaleUpError::docker("list tasks of", &name, e))?;
        let running = tasks.iter().filter(|t| task_state(t) == Some(TaskState::RUNNING)).count() as u64;
        if running >= update.to {
            return Ok(ScaledUp { service: name, from: update.from, to: update.to, waited: started.elapsed() });
        }
        if started.elapsed() >= window {
            return Err(ScaleUpError::NotRunning {
                service: name,
                from: update.from,
                to: update.to,
                waited: started.elapsed().as_secs(),
                seen: describe(&tasks, update.to),
            });
        }
        tokio::time::sleep(POLL.min(window.saturating_sub(started.elapsed())).max(Duration::from_millis(10))).await;
    }
}

/// The tasks of the service that the orchestrator wants running.
async fn running_tasks(docker: &Docker, service_id: &str) -> Result<Vec<Task>, bollard::errors::Error> {
    let filters = HashMap::from([
        ("service".to_owned(), vec![service_id.to_owned()]),
        ("desired-state".to_owned(), vec!["running".to_owned()]),
    ]);
    docker.list_tasks(Some(ListTasksOptions { filters: Some(filters) })).await
}

fn task_state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

/// What the tasks are doing, in words: "1 of 2 tasks running; 1 pending (no suitable node ...)".
pub fn describe(tasks: &[Task], wanted: u64) -> String {
    let mut states: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
    let mut running = 0;
    for task in tasks {
        let state = task_state(task);
        if state == Some(TaskState::RUNNING) {
            running += 1;
            continue;
        }
        let entry = states.entry(state.map_or_else(|| "unknown".to_owned(), |s| s.to_string())).or_default();
        entry.0 += 1;
        let status = task.status.as_ref();
        let why = status.and_then(|s| s.err.clone()).filter(|e| !e.is_empty());
        let why = why.or_else(|| status.and_then(|s| s.message.clone()).filter(|m| !m.is_empty()));
        if entry.1.is_none() {
            entry.1 = why;
        }
    }
    let mut seen = format!("{running} of {wanted} tasks running");
    for (state, (count, why)) in states {
        seen.push_str(&format!("; {count} {state}"));
        if let Some(why) = why {
            seen.push_str(&format!(" ({why})"));
        }
    }
    seen
}

fn service_name(service: &Service) -> String {
    service
        .spec
        .as_ref()
        .and_then(|s| s.name.clone())
        .or_else(|| service.id.clone())
        .unwrap_or_else(|| "(unnamed)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ObjectVersion, ServiceSpecMode, TaskStatus};

    /// A service as Docker 20.10 returns it from `docker service create` (its spec verbatim).
    const SPEC: &str = r#"{"Name":"api","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"hemostat-test-busybox:1","Labels":{"hemostat.test":"probe"},"Args":["sh","-c","sleep 86400"],"Init":false,"StopGracePeriod":10000000000,"DNSConfig":{},"Isolation":"default"},"Resources":{"Limits":{},"Reservations":{}},"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0},"Placement":{},"ForceUpdate":0,"Runtime":"container"},"Mode":{"Replicated":{"Replicas":1}},"UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},"RollbackConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},"EndpointSpec":{"Mode":"vip"}}"#;

    fn service(spec: serde_json::Value) -> Service {
        Service {
            id: Some("svc1".into()),
            version: Some(ObjectVersion { index: Some(29) }),
            spec: Some(serde_json::from_value(spec).unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn one_more_replica_changes_the_count_and_nothing_else() {
        let original: serde_json::Value = serde_json::from_str(SPEC).unwrap();
        let update = one_more_replica(&service(original.clone())).unwrap();
        assert_eq!((update.from, update.to, update.version), (1, 2, 29));
        let mut expected = original;
        expected["Mode"]["Replicated"]["Replicas"] = 2.into();
        assert_eq!(numbers_as_floats(serde_json::to_value(&update.spec).unwrap()), numbers_as_floats(expected));
    }

    /// The value with every number a float: Docker writes `0` where the spec's type says float (`0.0`).
    fn numbers_as_floats(value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Number(n) => n.as_f64().map_or(Value::Number(n), |f| f.into()),
            Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
            Value::Object(fields) => {
                Value::Object(fields.into_iter().map(|(k, v)| (k, numbers_as_floats(v))).collect())
            }
            other => other,
        }
    }

    #[test]
    fn a_global_service_or_a_job_does_not_apply() {
        let mut spec: serde_json::Value = serde_json::from_str(SPEC).unwrap();
        for (mode, expected) in [
            (serde_json::json!({"Global": {}}), "is global"),
            (serde_json::json!({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}), "replicated job"),
            (serde_json::json!({"GlobalJob": {}}), "global job"),
        ] {
            spec["Mode"] = mode;
            let error = one_more_replica(&service(spec.clone())).unwrap_err();
            assert!(error.is_not_applicable(), "{error}");
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn a_spec_without_a_mode_is_one_replica() {
        let spec = ServiceSpec { name: Some("api".into()), ..Default::default() };
        let update = one_more_replica(&Service { spec: Some(spec), ..Default::default() }).unwrap();
        assert_eq!((update.from, update.to), (1, 2));
        assert_eq!(
            update.spec.mode,
            Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(2) }),
                ..Default::default()
            })
        );
    }

    #[test]
    fn only_an_active_manager_changes_services() {
        let swarm = |state, control| SwarmInfo {
            local_node_state: Some(state),
            control_available: Some(control),
            ..Default::default()
        };
        assert!(require_manager(Some(&swarm(LocalNodeState::ACTIVE, true))).is_ok());
        for (info, says) in [
            (Some(swarm(LocalNodeState::ACTIVE, false)), "a swarm worker"),
            (Some(swarm(LocalNodeState::INACTIVE, false)), "not in swarm mode"),
            (None, "not in swarm mode"),
            (Some(swarm(LocalNodeState::LOCKED, true)), "locked"),
        ] {
            let error = require_manager(info.as_ref()).unwrap_err();
            assert!(error.is_not_applicable());
            assert!(error.to_string().contains("scale_up of a Swarm service needs the node on a manager"), "{error}");
            assert!(error.to_string().contains(says), "{error}");
        }
        let refused = bollard::errors::Error::DockerResponseServerError {
            status_code: 503,
            message: "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state."
                .into(),
        };
        assert!(ScaleUpError::docker("inspect", "svc1", refused).is_not_applicable());
        let other = bollard::errors::Error::DockerResponseServerError { status_code: 500, message: "boom".into() };
        assert!(!ScaleUpError::docker("inspect", "svc1", other).is_not_applicable());
    }

    #[test]
    fn what_the_tasks_do_is_told_with_the_reason_of_those_not_running() {
        let task = |state, err: &str| Task {
            status: Some(TaskStatus { state: Some(state), err: Some(err.into()), ..Default::default() }),
            ..Default::default()
        };
        let tasks = [
            task(TaskState::RUNNING, ""),
            task(TaskState::PENDING, "no suitable node (insufficient resources on 1 node)"),
        ];
        assert_eq!(
            describe(&tasks, 2),
            "1 of 2 tasks running; 1 pending (no suitable node (insufficient resources on 1 node))"
        );
    }
}
