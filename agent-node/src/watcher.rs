//! Watching Docker's event stream: read into our own buffer as it arrives, turned into observations for the
//! monitor; and a snapshot of every watched container after each (re)subscription.
//!
//! The daemon keeps only its last 256 events and drops a listener that falls 100 ms behind, so one task
//! only reads the stream into a channel and another does the slower work (inspect). The subscription is
//! made before the snapshot is taken, so nothing falls between them; after the stream breaks, the watcher
//! re-subscribes from the last event's time (Docker replays what it still has) and takes a new snapshot.
//! It also takes one whenever asked to resynchronise: after every (re)connect to the coordinator, and when
//! a poll finds a container that the events said was running gone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptions;
use futures::StreamExt;
use hemostat_proto::v1 as pb;
use tokio::sync::{Notify, mpsc};

use crate::detection;
use crate::inventory::Watch;
use crate::inventory::{self, ContainerSelector};
use crate::monitor::{Evidence, ExitObservation, Observation};
use crate::probe::{ProbeHealth, Prober};
use crate::recent::RecentSet;

/// The container events the node subscribes to.
const EVENTS: [&str; 8] = ["start", "die", "kill", "stop", "oom", "destroy", "restart", "health_status"];
/// Podman's own names of two of them, which its Docker-compatible API filters on (its stream says `die`
/// for `died`, but `remove` for Docker's `destroy`).
const PODMAN_EVENTS: [&str; 2] = ["died", "remove"];
/// Events buffered between the reader and the processor.
const BUFFER: usize = 16_384;

/// Watches Docker's events and sends observations to the monitor.
pub struct Watcher {
    docker: Docker,
    selector: ContainerSelector,
    observations: mpsc::Sender<Observation>,
    log_lines: usize,
    resync: Arc<Notify>,
    position: Option<PathBuf>,
    started: SystemTime,
    podman: bool,
    /// The containers whose watch decision was logged already.
    explained: std::sync::Mutex<RecentSet<String>>,
    /// The probes of the containers with a `hemostat.probe` label, started and stopped as they are seen.
    prober: Prober,
}

/// Containers whose watch decision the watcher remembers having logged.
const EXPLAINED: usize = 16_384;

impl Watcher {
    /// A watcher of the containers `selector` picks, gathering `log_lines` lines of log at each failure,
    /// and taking a new snapshot whenever `resync` is notified (a new coordinator session, or a poll that
    /// disagrees with what the events said).
    pub fn new(
        docker: Docker,
        selector: ContainerSelector,
        observations: mpsc::Sender<Observation>,
        log_lines: usize,
        resync: Arc<Notify>,
        probes: ProbeHealth,
    ) -> Self {
        Watcher {
            prober: Prober::new(docker.clone(), observations.clone(), log_lines, probes),
            docker,
            selector,
            observations,
            log_lines,
            resync,
            position: None,
            started: SystemTime::now(),
            podman: false,
            explained: std::sync::Mutex::new(RecentSet::new(EXPLAINED)),
        }
    }

    /// Subscribes with Podman's event names too (the engine is Podman, through its Docker-compatible API).
    pub fn for_podman(mut self, podman: bool) -> Self {
        self.podman = podman;
        self
    }

    /// Keeps the time of the last event processed in `file`, so that after a node restart Docker replays
    /// what happened while the node was down (what its buffer of 256 events still holds), and nothing is
    /// processed twice.
    pub fn with_position_file(mut self, file: PathBuf) -> Self {
        self.position = Some(file);
        self
    }

    /// The failure's evidence, gathered now, before anything restarts the container.
    async fn evidence(&self, id: &str, inspect: Option<&bollard::models::ContainerInspectResponse>) -> Evidence {
        Evidence {
            log_tail: if self.log_lines > 0 {
                inventory::log_tail(&self.docker, id, self.log_lines).await
            } else {
                vec![]
            },
            health_outputs: inspect.map(inventory::health_outputs).unwrap_or_default(),
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        // Nanoseconds since the epoch of the last event processed.
        let mut last_nano: Option<i64> = self
            .position
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file).ok())
            .and_then(|text| text.trim().parse().ok());
        loop {
            // Without a position, subscribe from now: the subscription starts streaming only once Docker
            // answers it, and a container started between the snapshot and then would go unheard. Docker
            // replays from the start of this second; what came before now is skipped below.
            if last_nano.is_none() {
                last_nano = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_nanos() as i64);
            }
            let since = last_nano.map(|nano| nano / 1_000_000_000);
            let (tx, mut rx) = mpsc::channel::<EventMessage>(BUFFER);
            let reader = tokio::spawn(read_events(self.docker.clone(), self.subscription(since), tx));
            if !self.snapshot().await {
                return;
            }
            loop {
                let event = tokio::select! {
                    event = rx.recv() => event,
                    _ = self.resync.notified() => {
                        if !self.snapshot().await {
                            return;
                        }
                        continue;
                    }
                };
                let Some(event) = event else { break };
                if let Some(nano) = event.time_nano {
                    // `since` has a resolution of a second: skip what was processed already.
                    if last_nano.is_some_and(|last| nano <= last) {
                        continue;
                    }
                    last_nano = Some(nano);
                    if let Some(file) = &self.position
                        && let Err(error) = std::fs::write(file, nano.to_string())
                    {
                        tracing::warn!(%error, file = %file.display(), "cannot record the event stream position");
                    }
                }
                crate::instruments::global().docker_event(event.action.as_deref());
                if let Some(observation) = self.observe(event).await
                    && self.observations.send(observation).await.is_err()
                {
                    return;
                }
            }
            let _ = reader.await;
            tracing::warn!("the Docker event stream ended; re-subscribing");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Lists every watched container and sends the snapshot; false once the monitor is gone.
    async fn snapshot(&self) -> bool {
        let explain = |id: &str, name: &str, labels: &HashMap<String, String>, watch: &Watch| {
            self.explain(id, name, labels, watch)
        };
        match inventory::snapshot_explained(&self.docker, &self.selector, explain).await {
            Ok(containers) => {
                self.prober.reconcile(&containers);
                self.observations.send(Observation::Snapshot(containers)).await.is_ok()
            }
            Err(error) => {
                tracing::warn!(%error, "cannot list containers; will retry");
                true
            }
        }
    }

    /// Logs, once per container, why it is or is not watched, and each of its labels with a bad value.
    fn explain(&self, id: &str, name: &str, labels: &HashMap<String, String>, watch: &Watch) {
        let first = self.explained.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned());
        if !first {
            return;
        }
        let name = name.trim_start_matches('/').escape_debug().to_string();
        tracing::info!(container = %name, "{watch}");
        if watch.watched() {
            for bad in crate::grace::bad_labels(labels) {
                crate::instruments::global().bad_label(bad.label);
                tracing::warn!(container = %name, label = bad.label, value = %bad.value.escape_debug(), "{bad}");
            }
            for bad in crate::probe::bad_labels(labels) {
                crate::instruments::global().bad_label(bad.label);
                tracing::warn!(container = %name, label = bad.label, value = %bad.value.escape_debug(), "{bad}");
            }
            for bad in crate::detection::bad_threshold_labels(labels) {
                let label = bad.label.name();
                tracing::warn!(container = %name, label, value = %bad.value.escape_debug(), "{bad}");
            }
        }
    }

    fn subscription(&self, since: Option<i64>) -> EventsOptions {
        let mut filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), self.event_names().into_iter().map(str::to_owned).collect()),
        ]);
        if let Some(label) = self.selector.docker_filter() {
            filters.insert("label".to_owned(), vec![label]);
        }
        // `since` must be a Unix timestamp: Docker 20.10 answers 500 to a duration.
        EventsOptions { since: since.map(|t| t.to_string()), until: None, filters: Some(filters) }
    }

    /// The event names of the subscription.
    fn event_names(&self) -> Vec<&'static str> {
        let podman = if self.podman { &PODMAN_EVENTS[..] } else { &[] };
        EVENTS.iter().chain(podman).copied().collect()
    }

    /// Turns one Docker event into an observation, if it is one the monitor needs.
    async fn observe(&self, event: EventMessage) -> Option<Observation> {
        if event.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return None;
        }
        let action = event.action.as_deref()?;
        let actor = event.actor.as_ref()?;
        let id = actor.id.clone()?;
        let attributes = actor.attributes.clone().unwrap_or_default();
        let name = attributes.get("name").map_or("", String::as_str);
        let watch = self.selector.decide(&id, name, &attributes);
        self.explain(&id, name, &attributes, &watch);
        if !watch.watched() {
            return None;
        }
        let at = event
            .time_nano
            .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64))
            .unwrap_or_else(SystemTime::now);
        // `stop` comes after the `die` it caused: the `kill` before it is what tells a stop from a crash.
        match action {
            "kill" => {
                let signal = attributes.get("signal").and_then(|s| detection::signal_number(s));
                return signal.map(|signal| Observation::Signalled { id, signal });
            }
            "oom" => return Some(Observation::OomKilled { id }),
            _ => {}
        }
        let health = action.strip_prefix("health_status: ").map(|status| match status {
            "healthy" => pb::HealthStatus::Healthy,
            "unhealthy" => pb::HealthStatus::Unhealthy,
            "starting" => pb::HealthStatus::Starting,
            _ => pb::HealthStatus::Unspecified,
        });
        if !matches!(action, "start" | "die" | "destroy" | "remove") && health.is_none() {
            return None;
        }
        let inspect = self.docker.inspect_container(&id, None).await.ok();
        let (container, oom_killed, stop_signal) = match &inspect {
            Some(inspect) => (
                inventory::state_from_inspect(inspect),
                inventory::oom_killed(inspect),
                inventory::stop_signal(inspect),
            ),
            None => (state_from_attributes(&id, &attributes), false, None),
        };
        self.prober.track(&container);
        Some(match (action, health) {
            (_, Some(health)) => {
                let evidence = match health {
                    pb::HealthStatus::Unhealthy => self.evidence(&id, inspect.as_ref()).await,
                    _ => Evidence::default(),
                };
                Observation::HealthChanged { container, health, at, evidence }
            }
            ("start", _) => Observation::Started { container, at },
            ("die", _) => {
                let exit_code = attributes.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(container.exit_code);
                let evidence = if exit_code != 0 || oom_killed {
                    self.evidence(&id, inspect.as_ref()).await
                } else {
                    Evidence::default()
                };
                // A `die` replayed from before this run whose container runs again by now was dealt with
                // while the node was down (by Docker's restart policy, or by someone): nothing to alert.
                let settled = at < self.started && container.status() == pb::ContainerStatus::Running;
                Observation::Exited(ExitObservation {
                    container,
                    exit_code,
                    oom_killed,
                    stop_signal,
                    at,
                    evidence,
                    settled,
                })
            }
            _ => Observation::Destroyed { container, at },
        })
    }
}

/// Reads the event stream into `tx` until it ends or fails.
async fn read_events(docker: Docker, options: EventsOptions, tx: mpsc::Sender<EventMessage>) {
    let mut stream = docker.events(Some(options));
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if tx.try_send(event).is_err() {
                    tracing::error!("the event buffer is full; re-subscribing and taking a new snapshot");
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the Docker event stream failed");
                return;
            }
        }
    }
}

/// What an event says of a container that can no longer be inspected (removed already).
fn state_from_attributes(id: &str, attributes: &HashMap<String, String>) -> pb::ContainerState {
    let reserved = ["name", "image", "exitCode", "signal"];
    pb::ContainerState {
        id: id.to_owned(),
        name: attributes.get("name").cloned().unwrap_or_default(),
        image: attributes.get("image").cloned().unwrap_or_default(),
        status: pb::ContainerStatus::Exited as i32,
        health: pb::HealthStatus::None as i32,
        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or_default(),
        restart_policy: String::new(),
        labels: attributes
            .iter()
            .filter(|(k, _)| !reserved.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Default::default()
    }
}
