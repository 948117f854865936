//! Liveness probes by label, for containers without a Docker HEALTHCHECK: `hemostat.probe=http://:8080/healthz`
//! or `tcp://:5432` ([`spec`]), run by the node against the container's own address ([`address`]), one probe
//! at a time ([`check`]).
//!
//! The [`Prober`] keeps one task per probed running container: started when the watcher sees it start (or
//! finds it running in a snapshot), stopped when it dies or is removed. `retries` failures in a row make the
//! container `unhealthy` and a success after that makes it healthy again: the task sends the verdict to the
//! monitor as [`Observation::Probed`], which treats it exactly as Docker's `health_status` (so
//! `hemostat.grace`, `hemostat.unhealthy_for`, the coordinator's `unhealthy` rule and the restart apply
//! unchanged), with the last probe outputs as the health output of the evidence. A container with its own
//! HEALTHCHECK keeps Docker's: its probe label is ignored (said once in the log).

pub mod address;
pub mod check;
pub mod spec;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use hemostat_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub use spec::{BadProbeLabel, ProbeSpec, Target, bad_labels};

use crate::monitor::{Evidence, Observation};
use crate::recent::RecentSet;

/// Probe outputs kept for the evidence (Docker keeps its last five health check results).
pub const OUTPUTS_KEPT: usize = 5;
/// Containers whose probe remarks (no address, a HEALTHCHECK of its own) the prober remembers having logged.
const REMARKED: usize = 16_384;

/// The probes' latest verdict for each probed container's current start, shared with the executor so that a
/// restart's verification reads a probed container's health as it reads Docker's: `starting` from when its
/// probe task begins until the first verdict, then `healthy` or `unhealthy`.
#[derive(Clone, Debug, Default)]
pub struct ProbeHealth(Arc<Mutex<HashMap<String, StartVerdict>>>);

/// A container's start (its `StartedAt`) and the probe's verdict on it.
type StartVerdict = (Option<SystemTime>, pb::HealthStatus);

impl ProbeHealth {
    /// The probe's verdict on the container `id`'s start at `started_at`; `None` when it is not probed (or
    /// not for that start).
    pub fn of(&self, id: &str, started_at: Option<SystemTime>) -> Option<pb::HealthStatus> {
        let verdicts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        verdicts.get(id).filter(|(start, _)| *start == started_at).map(|(_, health)| *health)
    }

    fn set(&self, id: &str, started_at: Option<SystemTime>, health: pb::HealthStatus) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), (started_at, health));
    }

    fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// The probe tasks of the node's probed running containers.
pub struct Prober {
    context: Arc<ProbeContext>,
    tasks: Mutex<HashMap<String, RunningProbe>>,
}

/// What every probe task needs.
struct ProbeContext {
    docker: Docker,
    observations: mpsc::Sender<Observation>,
    log_lines: usize,
    health: ProbeHealth,
    /// (container id, remark) pairs already logged, so each is said once per container.
    remarked: Mutex<RecentSet<(String, &'static str)>>,
}

impl ProbeContext {
    /// Whether `remark` about container `id` is logged for the first time now.
    fn first_time(&self, id: &str, remark: &'static str) -> bool {
        self.remarked.lock().unwrap_or_else(|e| e.into_inner()).insert((id.to_owned(), remark))
    }
}

/// One container's probe task.
struct RunningProbe {
    /// The start of the container it probes (a new start gets a new task).
    started_at: Option<SystemTime>,
    task: AbortHandle,
}

impl Prober {
    /// A prober whose tasks inspect through `docker`, send their verdicts to the monitor on `observations`
    /// and keep them in `health`, and gather `log_lines` lines of the container's log when it turns unhealthy.
    pub fn new(docker: Docker, observations: mpsc::Sender<Observation>, log_lines: usize, health: ProbeHealth) -> Self {
        let remarked = Mutex::new(RecentSet::new(REMARKED));
        let context = ProbeContext { docker, observations, log_lines, health, remarked };
        Prober { context: Arc::new(context), tasks: Mutex::new(HashMap::new()) }
    }

    /// Follows one container's state: a running container with a valid `hemostat.probe` has a task for its
    /// current start; any other has none.
    pub fn track(&self, container: &pb::ContainerState) {
        let spec = (container.status() == pb::ContainerStatus::Running)
            .then(|| ProbeSpec::from_labels(&container.labels))
            .flatten();
        let started_at = container.started_at.as_ref().map(hemostat_proto::timestamp::from_proto);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let Some(spec) = spec else {
            if let Some(old) = tasks.remove(&container.id) {
                old.task.abort();
                self.context.health.forget(&container.id);
                tracing::debug!(container = %container.name.escape_debug(), "probe stopped");
            }
            return;
        };
        if tasks.get(&container.id).is_some_and(|running| running.started_at == started_at) {
            return;
        }
        if let Some(old) = tasks.remove(&container.id) {
            old.task.abort();
        }
        let task = tokio::spawn(probe_loop(self.context.clone(), container.clone(), spec)).abort_handle();
        tasks.insert(container.id.clone(), RunningProbe { started_at, task });
    }

    /// Follows a snapshot: every container in it as [`Prober::track`], and no task for a container not in it.
    pub fn reconcile(&self, containers: &[pb::ContainerState]) {
        {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.retain(|id, running| {
                let listed = containers.iter().any(|c| &c.id == id);
                if !listed {
                    running.task.abort();
                    self.context.health.forget(id);
                }
                listed
            });
        }
        for container in containers {
            self.track(container);
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for running in self.tasks.get_mut().unwrap_or_else(|e| e.into_inner()).values() {
            running.task.abort();
        }
    }
}

/// Whether the container has a HEALTHCHECK of its own (from its image or its run options).
pub fn has_healthcheck(inspect: &ContainerInspectResponse) -> bool {
    let test = inspect.config.as_ref().and_then(|c| c.healthcheck.as_ref()).and_then(|h| h.test.as_ref());
    test.and_then(|t| t.first()).is_some_and(|first| first != "NONE")
}

/// What a run of probe results says of a container's health: unhealthy after `retries` failures in a row,
/// healthy at the first success (and again at the first success after being unhealthy).
#[derive(Clone, Debug)]
pub struct Verdict {
    retries: u32,
    failures: u32,
    said: Option<pb::HealthStatus>,
}

impl Verdict {
    /// Nothing said yet, unhealthy after `retries` failures in a row.
    pub fn new(retries: u32) -> Self {
        Verdict { retries: retries.max(1), failures: 0, said: None }
    }

    /// Takes one probe's result; returns the new health when it changes.
    pub fn record(&mut self, healthy: bool) -> Option<pb::HealthStatus> {
        let health = if healthy {
            self.failures = 0;
            pb::HealthStatus::Healthy
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.failures < self.retries {
                return None;
            }
            pb::HealthStatus::Unhealthy
        };
        (self.said != Some(health)).then(|| {
            self.said = Some(health);
            health
        })
    }
}

/// Probes one container's current start until the task is aborted (it died, was removed, or started
/// again) or the monitor is gone.
async fn probe_loop(context: Arc<ProbeContext>, container: pb::ContainerState, spec: ProbeSpec) {
    let name = container.name.escape_debug().to_string();
    let inspect = match context.docker.inspect_container(&container.id, None).await {
        Ok(inspect) => inspect,
        Err(error) => {
            tracing::debug!(container = %name, %error, "cannot inspect the container to probe it; gone already?");
            return;
        }
    };
    if has_healthcheck(&inspect) {
        if context.first_time(&container.id, "healthcheck") {
            tracing::info!(
                container = %name,
                "it has a HEALTHCHECK of its own: Docker's health check applies and the label {} is ignored",
                spec::PROBE_LABEL
            );
        }
        return;
    }
    let ip = match address::of(&context.docker, &inspect).await {
        Ok(ip) => ip,
        Err(why) => {
            if context.first_time(&container.id, "address") {
                tracing::warn!(container = %name, "label {}: no address to probe: {why}; not probed", spec::PROBE_LABEL);
            }
            return;
        }
    };
    tracing::info!(
        container = %name,
        probe = %spec.target.describe(ip),
        interval = %humantime::format_duration(spec.interval),
        timeout = %humantime::format_duration(spec.timeout),
        retries = spec.retries,
        "probing"
    );
    let started_at = container.started_at.as_ref().map(hemostat_proto::timestamp::from_proto);
    context.health.set(&container.id, started_at, pb::HealthStatus::Starting);
    let mut verdict = Verdict::new(spec.retries);
    let mut outputs: VecDeque<String> = VecDeque::with_capacity(OUTPUTS_KEPT);
    loop {
        tokio::time::sleep(spec.interval).await;
        let result = check::probe(&spec.target, ip, spec.timeout).await;
        crate::instruments::global().probe_finished(spec.target.kind(), result.healthy);
        tracing::debug!(container = %name, healthy = result.healthy, output = %result.output.escape_debug(), "probe");
        if outputs.len() == OUTPUTS_KEPT {
            outputs.pop_front();
        }
        outputs.push_back(result.output.clone());
        let Some(health) = verdict.record(result.healthy) else { continue };
        context.health.set(&container.id, started_at, health);
        let evidence = if health == pb::HealthStatus::Unhealthy {
            tracing::warn!(container = %name, output = %result.output.escape_debug(), "probe failed {} times in a row: unhealthy", spec.retries);
            Evidence {
                log_tail: if context.log_lines > 0 {
                    crate::inventory::log_tail(&context.docker, &container.id, context.log_lines).await
                } else {
                    vec![]
                },
                health_outputs: outputs.iter().cloned().collect(),
            }
        } else {
            tracing::info!(container = %name, output = %result.output.escape_debug(), "probe succeeded: healthy");
            Evidence::default()
        };
        let observation = Observation::Probed { id: container.id.clone(), started_at, health, evidence };
        if context.observations.send(observation).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerConfig, HealthConfig};

    use super::*;

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_and_one_success_healthy_again() {
        use pb::HealthStatus::{Healthy, Unhealthy};
        let mut verdict = Verdict::new(3);
        let said: Vec<_> = [true, true, false, false, true, false, false, false, false, true, true]
            .map(|ok| verdict.record(ok))
            .into();
        assert_eq!(
            said,
            [Some(Healthy), None, None, None, None, None, None, Some(Unhealthy), None, Some(Healthy), None],
            "two failures are not three in a row; the third in a row is"
        );
        let mut first = Verdict::new(1);
        assert_eq!(first.record(false), Some(Unhealthy), "failing from the start, one retry");
        assert_eq!(first.record(false), None);
    }

    #[test]
    fn a_healthcheck_of_its_own_is_one_that_is_not_none() {
        let with = |test: Option<Vec<&str>>| ContainerInspectResponse {
            config: Some(ContainerConfig {
                healthcheck: test.map(|t| HealthConfig {
                    test: Some(t.into_iter().map(str::to_owned).collect()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(has_healthcheck(&with(Some(vec!["CMD-SHELL", "exit 0"]))));
        assert!(!has_healthcheck(&with(Some(vec!["NONE"]))), "--no-healthcheck");
        assert!(!has_healthcheck(&with(None)));
    }
}
