//! The node's Prometheus metrics (prefix `hemostat_node_`), served by
//! [`hemostat_telemetry::exposition`] on `NODE_METRICS_LISTEN`.
//!
//! The watcher, the poller and the executor report here with one call each; everything the node queues for
//! the coordinator passes [`NodeInstruments::outgoing`], which counts alerts and keeps the set of watched
//! containers from the snapshots and lifecycle events; the spool is read at scrape time.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `hemostat_node_containers_watched` | | containers this node watches (any state) |
//! | `hemostat_node_poll_duration_seconds` | | how long one metrics poll of every running container took |
//! | `hemostat_node_samples_total` | `source` | container samples taken, by where they were read (`cgroup`, `engine`) |
//! | `hemostat_node_sample_failures_total` | `source` | container samples that could not be read, by source |
//! | `hemostat_node_docker_events_total` | `action` | Docker events processed, by action (`die`, `start`, ...) |
//! | `hemostat_node_alerts_sent_total` | `anomaly` | anomalies in the health alerts queued for the coordinator |
//! | `hemostat_node_probes_total` | `kind`, `result` | label probes run ([`crate::probe`]), by kind (`http`, `tcp`) and result (`success`, `failure`) |
//! | `hemostat_node_bad_labels_total` | `label` | labels with a bad value on watched containers (each container counted once), by label |
//! | `hemostat_node_commands_total` | `action`, `result` | commands executed (the coordinator's and the local policy's) |
//! | `hemostat_node_commands_limited_total` | `limit` | commands refused by a limit (`rate`, `concurrency`) |
//! | `hemostat_node_message_cuts_total` | `field` | values cut or left out of messages to fit their bounds, by field |
//! | `hemostat_node_messages_split_total` | | snapshots and metrics reports larger than a part (16 KiB) that were sent in parts |
//! | `hemostat_node_unknown_messages_total` | | coordinator messages of a kind this node does not know (a newer coordinator's), ignored |
//! | `hemostat_node_spool_damaged_records_total` | | damaged spool records skipped when reading the spool |
//! | `hemostat_node_spool_depth` | | messages awaiting the coordinator's acknowledgement |
//! | `hemostat_node_spool_dropped_total` | | messages dropped from a full spool since the node started |
//! | `hemostat_node_coordinator_connected` | | 1 while a coordinator session is open and answering, else 0 |
//! | `hemostat_node_cut_off_seconds` | | how long the node has been without a coordinator (0 when connected) |

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::executor::NodeAction;
use crate::local_policy::Connectivity;
use crate::outbox::Outbox;

/// Label sets: `N` (name, value) pairs.
type Labels<const N: usize> = [(&'static str, String); N];

/// Upper bounds of the poll duration buckets, in seconds (one-shot stats answer in milliseconds each).
const POLL_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The node's metric families.
pub struct NodeInstruments {
    watched: Mutex<HashSet<String>>,
    containers_watched: Gauge,
    poll_duration: Histogram,
    samples: Family<Labels<1>, Counter>,
    sample_failures: Family<Labels<1>, Counter>,
    docker_events: Family<Labels<1>, Counter>,
    alerts_sent: Family<Labels<1>, Counter>,
    probes: Family<Labels<2>, Counter>,
    bad_labels: Family<Labels<1>, Counter>,
    commands: Family<Labels<2>, Counter>,
    commands_limited: Family<Labels<1>, Counter>,
    message_cuts: Family<Labels<1>, Counter>,
    messages_split: Counter,
    unknown_messages: Counter,
    spool_damaged: Counter,
}

impl Default for NodeInstruments {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeInstruments {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        NodeInstruments {
            watched: Mutex::new(HashSet::new()),
            containers_watched: Gauge::default(),
            poll_duration: Histogram::new(POLL_BUCKETS),
            samples: Family::default(),
            sample_failures: Family::default(),
            docker_events: Family::default(),
            alerts_sent: Family::default(),
            probes: Family::default(),
            bad_labels: Family::default(),
            commands: Family::default(),
            commands_limited: Family::default(),
            message_cuts: Family::default(),
            messages_split: Counter::default(),
            unknown_messages: Counter::default(),
            spool_damaged: Counter::default(),
        }
    }

    /// Observes a message queued for the coordinator: alerts are counted by anomaly; snapshots and
    /// lifecycle events keep the set of watched containers.
    pub fn outgoing(&self, body: &Body) {
        match body {
            Body::HealthAlert(alert) => {
                for anomaly in &alert.anomalies {
                    self.alerts_sent.get_or_create(&[("anomaly", anomaly_name(anomaly.r#type()))]).inc();
                }
            }
            Body::Snapshot(snapshot) => {
                let mut watched = self.watched.lock().expect("instruments lock");
                // A snapshot in parts: its first part starts the set, the others add to it.
                if snapshot.part == 0 {
                    watched.clear();
                }
                watched.extend(snapshot.containers.iter().map(|c| c.id.clone()));
                self.containers_watched.set(watched.len() as i64);
            }
            Body::ContainerEvent(event) => {
                let Some(container) = &event.container else { return };
                let mut watched = self.watched.lock().expect("instruments lock");
                if event.kind() == pb::ContainerEventKind::Destroyed {
                    watched.remove(&container.id);
                } else {
                    watched.insert(container.id.clone());
                }
                self.containers_watched.set(watched.len() as i64);
            }
            _ => {}
        }
    }

    /// Counts a Docker event the watcher processes, by its action (`die`, `health_status`, ...).
    pub fn docker_event(&self, action: Option<&str>) {
        let action = action.unwrap_or("unknown");
        // `health_status: healthy`, `exec_start: <command>`: the action is the part before the colon.
        let action = action.split(':').next().unwrap_or(action).trim();
        self.docker_events.get_or_create(&[("action", action.to_owned())]).inc();
    }

    /// Counts one label probe of `kind` (`http`, `tcp`) and its result.
    pub fn probe_finished(&self, kind: &'static str, healthy: bool) {
        let result = if healthy { "success" } else { "failure" };
        self.probes.get_or_create(&[("kind", kind.to_owned()), ("result", result.to_owned())]).inc();
    }

    /// Counts a label with a bad value on a watched container.
    pub fn bad_label(&self, label: &'static str) {
        self.bad_labels.get_or_create(&[("label", label.to_owned())]).inc();
    }

    /// Records how long one metrics poll took.
    pub fn poll_finished(&self, elapsed: Duration) {
        self.poll_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a container sample read from `source` (`cgroup`, `engine`).
    pub fn sample_taken(&self, source: &'static str) {
        self.samples.get_or_create(&[("source", source.to_owned())]).inc();
    }

    /// Counts a container sample that could not be read from `source`.
    pub fn sample_failed(&self, source: &'static str) {
        self.sample_failures.get_or_create(&[("source", source.to_owned())]).inc();
    }

    /// Counts an executed command by its action (`restart`, ...; `unknown` for one the node could not read)
    /// and result.
    pub fn command_finished(&self, action: Option<&NodeAction>, outcome: pb::Outcome) {
        let action = action.map_or("unknown", NodeAction::name).to_owned();
        let result = outcome.as_str_name().trim_start_matches("OUTCOME_").to_ascii_lowercase();
        self.commands.get_or_create(&[("action", action), ("result", result)]).inc();
    }

    /// Counts a command refused by a limit (`rate`, `concurrency`).
    pub fn command_limited(&self, limit: &'static str) {
        self.commands_limited.get_or_create(&[("limit", limit.to_owned())]).inc();
    }

    /// Counts `count` values cut or left out of a message, of `field` (`label_value`, `log_tail`, ...).
    pub fn message_cut(&self, field: &'static str, count: u64) {
        self.message_cuts.get_or_create(&[("field", field.to_owned())]).inc_by(count);
    }

    /// Counts a message sent in parts.
    pub fn message_split(&self) {
        self.messages_split.inc();
    }

    /// Counts a coordinator message of a kind this node does not know, ignored.
    pub fn unknown_message(&self) {
        self.unknown_messages.inc();
    }

    /// Counts damaged spool records skipped.
    pub fn spool_damaged(&self, records: u64) {
        self.spool_damaged.inc_by(records);
    }

    /// A registry for the exposition server: these metrics, and the spool of `outbox` and the node's
    /// `connectivity`, read at each scrape.
    pub fn registry(&self, outbox: Arc<Outbox>, connectivity: Arc<Connectivity>) -> Registry {
        let mut registry = Registry::with_prefix("hemostat_node");
        registry.register(
            "containers_watched",
            "Containers this node watches, in any state",
            self.containers_watched.clone(),
        );
        registry.register(
            "poll_duration_seconds",
            "How long one metrics poll of every running watched container took",
            self.poll_duration.clone(),
        );
        registry.register("samples", "Container samples taken, by source (cgroup, engine)", self.samples.clone());
        registry.register(
            "sample_failures",
            "Container samples that could not be read, by source (cgroup, engine)",
            self.sample_failures.clone(),
        );
        registry.register("docker_events", "Docker events processed, by action", self.docker_events.clone());
        registry.register(
            "alerts_sent",
            "Anomalies in the health alerts queued for the coordinator, by anomaly",
            self.alerts_sent.clone(),
        );
        registry.register("probes", "Label probes run, by kind (http, tcp) and result", self.probes.clone());
        registry.register(
            "bad_labels",
            "Labels with a bad value on watched containers, each container counted once, by label",
            self.bad_labels.clone(),
        );
        registry.register("commands", "Commands executed, by action and result", self.commands.clone());
        registry.register(
            "commands_limited",
            "Commands refused by a limit, by limit (rate, concurrency)",
            self.commands_limited.clone(),
        );
        registry.register(
            "message_cuts",
            "Values cut or left out of messages to the coordinator to fit their bounds, by field",
            self.message_cuts.clone(),
        );
        registry.register(
            "messages_split",
            "Messages too large for one that were sent in parts",
            self.messages_split.clone(),
        );
        registry.register(
            "unknown_messages",
            "Coordinator messages of a kind this node does not know (a newer coordinator's), ignored",
            self.unknown_messages.clone(),
        );
        registry.register(
            "spool_damaged_records",
            "Damaged spool records skipped when the spool was read",
            self.spool_damaged.clone(),
        );
        registry.register_collector(Box::new(SessionGauges { outbox, connectivity }));
        registry
    }
}

/// The instruments of this process's node (one node per process outside tests).
pub fn global() -> &'static NodeInstruments {
    static GLOBAL: LazyLock<NodeInstruments> = LazyLock::new(NodeInstruments::new);
    &GLOBAL
}

/// The spool's depth and drops and the coordinator connection, read at each scrape.
struct SessionGauges {
    outbox: Arc<Outbox>,
    connectivity: Arc<Connectivity>,
}

impl std::fmt::Debug for SessionGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGauges").field("stream", &self.outbox.stream_id()).finish()
    }
}

impl Collector for SessionGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cut_off = self.connectivity.cut_off_for(std::time::Instant::now());
        let connected = ConstGauge::new(i64::from(cut_off.is_none()));
        connected.encode(encoder.encode_descriptor(
            "coordinator_connected",
            "1 while a coordinator session is open and answering, else 0.",
            None,
            connected.metric_type(),
        )?)?;
        let seconds = ConstGauge::new(cut_off.unwrap_or_default().as_secs_f64());
        seconds.encode(encoder.encode_descriptor(
            "cut_off_seconds",
            "How long the node has been without a coordinator session (0 when connected).",
            None,
            seconds.metric_type(),
        )?)?;
        let depth = ConstGauge::new(self.outbox.len() as i64);
        depth.encode(encoder.encode_descriptor(
            "spool_depth",
            "Messages awaiting the coordinator's acknowledgement.",
            None,
            depth.metric_type(),
        )?)?;
        let dropped = ConstCounter::new(self.outbox.dropped());
        dropped.encode(encoder.encode_descriptor(
            "spool_dropped",
            "Messages dropped from a full spool since the node started.",
            None,
            dropped.metric_type(),
        )?)?;
        Ok(())
    }
}

/// An anomaly type's name, as the coordinator writes it: `non_zero_exit`, `high_cpu`, ...
fn anomaly_name(kind: pb::AnomalyType) -> String {
    kind.as_str_name().trim_start_matches("ANOMALY_TYPE_").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use hemostat_telemetry::exposition::{Format, render};

    use super::*;

    fn container(id: &str) -> pb::ContainerState {
        pb::ContainerState { id: id.to_owned(), name: id.to_owned(), ..Default::default() }
    }

    fn event(kind: pb::ContainerEventKind, id: &str) -> Body {
        Body::ContainerEvent(pb::ContainerEvent {
            kind: kind as i32,
            container: Some(container(id)),
            ..Default::default()
        })
    }

    /// The value of the sample written exactly `series` (name and labels), if present.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn what_the_node_sends_and_does_is_counted() {
        let instruments = NodeInstruments::new();
        let outbox = Arc::new(Outbox::new(2));
        instruments.outgoing(&Body::Snapshot(pb::ContainerSnapshot {
            containers: vec![container("a"), container("b")],
            ..Default::default()
        }));
        instruments.outgoing(&event(pb::ContainerEventKind::Started, "c"));
        instruments.outgoing(&event(pb::ContainerEventKind::Exited, "a"));
        instruments.outgoing(&event(pb::ContainerEventKind::Destroyed, "b"));
        let anomaly = |kind: pb::AnomalyType| pb::Anomaly { r#type: kind as i32, ..Default::default() };
        instruments.outgoing(&Body::HealthAlert(pb::HealthAlert {
            container: Some(container("a")),
            anomalies: vec![anomaly(pb::AnomalyType::NonZeroExit), anomaly(pb::AnomalyType::HighCpu)],
            ..Default::default()
        }));
        instruments.docker_event(Some("die"));
        instruments.docker_event(Some("health_status: unhealthy"));
        instruments.docker_event(Some("health_status: healthy"));
        instruments.poll_finished(Duration::from_millis(30));
        instruments.probe_finished("http", true);
        instruments.probe_finished("http", true);
        instruments.probe_finished("tcp", false);
        instruments.bad_label("hemostat.probe");
        instruments.command_finished(Some(&NodeAction::Restart { stop_timeout: Duration::ZERO }), pb::Outcome::Success);
        instruments.command_finished(Some(&NodeAction::Exec { argv: vec!["env".into()] }), pb::Outcome::Refused);
        instruments.command_finished(None, pb::Outcome::Refused);
        for _ in 0..3 {
            outbox.push(Body::Metrics(pb::MetricsReport::default()));
        }

        let text = render(&instruments.registry(outbox, Arc::new(Connectivity::default())), Format::Prometheus);
        let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert_eq!(v("hemostat_node_containers_watched"), 2.0, "a and c; b was removed");
        assert_eq!(v("hemostat_node_alerts_sent_total{anomaly=\"non_zero_exit\"}"), 1.0);
        assert_eq!(v("hemostat_node_alerts_sent_total{anomaly=\"high_cpu\"}"), 1.0);
        assert_eq!(v("hemostat_node_docker_events_total{action=\"die\"}"), 1.0);
        assert_eq!(v("hemostat_node_docker_events_total{action=\"health_status\"}"), 2.0);
        assert_eq!(v("hemostat_node_poll_duration_seconds_count"), 1.0);
        assert_eq!(v("hemostat_node_probes_total{kind=\"http\",result=\"success\"}"), 2.0);
        assert_eq!(v("hemostat_node_probes_total{kind=\"tcp\",result=\"failure\"}"), 1.0);
        assert_eq!(v("hemostat_node_bad_labels_total{label=\"hemostat.probe\"}"), 1.0);
        assert_eq!(v("hemostat_node_poll_duration_seconds_bucket{le=\"0.05\"}"), 1.0);
        assert_eq!(v("hemostat_node_poll_duration_seconds_bucket{le=\"0.025\"}"), 0.0);
        assert_eq!(v("hemostat_node_commands_total{action=\"restart\",result=\"success\"}"), 1.0);
        assert_eq!(v("hemostat_node_commands_total{action=\"exec\",result=\"refused\"}"), 1.0);
        assert_eq!(v("hemostat_node_commands_total{action=\"unknown\",result=\"refused\"}"), 1.0);
        assert_eq!(v("hemostat_node_spool_depth"), 2.0, "the capacity");
        assert_eq!(v("hemostat_node_spool_dropped_total"), 1.0);
        assert!(text.contains("# TYPE hemostat_node_spool_depth gauge"), "{text}");
        assert!(text.contains("# TYPE hemostat_node_spool_dropped_total counter"), "{text}");

        instruments.outgoing(&Body::Snapshot(pb::ContainerSnapshot {
            containers: vec![container("z")],
            ..Default::default()
        }));
        assert_eq!(instruments.containers_watched.get(), 1, "a snapshot replaces what was known");
    }
}
