//! Watching Docker: the event stream, read into our own buffer as it arrives, turned into reports for the
//! coordinator; and a snapshot of every watched container after each (re)subscription.
//!
//! The daemon keeps only its last 256 events and drops a listener that falls 100 ms behind, so one task
//! only reads the stream into a channel and another does the slow work (inspect, queueing). The subscription
//! is made before the snapshot is taken, so nothing falls between them.
//!
//! A stop someone asked for shows as `kill` (or `stop`) before `die`; the watcher remembers the request per
//! container until the next `die` or `start`, and reports the exit with `stop_requested`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptions;
use futures::StreamExt;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;
use tokio::sync::mpsc;

use crate::inventory::{self, ContainerSelector};
use crate::outbox::Outbox;

/// The container events the node subscribes to.
const EVENTS: [&str; 7] = ["start", "die", "kill", "stop", "oom", "destroy", "restart"];
/// Signals whose `kill` means someone is stopping the container (INT, QUIT, KILL, TERM).
const STOP_SIGNALS: [&str; 4] = ["2", "3", "9", "15"];
/// Events buffered between the reader and the processor.
const BUFFER: usize = 16_384;

/// Watches Docker and queues reports in the outbox.
pub struct Watcher {
    docker: Docker,
    selector: ContainerSelector,
    outbox: Arc<Outbox>,
    stop_requested: HashSet<String>,
}

impl Watcher {
    /// A watcher of the containers `selector` picks, reporting into `outbox`.
    pub fn new(docker: Docker, selector: ContainerSelector, outbox: Arc<Outbox>) -> Self {
        Watcher { docker, selector, outbox, stop_requested: HashSet::new() }
    }

    /// Runs until the task is dropped: subscribes, snapshots, processes events; re-subscribes (from the last
    /// event's time) and snapshots again after the stream breaks.
    pub async fn run(mut self) {
        let mut since: Option<i64> = None;
        loop {
            let (tx, mut rx) = mpsc::channel::<EventMessage>(BUFFER);
            let reader = tokio::spawn(read_events(self.docker.clone(), self.subscription(since), tx));
            match inventory::snapshot(&self.docker, &self.selector).await {
                Ok(containers) => {
                    self.outbox.push(Body::Snapshot(pb::ContainerSnapshot { containers }));
                }
                Err(error) => tracing::warn!(%error, "cannot list containers; will retry"),
            }
            while let Some(event) = rx.recv().await {
                if let Some(time) = event.time {
                    since = Some(time);
                }
                self.process(event).await;
            }
            let _ = reader.await;
            tracing::warn!("the Docker event stream ended; re-subscribing");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn subscription(&self, since: Option<i64>) -> EventsOptions {
        let mut filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), EVENTS.iter().map(|e| e.to_string()).collect()),
        ]);
        if let Some(label) = self.selector.docker_filter() {
            filters.insert("label".to_owned(), vec![label]);
        }
        // `since` must be a Unix timestamp: Docker 20.10 answers 500 to a duration.
        EventsOptions { since: since.map(|t| t.to_string()), until: None, filters: Some(filters) }
    }

    /// Turns one Docker event into a report, if it is one the coordinator needs.
    async fn process(&mut self, event: EventMessage) {
        if event.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return;
        }
        let (Some(action), Some(actor)) = (event.action.as_deref(), event.actor.as_ref()) else { return };
        let Some(id) = actor.id.clone() else { return };
        let attributes = actor.attributes.clone().unwrap_or_default();
        if !self.selector.matches(&attributes) {
            return;
        }
        let observed_at = event
            .time_nano
            .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64))
            .unwrap_or_else(SystemTime::now);
        let kind = match action {
            "kill" => {
                if attributes.get("signal").is_some_and(|s| STOP_SIGNALS.contains(&s.as_str())) {
                    self.stop_requested.insert(id);
                }
                return;
            }
            "stop" => {
                self.stop_requested.insert(id);
                return;
            }
            "start" => {
                self.stop_requested.remove(&id);
                pb::ContainerEventKind::Started
            }
            "die" => pb::ContainerEventKind::Exited,
            "destroy" => pb::ContainerEventKind::Destroyed,
            _ => return,
        };
        let (container, oom_killed) = match self.docker.inspect_container(&id, None).await {
            Ok(inspect) => (inventory::state_from_inspect(&inspect), inventory::oom_killed(&inspect)),
            Err(_) => (state_from_attributes(&id, &attributes), false),
        };
        let exit = (kind == pb::ContainerEventKind::Exited).then(|| {
            let exit_code = attributes.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(container.exit_code);
            pb::ExitDetails { exit_code, oom_killed, stop_requested: self.stop_requested.remove(&id) }
        });
        tracing::debug!(container = %container.name, action, ?exit, "container event");
        self.outbox.push(Body::ContainerEvent(pb::ContainerEvent {
            kind: kind as i32,
            container: Some(container),
            exit,
            observed_at: Some(hemostat_proto::timestamp::to_proto(observed_at)),
        }));
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
        started_at: None,
    }
}
