//! The monitor: the one owner of what the node knows about each container. It takes observations from the
//! watcher (Docker events) and the poller (metrics), decides what is anomalous ([`crate::detection`]), and
//! queues for the coordinator: lifecycle events, health alerts when anomalies appear, change or recur (and
//! every standing one again after each snapshot, so a coordinator that restarted or took the node over
//! knows the conditions it must follow), `resolved` when they clear, and each poll's metrics (on which the
//! coordinator re-evaluates a running condition's episode).
//!
//! It holds back what a container's start grace or `hemostat.unhealthy_for` says does not count yet
//! ([`crate::grace`]), and sends it when its time comes ([`Monitor::tick`]) if it still holds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hemostat_proto::timestamp::to_proto as timestamp;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;
use tokio::sync::{Notify, mpsc};

use crate::detection::{
    Anomaly, AnomalyKind, DetectionConfig, RestartWindow, Severity, Standing, exit_requested, percent_anomaly,
    restart_anomaly,
};
use crate::executor::{CommandRequest, Executor, NodeAction};
use crate::grace::Timings;
use crate::local_policy::{Connectivity, LocalPolicy};
use crate::metrics::Metrics;
use crate::outbox::Outbox;

/// What the node gathered at a failure, for the analyzer and for people (secrets masked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The last lines of the container's log.
    pub log_tail: Vec<String>,
    /// The last health check outputs.
    pub health_outputs: Vec<String>,
}

/// A container's exit, as the watcher saw it.
#[derive(Clone, Debug)]
pub struct ExitObservation {
    /// Its state.
    pub container: pb::ContainerState,
    /// The exit code.
    pub exit_code: i64,
    /// Whether the OOM killer ended it (per inspect).
    pub oom_killed: bool,
    /// The signal `docker stop` sends it, per inspect.
    pub stop_signal: Option<i32>,
    /// When Docker said so.
    pub at: SystemTime,
    /// Logs and health output, gathered at once.
    pub evidence: Evidence,
    /// A replayed exit of a container that runs again by now: record it, alert nothing.
    pub settled: bool,
}

/// Samples kept per container and sent with each alert.
pub const RECENT_SAMPLES: usize = 60;

/// Something the watcher or the poller saw.
#[derive(Clone, Debug)]
pub enum Observation {
    /// Every watched container, after a (re)subscription.
    Snapshot(Vec<pb::ContainerState>),
    /// Docker delivered a signal to the container for someone (a `kill` event: `docker stop`, `kill`,
    /// `restart`, `rm -f`, HemoStat's restart).
    Signalled {
        /// The container.
        id: String,
        /// The signal's number.
        signal: i32,
    },
    /// The kernel's OOM killer hit the container.
    OomKilled {
        /// The container.
        id: String,
    },
    /// The container started.
    Started {
        /// Its state.
        container: pb::ContainerState,
        /// When Docker said so.
        at: SystemTime,
    },
    /// The container's process ended.
    Exited(ExitObservation),
    /// The container was removed.
    Destroyed {
        /// Its last state.
        container: pb::ContainerState,
        /// When Docker said so.
        at: SystemTime,
    },
    /// The health check's state changed.
    HealthChanged {
        /// Its state.
        container: pb::ContainerState,
        /// The new health.
        health: pb::HealthStatus,
        /// When Docker said so.
        at: SystemTime,
        /// Logs and health output, gathered at once when unhealthy.
        evidence: Evidence,
    },
    /// A label's probe changed its verdict on a container without a HEALTHCHECK ([`crate::probe`]): taken
    /// exactly as Docker's health status.
    Probed {
        /// The container.
        id: String,
        /// The start it probed (a verdict on an earlier start is dropped).
        started_at: Option<SystemTime>,
        /// Healthy or unhealthy.
        health: pb::HealthStatus,
        /// Logs and the last probe outputs, when unhealthy.
        evidence: Evidence,
    },
    /// One poll's samples, by container id.
    Samples {
        /// When the poll finished.
        at: SystemTime,
        /// The samples.
        samples: Vec<(String, Metrics)>,
    },
}

/// What the monitor remembers per container.
#[derive(Default)]
struct Tracked {
    state: Option<pb::ContainerState>,
    standing: Standing,
    restarts: RestartWindow,
    /// The signals Docker delivered since the last start.
    signalled: Vec<i32>,
    oom: bool,
    exited_before: bool,
    recent: VecDeque<pb::ContainerMetrics>,
    /// A crash during the start grace, alerted at its end if the container is still down.
    held_exit: Option<HeldExit>,
    /// Docker's `unhealthy`, reported at this moment if it still holds, with its evidence.
    held_unhealthy: Option<(Instant, Evidence)>,
    /// The probe's verdict on the current start, which inspect does not show (no HEALTHCHECK).
    probed: Option<pb::HealthStatus>,
}

/// A crash's alert waiting for the end of the container's start grace.
struct HeldExit {
    until: Instant,
    container: pb::ContainerState,
    alert: Alert,
    at: SystemTime,
}

/// The monitor.
pub struct Monitor {
    config: DetectionConfig,
    outbox: Arc<Outbox>,
    containers: HashMap<String, Tracked>,
    resync: Arc<Notify>,
    local: Option<LocalAction>,
}

/// What the monitor needs to act on its own when cut off.
pub struct LocalAction {
    /// The policy.
    pub policy: LocalPolicy,
    /// Whether, and since when, the node is cut off.
    pub connectivity: Arc<Connectivity>,
    /// Who executes.
    pub executor: Arc<Executor>,
}

impl Monitor {
    /// A monitor queueing into `outbox`, asking for a new snapshot through `resync` when a poll disagrees
    /// with what the events said, and acting on its own through `local` when cut off.
    pub fn new(config: DetectionConfig, outbox: Arc<Outbox>, resync: Arc<Notify>, local: Option<LocalAction>) -> Self {
        Monitor { config, outbox, containers: HashMap::new(), resync, local }
    }

    /// Processes observations until every sender is gone, and what was held back when its time comes.
    pub async fn run(mut self, mut observations: mpsc::Receiver<Observation>) {
        loop {
            let next = self.next_deadline();
            let due = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                observation = observations.recv() => match observation {
                    Some(observation) => self.observe(observation, Instant::now()),
                    None => return,
                },
                () = due => self.tick(Instant::now()),
            }
        }
    }

    /// When the next held-back alert is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.containers
            .values()
            .flat_map(|t| {
                t.held_exit.as_ref().map(|h| h.until).into_iter().chain(t.held_unhealthy.as_ref().map(|h| h.0))
            })
            .min()
    }

    /// Sends what was held back until `now` and still holds: a crash during grace whose container is still
    /// down, an `unhealthy` that lasted.
    pub fn tick(&mut self, now: Instant) {
        let due_exits: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, t)| t.held_exit.as_ref().is_some_and(|h| h.until <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due_exits {
            let Some(tracked) = self.containers.get_mut(&id) else { continue };
            let Some(HeldExit { container, mut alert, at, .. }) = tracked.held_exit.take() else { continue };
            if tracked.state.as_ref().is_some_and(|s| s.status() == pb::ContainerStatus::Running) {
                continue;
            }
            tracing::info!(container = %container.name.escape_debug(), "start grace over and still down: alerting its crash");
            alert.local_command_id = self.local_restart(&container, now);
            self.alert(container, alert, at);
        }
        let due_unhealthy: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, t)| t.held_unhealthy.as_ref().is_some_and(|h| h.0 <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due_unhealthy {
            let Some(tracked) = self.containers.get_mut(&id) else { continue };
            let Some((_, evidence)) = tracked.held_unhealthy.take() else { continue };
            let Some(state) = tracked.state.clone() else { continue };
            if state.status() != pb::ContainerStatus::Running || state.health() != pb::HealthStatus::Unhealthy {
                continue;
            }
            tracing::info!(container = %state.name.escape_debug(), "still unhealthy after its grace or unhealthy_for: reporting it");
            self.settle(&state, &[AnomalyKind::Unhealthy], &[unhealthy()], SystemTime::now(), now, evidence);
        }
    }

    /// When the container's start grace ends, if it has one.
    fn grace_end(&self, container: &pb::ContainerState) -> Option<SystemTime> {
        let timings = Timings::from_labels(&container.labels, self.config.start_grace);
        let started = container.started_at.as_ref().map(hemostat_proto::timestamp::from_proto)?;
        (!timings.grace.is_zero()).then(|| started + timings.grace)
    }

    /// Whether the container is in its start grace.
    fn in_grace(&self, container: &pb::ContainerState) -> bool {
        self.grace_end(container).is_some_and(|end| SystemTime::now() < end)
    }

    /// Restarts a crashed container on the local policy, when cut off and the policy says so.
    fn local_restart(&mut self, container: &pb::ContainerState, now: Instant) -> Option<String> {
        let local = self.local.as_mut()?;
        if !local.policy.restart_on_crash(container, local.connectivity.cut_off_for(now), now) {
            return None;
        }
        let id = format!("local-{:032x}", rand::random::<u128>());
        tracing::warn!(container = %container.name.escape_debug(), "cut off from every coordinator: restarting on the local policy");
        let restart = NodeAction::Restart { stop_timeout: Duration::from_secs(10) };
        local.executor.submit(CommandRequest {
            id: id.clone(),
            container_id: container.id.clone(),
            action: Ok(restart),
        });
        Some(id)
    }

    /// Processes one observation at `now` (monotonic time for windows and timers).
    pub fn observe(&mut self, observation: Observation, now: Instant) {
        match observation {
            Observation::Snapshot(mut containers) => {
                let ids: HashSet<String> = containers.iter().map(|c| c.id.clone()).collect();
                self.containers.retain(|id, _| ids.contains(id));
                for container in &mut containers {
                    let tracked = self.containers.entry(container.id.clone()).or_default();
                    overlay_probed(tracked, container);
                    tracked.state = Some(container.clone());
                }
                self.outbox.push(Body::Snapshot(pb::ContainerSnapshot {
                    containers: containers.clone(),
                    ..Default::default()
                }));
                self.reassert_standing(&containers);
            }
            Observation::Signalled { id, signal } => self.containers.entry(id).or_default().signalled.push(signal),
            Observation::OomKilled { id } => self.containers.entry(id).or_default().oom = true,
            Observation::Started { container, at } => self.started(container, at, now),
            Observation::Exited(exit) => self.exited(exit, now),
            Observation::Destroyed { container, at } => {
                self.containers.remove(&container.id);
                self.lifecycle(pb::ContainerEventKind::Destroyed, container, None, at);
            }
            Observation::HealthChanged { container, health, at, evidence } => {
                self.health_changed(container, health, at, evidence, now)
            }
            Observation::Probed { id, started_at, health, evidence } => {
                self.probed(&id, started_at, health, evidence, now)
            }
            Observation::Samples { at, samples } => self.sampled(samples, at, now),
        }
    }

    /// A probe's verdict on the container's start `started_at`: Docker's health status, as if Docker had
    /// reported it, unless the container stopped or started again since.
    fn probed(
        &mut self,
        id: &str,
        started_at: Option<SystemTime>,
        health: pb::HealthStatus,
        evidence: Evidence,
        now: Instant,
    ) {
        let Some(tracked) = self.containers.get_mut(id) else { return };
        let Some(state) = tracked.state.as_ref() else { return };
        let current_start = state.started_at.as_ref().map(hemostat_proto::timestamp::from_proto);
        if state.status() != pb::ContainerStatus::Running || current_start != started_at {
            return;
        }
        tracked.probed = Some(health);
        let container = pb::ContainerState { health: health as i32, ..state.clone() };
        self.health_changed(container, health, SystemTime::now(), evidence, now);
    }

    /// After a snapshot (a new session, or a resync), re-asserts every standing condition at once: the
    /// coordinator may not know them (it restarted, or the node moved to another one), and it decides on
    /// conditions while they last.
    fn reassert_standing(&self, containers: &[pb::ContainerState]) {
        for container in containers {
            let Some(tracked) = self.containers.get(&container.id) else { continue };
            let anomalies = tracked.standing.anomalies();
            if anomalies.is_empty() {
                continue;
            }
            let recent = tracked.recent.iter().cloned().collect();
            let alert = Alert {
                anomalies,
                recent,
                exit: None,
                evidence: Evidence::default(),
                reasserted: true,
                local_command_id: None,
            };
            self.alert(container.clone(), alert, SystemTime::now());
        }
    }

    fn lifecycle(
        &self,
        kind: pb::ContainerEventKind,
        container: pb::ContainerState,
        exit: Option<pb::ExitDetails>,
        at: SystemTime,
    ) {
        self.outbox.push(Body::ContainerEvent(pb::ContainerEvent {
            kind: kind as i32,
            container: Some(container),
            exit,
            observed_at: Some(timestamp(at)),
        }));
    }

    fn started(&mut self, container: pb::ContainerState, at: SystemTime, now: Instant) {
        let config = self.config;
        let tracked = self.containers.entry(container.id.clone()).or_default();
        tracked.signalled.clear();
        tracked.oom = false;
        tracked.state = Some(container.clone());
        tracked.held_unhealthy = None;
        tracked.probed = None;
        if tracked.held_exit.take().is_some() {
            tracing::info!(container = %container.name.escape_debug(), "started again during its start grace: its crash is not alerted");
        }
        if tracked.exited_before {
            tracked.restarts.record(now);
        }
        let count = tracked.restarts.count(now, config.restart_window);
        let restarts: Vec<Anomaly> = restart_anomaly(count, config.restart_limit).into_iter().collect();
        self.lifecycle(pb::ContainerEventKind::Started, container.clone(), None, at);
        // A fresh start has no health verdict yet.
        self.settle(
            &container,
            &[AnomalyKind::ExcessiveRestarts, AnomalyKind::Unhealthy],
            &restarts,
            at,
            now,
            Evidence::default(),
        );
    }

    fn exited(&mut self, exit: ExitObservation, now: Instant) {
        let ExitObservation { container, exit_code, oom_killed, stop_signal, at, evidence, settled } = exit;
        let tracked = self.containers.entry(container.id.clone()).or_default();
        let oom_killed = oom_killed || std::mem::take(&mut tracked.oom);
        let signalled = std::mem::take(&mut tracked.signalled);
        let stop_requested = exit_requested(&signalled, stop_signal, exit_code, oom_killed);
        tracked.exited_before = true;
        tracked.state = Some(container.clone());
        tracked.held_unhealthy = None;
        tracked.probed = None;
        let exit = pb::ExitDetails { exit_code, oom_killed, stop_requested };
        self.lifecycle(pb::ContainerEventKind::Exited, container.clone(), Some(exit), at);
        // A stopped container has no CPU, memory or health to speak of (Docker freezes its last health).
        let standing = [AnomalyKind::HighCpu, AnomalyKind::HighMemory, AnomalyKind::Unhealthy];
        self.settle(&container, &standing, &[], at, now, Evidence::default());
        if stop_requested || settled || (exit_code == 0 && !oom_killed) {
            return;
        }
        let occurrence = if oom_killed {
            Anomaly {
                kind: AnomalyKind::OomKilled,
                severity: Severity::Critical,
                threshold: 0.0,
                actual: exit_code as f64,
            }
        } else {
            Anomaly {
                kind: AnomalyKind::NonZeroExit,
                severity: Severity::High,
                threshold: 0.0,
                actual: exit_code as f64,
            }
        };
        let grace_end = self.grace_end(&container).filter(|end| at < *end);
        let tracked = self.containers.entry(container.id.clone()).or_default();
        let mut anomalies = tracked.standing.anomalies();
        anomalies.push(occurrence);
        let recent = tracked.recent.iter().cloned().collect();
        if let Some(end) = grace_end {
            // Reported (the lifecycle event above), not acted on: the alert waits for the end of grace.
            let until = now + end.duration_since(SystemTime::now()).unwrap_or_default();
            tracing::info!(container = %container.name.escape_debug(), "crashed during its start grace: alerting it when grace ends if it is still down");
            let alert =
                Alert { anomalies, recent, exit: Some(exit), evidence, reasserted: false, local_command_id: None };
            tracked.held_exit = Some(HeldExit { until, container, alert, at });
            return;
        }
        let local = self.local_restart(&container, now);
        let alert = Alert { anomalies, recent, exit: Some(exit), evidence, reasserted: false, local_command_id: local };
        self.alert(container, alert, at);
    }

    fn health_changed(
        &mut self,
        container: pb::ContainerState,
        health: pb::HealthStatus,
        at: SystemTime,
        evidence: Evidence,
        now: Instant,
    ) {
        let hold = self.unhealthy_hold(&container, now);
        let tracked = self.containers.entry(container.id.clone()).or_default();
        tracked.state = Some(container.clone());
        self.lifecycle(pb::ContainerEventKind::HealthChanged, container.clone(), None, at);
        let tracked = self.containers.entry(container.id.clone()).or_default();
        let current = match health {
            pb::HealthStatus::Unhealthy if container.status() == pb::ContainerStatus::Running => {
                if let Some(until) = hold.filter(|_| !tracked.standing.has(AnomalyKind::Unhealthy)) {
                    if tracked.held_unhealthy.is_none() {
                        tracing::info!(container = %container.name.escape_debug(), "unhealthy: reported only if it still is after its grace or unhealthy_for");
                        tracked.held_unhealthy = Some((until, evidence));
                    }
                    return;
                }
                vec![unhealthy()]
            }
            // `starting` says nothing yet; it is not a fault.
            pb::HealthStatus::Starting => return,
            _ => vec![],
        };
        if tracked.held_unhealthy.take().is_some() {
            tracing::info!(container = %container.name.escape_debug(), "healthy again before its unhealthy state counted");
        }
        self.settle(&container, &[AnomalyKind::Unhealthy], &current, at, now, evidence);
    }

    /// Until when an `unhealthy` seen now is held back (the end of the start grace, or `unhealthy_for`
    /// from now, whichever is later), if at all.
    fn unhealthy_hold(&self, container: &pb::ContainerState, now: Instant) -> Option<Instant> {
        let timings = Timings::from_labels(&container.labels, self.config.start_grace);
        let grace_left = self.grace_end(container).and_then(|end| end.duration_since(SystemTime::now()).ok());
        let hold = grace_left.unwrap_or_default().max(timings.unhealthy_for);
        (!hold.is_zero()).then(|| now + hold)
    }

    fn sampled(&mut self, samples: Vec<(String, Metrics)>, at: SystemTime, now: Instant) {
        let config = self.config;
        let polled: HashSet<&str> = samples.iter().map(|(id, _)| id.as_str()).collect();
        let missed_exit = self.containers.iter().any(|(id, tracked)| {
            tracked.state.as_ref().is_some_and(|s| s.status() == pb::ContainerStatus::Running)
                && !polled.contains(id.as_str())
        });
        let missed_start = polled.iter().any(|id| self.containers.get(*id).is_none_or(|t| t.state.is_none()));
        if missed_exit || missed_start {
            // An exit or a start the event stream did not deliver: re-list. Without its `die` event the node
            // cannot tell a crash from a requested stop, so it reports the new state and raises no alert; a
            // container it never heard of is reported by the new snapshot (and sampled from the next poll).
            tracing::info!(missed_exit, missed_start, "a poll disagrees with the event stream; taking a new snapshot");
            self.resync.notify_one();
        }
        let mut report = Vec::with_capacity(samples.len());
        for (id, metrics) in samples {
            let grace = self.containers.get(&id).and_then(|t| t.state.as_ref()).is_some_and(|s| self.in_grace(s));
            let tracked = self.containers.entry(id.clone()).or_default();
            let Some(state) = tracked.state.clone() else { continue };
            let count = tracked.restarts.count(now, config.restart_window);
            let sample = Metrics { restarts_in_window: count, ..metrics }.to_wire(&state);
            if tracked.recent.len() == RECENT_SAMPLES {
                tracked.recent.pop_front();
            }
            tracked.recent.push_back(sample.clone());
            let mut current: Vec<Anomaly> = restart_anomaly(count, config.restart_limit).into_iter().collect();
            let (cpu_threshold, memory_threshold) = config.thresholds(&state.labels);
            if let Some(cpu) = metrics.cpu_percent {
                current.extend(percent_anomaly(AnomalyKind::HighCpu, cpu, cpu_threshold));
            }
            current.extend(percent_anomaly(AnomalyKind::HighMemory, metrics.memory_percent, memory_threshold));
            if grace {
                // Start-up spikes: CPU and memory count from the end of the start grace.
                current.retain(|a| a.kind == AnomalyKind::ExcessiveRestarts);
            }
            let mut scope = vec![AnomalyKind::ExcessiveRestarts, AnomalyKind::HighMemory];
            if metrics.cpu_percent.is_some() {
                scope.push(AnomalyKind::HighCpu);
            }
            report.push(sample);
            self.settle(&state, &scope, &current, at, now, Evidence::default());
        }
        self.outbox.push(Body::Metrics(pb::MetricsReport { samples: report }));
    }

    /// Updates the standing anomalies of the kinds in `scope` and queues what changed.
    fn settle(
        &mut self,
        container: &pb::ContainerState,
        scope: &[AnomalyKind],
        current: &[Anomaly],
        at: SystemTime,
        now: Instant,
        evidence: Evidence,
    ) {
        let every = self.config.reassert_every;
        let tracked = self.containers.entry(container.id.clone()).or_default();
        let before = tracked.standing.anomalies();
        let changes = tracked.standing.update(now, scope, current, every);
        let anomalies = tracked.standing.anomalies();
        let recent: Vec<pb::ContainerMetrics> = tracked.recent.iter().cloned().collect();
        if !changes.resolved.is_empty() {
            self.outbox.push(Body::Resolved(pb::AnomalyResolved {
                container: Some(container.clone()),
                cleared: changes.resolved.iter().map(|k| pb::AnomalyType::from(*k) as i32).collect(),
                observed_at: Some(timestamp(at)),
            }));
        }
        if changes.alert {
            let reasserted = before.len() == anomalies.len()
                && before.iter().zip(&anomalies).all(|(a, b)| a.kind == b.kind && a.severity == b.severity);
            let alert = Alert { anomalies, recent, exit: None, evidence, reasserted, local_command_id: None };
            self.alert(container.clone(), alert, at);
        }
    }

    fn alert(&self, container: pb::ContainerState, alert: Alert, at: SystemTime) {
        tracing::info!(
            container = %container.name.escape_debug(),
            anomalies = ?alert.anomalies.iter().map(|a| (a.kind, a.severity)).collect::<Vec<_>>(),
            reasserted = alert.reasserted,
            "health alert"
        );
        self.outbox.push(Body::HealthAlert(pb::HealthAlert {
            container: Some(container),
            anomalies: alert.anomalies.iter().map(pb::Anomaly::from).collect(),
            metrics: alert.recent.last().cloned(),
            exit: alert.exit,
            observed_at: Some(timestamp(at)),
            reasserted: alert.reasserted,
            recent: alert.recent,
            log_tail: alert.evidence.log_tail,
            health_outputs: alert.evidence.health_outputs,
            local_action: if alert.local_command_id.is_some() { pb::Action::Restart } else { pb::Action::Unspecified }
                as i32,
            local_command_id: alert.local_command_id.unwrap_or_default(),
        }));
    }
}

/// Keeps the probe's verdict in a newly inspected state of the same start (inspect knows nothing of it: the
/// container has no HEALTHCHECK).
fn overlay_probed(tracked: &Tracked, container: &mut pb::ContainerState) {
    let (Some(probed), Some(known)) = (tracked.probed, tracked.state.as_ref()) else { return };
    if matches!(container.health(), pb::HealthStatus::None | pb::HealthStatus::Unspecified)
        && container.status() == pb::ContainerStatus::Running
        && container.started_at == known.started_at
    {
        container.health = probed as i32;
    }
}

/// The `unhealthy` anomaly.
fn unhealthy() -> Anomaly {
    Anomaly { kind: AnomalyKind::Unhealthy, severity: Severity::High, threshold: 0.0, actual: 1.0 }
}

/// What one health alert carries besides the container.
struct Alert {
    anomalies: Vec<Anomaly>,
    recent: Vec<pb::ContainerMetrics>,
    exit: Option<pb::ExitDetails>,
    evidence: Evidence,
    reasserted: bool,
    /// The node's own restart, when the local policy acted.
    local_command_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(id: &str) -> pb::ContainerState {
        pb::ContainerState {
            id: id.into(),
            name: format!("n-{id}"),
            status: pb::ContainerStatus::Running as i32,
            ..Default::default()
        }
    }

    fn alerts(outbox: &Outbox) -> Vec<(String, bool)> {
        outbox
            .after(0)
            .into_iter()
            .filter_map(|m| match m.body {
                Body::HealthAlert(a) => Some((a.container.unwrap_or_default().id, a.reasserted)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn standing_conditions_are_reasserted_after_each_snapshot_and_nothing_else_is() {
        let outbox = Arc::new(Outbox::new(100));
        let mut monitor = Monitor::new(DetectionConfig::default(), outbox.clone(), Arc::new(Notify::new()), None);
        let now = Instant::now();
        monitor.observe(Observation::Snapshot(vec![running("hog"), running("idle")]), now);
        let sample =
            |cpu| Metrics { cpu_percent: Some(cpu), sampled_at: Some(SystemTime::now()), ..Metrics::default() };
        let samples = vec![("hog".to_owned(), sample(99.0)), ("idle".to_owned(), sample(1.0))];
        monitor.observe(Observation::Samples { at: SystemTime::now(), samples }, now);
        assert_eq!(alerts(&outbox), [("hog".to_owned(), false)]);
        // A new session: the hog's condition again, marked as a re-assertion; the idle container has none.
        monitor.observe(Observation::Snapshot(vec![running("hog"), running("idle")]), now + Duration::from_secs(1));
        assert_eq!(alerts(&outbox), [("hog".to_owned(), false), ("hog".to_owned(), true)]);
    }

    #[tokio::test]
    async fn a_poll_that_finds_a_container_the_events_never_named_or_misses_a_running_one_asks_for_a_snapshot() {
        let outbox = Arc::new(Outbox::new(100));
        let resync = Arc::new(Notify::new());
        let mut monitor = Monitor::new(DetectionConfig::default(), outbox.clone(), resync.clone(), None);
        let now = Instant::now();
        let sample = || Metrics { cpu_percent: Some(1.0), sampled_at: Some(SystemTime::now()), ..Metrics::default() };
        // A request is a stored permit: `notified` is ready at once if, and only if, one was made.
        let asked = || async { futures::FutureExt::now_or_never(resync.notified()).is_some() };
        monitor.observe(Observation::Snapshot(vec![running("a")]), now);
        monitor.observe(Observation::Samples { at: SystemTime::now(), samples: vec![("a".into(), sample())] }, now);
        assert!(!asked().await, "the poll agrees with the events");
        let samples = vec![("a".into(), sample()), ("unheard".into(), sample())];
        monitor.observe(Observation::Samples { at: SystemTime::now(), samples }, now);
        assert!(asked().await, "a running container no event announced");
        monitor.observe(Observation::Samples { at: SystemTime::now(), samples: vec![] }, now);
        assert!(asked().await, "a running container the poll no longer finds");
    }

    fn labelled(id: &str, labels: &[(&str, &str)]) -> pb::ContainerState {
        pb::ContainerState {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            started_at: Some(timestamp(SystemTime::now())),
            ..running(id)
        }
    }

    fn crash(container: pb::ContainerState) -> Observation {
        let container = pb::ContainerState { status: pb::ContainerStatus::Exited as i32, ..container };
        Observation::Exited(ExitObservation {
            container,
            exit_code: 1,
            oom_killed: false,
            stop_signal: None,
            at: SystemTime::now(),
            evidence: Evidence::default(),
            settled: false,
        })
    }

    #[test]
    fn a_crash_during_grace_is_alerted_when_grace_ends_if_still_down_and_never_if_it_started_again() {
        let outbox = Arc::new(Outbox::new(100));
        let mut monitor = Monitor::new(DetectionConfig::default(), outbox.clone(), Arc::new(Notify::new()), None);
        let now = Instant::now();
        let (down, back) =
            (labelled("down", &[("hemostat.grace", "5s")]), labelled("back", &[("hemostat.grace", "5")]));
        monitor.observe(Observation::Snapshot(vec![down.clone(), back.clone()]), now);
        monitor.observe(crash(down), now);
        monitor.observe(crash(back.clone()), now);
        assert_eq!(alerts(&outbox), [], "held during grace");
        assert!(monitor.next_deadline().is_some_and(|d| d > now + Duration::from_secs(4)));
        monitor.tick(now + Duration::from_secs(1));
        assert_eq!(alerts(&outbox), []);
        monitor.observe(Observation::Started { container: back, at: SystemTime::now() }, now + Duration::from_secs(2));
        monitor.tick(now + Duration::from_secs(6));
        assert_eq!(alerts(&outbox), [("down".to_owned(), false)], "only the one still down");
        assert_eq!(monitor.next_deadline(), None);
        // Without grace (the default), a crash is alerted at once.
        monitor.observe(crash(labelled("plain", &[])), now);
        assert_eq!(alerts(&outbox).len(), 2);
    }

    #[test]
    fn unhealthy_counts_only_once_it_lasted_unhealthy_for() {
        let outbox = Arc::new(Outbox::new(100));
        let mut monitor = Monitor::new(DetectionConfig::default(), outbox.clone(), Arc::new(Notify::new()), None);
        let now = Instant::now();
        let state = |id: &str, health: pb::HealthStatus| pb::ContainerState {
            health: health as i32,
            ..labelled(id, &[("hemostat.unhealthy_for", "10s")])
        };
        let changed = |id: &str, health| Observation::HealthChanged {
            container: state(id, health),
            health,
            at: SystemTime::now(),
            evidence: Evidence::default(),
        };
        monitor.observe(changed("sick", pb::HealthStatus::Unhealthy), now);
        monitor.observe(changed("flaky", pb::HealthStatus::Unhealthy), now);
        monitor.observe(changed("sick", pb::HealthStatus::Unhealthy), now + Duration::from_secs(5));
        monitor.observe(changed("flaky", pb::HealthStatus::Healthy), now + Duration::from_secs(5));
        monitor.tick(now + Duration::from_secs(9));
        assert_eq!(alerts(&outbox), []);
        monitor.tick(now + Duration::from_secs(10));
        assert_eq!(alerts(&outbox), [("sick".to_owned(), false)], "10 s after it first turned unhealthy");
    }
    #[test]
    fn a_probe_verdict_is_taken_as_dockers_health_and_one_on_an_earlier_start_is_dropped() {
        let outbox = Arc::new(Outbox::new(100));
        let mut monitor = Monitor::new(DetectionConfig::default(), outbox.clone(), Arc::new(Notify::new()), None);
        let now = Instant::now();
        let web = labelled("web", &[("hemostat.probe", "http://:8080/healthz")]);
        let slow = labelled("slow", &[("hemostat.probe", "tcp://:5432"), ("hemostat.unhealthy_for", "10s")]);
        monitor.observe(Observation::Snapshot(vec![web.clone(), slow.clone()]), now);
        let start = |c: &pb::ContainerState| c.started_at.as_ref().map(hemostat_proto::timestamp::from_proto);
        let probed = |c: &pb::ContainerState, started_at, health| Observation::Probed {
            id: c.id.clone(),
            started_at,
            health,
            evidence: Evidence {
                log_tail: vec![],
                health_outputs: vec!["GET http://172.17.0.5:8080/healthz: 404 Not Found".into()],
            },
        };
        let earlier = Some(SystemTime::UNIX_EPOCH);
        monitor.observe(probed(&web, earlier, pb::HealthStatus::Unhealthy), now);
        assert_eq!(alerts(&outbox), [], "a verdict on an earlier start");
        monitor.observe(probed(&web, start(&web), pb::HealthStatus::Unhealthy), now);
        monitor.observe(probed(&slow, start(&slow), pb::HealthStatus::Unhealthy), now);
        assert_eq!(alerts(&outbox), [("web".to_owned(), false)], "slow waits for its unhealthy_for");
        let alert = outbox
            .after(0)
            .into_iter()
            .find_map(|m| match m.body {
                Body::HealthAlert(a) => Some(a),
                _ => None,
            })
            .unwrap();
        assert_eq!(alert.health_outputs, ["GET http://172.17.0.5:8080/healthz: 404 Not Found"]);
        assert_eq!(alert.container.unwrap().health(), pb::HealthStatus::Unhealthy);
        // A new snapshot (inspect knows no health) keeps the probe's verdict, so the held one still counts.
        monitor.observe(Observation::Snapshot(vec![web.clone(), slow.clone()]), now + Duration::from_secs(1));
        let snapshot_health: Vec<pb::HealthStatus> = outbox
            .after(0)
            .into_iter()
            .filter_map(|m| match m.body {
                Body::Snapshot(s) => Some(s.containers.iter().map(|c| c.health()).collect::<Vec<_>>()),
                _ => None,
            })
            .next_back()
            .unwrap();
        assert_eq!(snapshot_health, [pb::HealthStatus::Unhealthy, pb::HealthStatus::Unhealthy]);
        monitor.tick(now + Duration::from_secs(10));
        let alerted: Vec<String> = alerts(&outbox).into_iter().filter(|(_, r)| !r).map(|(id, _)| id).collect();
        assert_eq!(alerted, ["web", "slow"]);
    }
}
