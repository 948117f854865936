//! The coordinator's Prometheus metrics (prefix `hemostat_`), served by
//! [`hemostat_telemetry::exposition`] on `HEMOSTAT_METRICS_LISTEN`.
//!
//! Counters and latency histograms are fed by one observer of the event log: every event the coordinator
//! records passes through [`CoordinatorInstruments::observe`] (called by the journal's one append path), so the
//! metrics count exactly what the log holds. Each coordinator has its own instruments: two coordinators in one
//! process (tests, benches) never count into the same registry. Gauges
//! (connected nodes, each node's spool) and the notifier's counters are read from live state at scrape time.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `hemostat_events_total` | `type` | events recorded, by type (`storm`, `node_lost`, ... included) |
//! | `hemostat_alerts_total` | `anomaly` | anomalies reported in health alerts |
//! | `hemostat_decisions_total` | `method`, `decision` | decisions (`remediate` or `false_alarm`) by analysis method |
//! | `hemostat_rejections_total` | `code` | actions the policy stopped, by rejection code |
//! | `hemostat_actions_total` | `action`, `result` | results of executed actions |
//! | `hemostat_decision_latency_seconds` | `method` | from the node observing a problem to the decision |
//! | `hemostat_remediation_latency_seconds` | `action` | from the decision to the node's verified result |
//! | `hemostat_nodes_connected` | | nodes with a session open now |
//! | `hemostat_spool_depth` | `node` | messages in each node's spool, per its last heartbeat |
//! | `hemostat_notifications_{sent,failed,dropped}_total` | | the notifier's deliveries, per event and sink |
//! | `hemostat_notifications_queued` | | notifications waiting to be sent |
//! | `hemostat_intake_cuts_total` | `limit` | items cut from what nodes sent, by intake limit ([`crate::intake`]) |
//! | `hemostat_unknown_messages_total` | `kind` | what nodes sent that this coordinator does not know, ignored ([`crate::intake::Unknown`]) |

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry as MetricRegistry;

use crate::alerting::Notifier;
use crate::bounded::BoundedMap;
use crate::events::{EventKind, EventRecord, Outcome};
use crate::registry::Registry;

/// Label sets: `N` (name, value) pairs.
type Labels<const N: usize> = [(&'static str, String); N];
/// A family of histograms sharing one set of buckets.
type HistogramFamily<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Upper bounds of the decision latency buckets, in seconds: milliseconds for the rules, up to a minute for
/// a slow model.
const DECISION_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];
/// Upper bounds of the remediation latency buckets, in seconds: a restart's verification window is 30 s
/// by default.
const REMEDIATION_BUCKETS: [f64; 14] =
    [0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 600.0, 1800.0];
/// Alerts awaiting a decision, and decisions awaiting a result, remembered at most (the oldest go first).
const PENDING_LIMIT: usize = 4096;

/// What the notifier has done so far, read at each scrape (without a notifier every count reads 0).
pub trait NotificationCounts: Send + Sync + 'static {
    /// Notifications delivered.
    fn sent(&self) -> u64;
    /// Notifications that could not be delivered after their retries (the event stays in the log).
    fn failed(&self) -> u64;
    /// Notifications dropped from a full queue.
    fn dropped(&self) -> u64;
    /// Notifications waiting to be sent.
    fn queued(&self) -> usize;
}

impl NotificationCounts for Notifier {
    fn sent(&self) -> u64 {
        Notifier::sent(self)
    }

    fn failed(&self) -> u64 {
        Notifier::failed(self)
    }

    fn dropped(&self) -> u64 {
        Notifier::dropped(self)
    }

    fn queued(&self) -> usize {
        Notifier::queued(self)
    }
}

/// The coordinator's event-fed metric families, and when the alerts and decisions in flight started.
pub struct CoordinatorInstruments {
    events: Family<Labels<1>, Counter>,
    alerts: Family<Labels<1>, Counter>,
    decisions: Family<Labels<2>, Counter>,
    rejections: Family<Labels<1>, Counter>,
    actions: Family<Labels<2>, Counter>,
    dashboard_logins: Family<Labels<1>, Counter>,
    decision_latency: HistogramFamily<1>,
    remediation_latency: HistogramFamily<1>,
    pending: Mutex<InFlight>,
}

/// Start times of what is still in flight, in Unix milliseconds.
struct InFlight {
    /// When the node observed the last alert of a container, by (node, container id), until its decision.
    alerts: BoundedMap<(String, String), u64>,
    /// When an action was decided, by command id, until its result (or rejection).
    decisions: BoundedMap<String, u64>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight { alerts: BoundedMap::new(PENDING_LIMIT), decisions: BoundedMap::new(PENDING_LIMIT) }
    }
}

impl Default for CoordinatorInstruments {
    fn default() -> Self {
        Self::new()
    }
}

impl CoordinatorInstruments {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        CoordinatorInstruments {
            events: Family::default(),
            alerts: Family::default(),
            decisions: Family::default(),
            rejections: Family::default(),
            actions: Family::default(),
            dashboard_logins: Family::default(),
            decision_latency: Family::new_with_constructor(|| Histogram::new(DECISION_BUCKETS)),
            remediation_latency: Family::new_with_constructor(|| Histogram::new(REMEDIATION_BUCKETS)),
            pending: Mutex::new(InFlight::default()),
        }
    }

    /// Counts one recorded event, and times decisions and results against what started them.
    pub fn observe(&self, record: &EventRecord) {
        let kind = record.kind.name().to_owned();
        self.events.get_or_create(&[("type", kind)]).inc();
        let container = || (record.node.clone(), record.container_id.clone());
        let mut pending = self.pending.lock().expect("instruments lock");
        match record.kind {
            EventKind::HealthAlert => {
                for anomaly in &record.anomalies {
                    self.alerts.get_or_create(&[("anomaly", anomaly.kind.name().to_owned())]).inc();
                }
                if let Some(observed_ms) = record.observed_ms {
                    pending.alerts.insert(container(), observed_ms);
                }
            }
            EventKind::RemediationNeeded | EventKind::FalseAlarm => {
                let method = record.analysis_method.clone().unwrap_or_else(|| "unknown".to_owned());
                let decision = if record.kind == EventKind::FalseAlarm { "false_alarm" } else { "remediate" };
                self.decisions.get_or_create(&[("method", method.clone()), ("decision", decision.to_owned())]).inc();
                if let Some(observed_ms) = pending.alerts.remove(&container()) {
                    self.decision_latency
                        .get_or_create(&[("method", method)])
                        .observe(seconds_between(observed_ms, record.time_ms));
                }
                if let (EventKind::RemediationNeeded, Some(command_id)) = (record.kind, &record.command_id) {
                    pending.decisions.insert(command_id.clone(), record.time_ms);
                }
            }
            EventKind::Rejected => {
                let code = record.rejection.map_or("unknown", |r| r.code());
                self.rejections.get_or_create(&[("code", code.to_owned())]).inc();
                // No result follows a rejection (an approval records a new decision).
                if let Some(command_id) = &record.command_id {
                    pending.decisions.remove(command_id);
                }
            }
            EventKind::RemediationComplete => {
                let action = record.action.map_or("unknown", |a| a.name()).to_owned();
                let result = record.outcome.map_or("unknown", Outcome::name).to_owned();
                self.actions.get_or_create(&[("action", action.clone()), ("result", result)]).inc();
                if let Some(decided_ms) = record.command_id.as_ref().and_then(|id| pending.decisions.remove(id)) {
                    self.remediation_latency
                        .get_or_create(&[("action", action)])
                        .observe(seconds_between(decided_ms, record.time_ms));
                }
            }
            _ => {}
        }
    }

    /// Counts one dashboard login by its answer: `ok`, `refused` (a wrong token) or `limited` (429).
    pub fn count_dashboard_login(&self, result: &'static str) {
        self.dashboard_logins.get_or_create(&[("result", result.to_owned())]).inc();
    }

    /// A registry for the exposition server: these metrics, and gauges read at each scrape from the fleet
    /// `registry` and from the notifier (when there is one).
    pub fn registry(&self, fleet: Arc<Registry>, notifications: Option<Arc<dyn NotificationCounts>>) -> MetricRegistry {
        let mut registry = MetricRegistry::with_prefix("hemostat");
        registry.register("events", "Events recorded in the event log, by type", self.events.clone());
        registry.register("alerts", "Anomalies reported in health alerts, by anomaly", self.alerts.clone());
        registry.register(
            "decisions",
            "Decisions, by analysis method and decision (remediate or false_alarm)",
            self.decisions.clone(),
        );
        registry.register("rejections", "Actions stopped by the safety policy, by code", self.rejections.clone());
        registry.register("actions", "Results of executed actions, by action and result", self.actions.clone());
        registry.register(
            "dashboard_logins",
            "Dashboard logins, by result (ok, refused: a wrong token, limited: too many failures lately)",
            self.dashboard_logins.clone(),
        );
        registry.register(
            "decision_latency_seconds",
            "From the node observing a problem to the decision, by analysis method",
            self.decision_latency.clone(),
        );
        registry.register(
            "remediation_latency_seconds",
            "From the decision to the node's verified result, by action",
            self.remediation_latency.clone(),
        );
        registry.register_collector(Box::new(LiveGauges { fleet, notifications }));
        registry
    }
}

/// Gauges and counters read from live state at each scrape.
struct LiveGauges {
    fleet: Arc<Registry>,
    notifications: Option<Arc<dyn NotificationCounts>>,
}

impl std::fmt::Debug for LiveGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveGauges").field("notifier", &self.notifications.is_some()).finish()
    }
}

impl Collector for LiveGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let nodes = self.fleet.nodes();
        let connected = ConstGauge::new(nodes.iter().filter(|n| n.connected).count() as i64);
        connected.encode(encoder.encode_descriptor(
            "nodes_connected",
            "Nodes with a session open now.",
            None,
            connected.metric_type(),
        )?)?;
        let mut spool = encoder.encode_descriptor(
            "spool_depth",
            "Messages in each node's spool, awaiting the coordinator, per its last heartbeat.",
            None,
            MetricType::Gauge,
        )?;
        for node in &nodes {
            let labels = [("node", node.hello.name.as_str())];
            ConstGauge::new(node.spool_depth as i64).encode(spool.encode_family(&labels)?)?;
        }
        let queued = ConstGauge::new(self.notifications.as_ref().map_or(0, |n| n.queued()) as i64);
        queued.encode(encoder.encode_descriptor(
            "notifications_queued",
            "Notifications waiting to be sent.",
            None,
            queued.metric_type(),
        )?)?;
        let mut cuts = encoder.encode_descriptor(
            "intake_cuts",
            "Items (containers, strings, labels, evidence, samples) cut from what nodes sent, by intake limit.",
            None,
            MetricType::Counter,
        )?;
        for (limit, n) in self.fleet.cut_totals() {
            ConstCounter::new(n).encode(cuts.encode_family(&[("limit", limit.name())])?)?;
        }
        let mut unknown = encoder.encode_descriptor(
            "unknown_messages",
            "What nodes sent that this coordinator does not know (newer nodes), ignored: messages of an unknown \
             kind, host alerts of an unknown condition, anomalies of an unknown type.",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in self.fleet.unknown_totals() {
            ConstCounter::new(n).encode(unknown.encode_family(&[("kind", kind.name())])?)?;
        }
        let counts = self.notifications.as_ref().map_or((0, 0, 0), |n| (n.sent(), n.failed(), n.dropped()));
        for (name, help, value) in [
            ("notifications_sent", "Notifications delivered.", counts.0),
            ("notifications_failed", "Notifications not delivered after their retries.", counts.1),
            ("notifications_dropped", "Notifications dropped from a full queue.", counts.2),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}

/// Seconds from `start_ms` to `end_ms`; 0 when clocks disagree (the node's and the coordinator's).
fn seconds_between(start_ms: u64, end_ms: u64) -> f64 {
    end_ms.saturating_sub(start_ms) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use hemostat_telemetry::exposition::{Format, render};

    use super::*;
    use crate::container::{Anomaly, AnomalyKind, Severity};
    use crate::events::{Action, Rejection};
    use crate::registry::NodeHello;

    fn record(kind: EventKind, container: &str, time_ms: u64) -> EventRecord {
        EventRecord { time_ms, ..EventRecord::new(kind, "host-a", container, container, "test") }
    }

    fn alert(container: &str, observed_ms: u64, time_ms: u64) -> EventRecord {
        let anomaly = |kind| Anomaly { kind, severity: Severity::High, threshold: 0.0, actual: 1.0 };
        EventRecord {
            anomalies: vec![anomaly(AnomalyKind::NonZeroExit), anomaly(AnomalyKind::HighMemory)],
            observed_ms: Some(observed_ms),
            ..record(EventKind::HealthAlert, container, time_ms)
        }
    }

    fn decision(kind: EventKind, container: &str, method: &str, command: Option<&str>, time_ms: u64) -> EventRecord {
        EventRecord {
            analysis_method: Some(method.to_owned()),
            command_id: command.map(str::to_owned),
            action: command.map(|_| Action::Restart),
            ..record(kind, container, time_ms)
        }
    }

    fn result(container: &str, command: &str, outcome: Outcome, time_ms: u64) -> EventRecord {
        EventRecord {
            outcome: Some(outcome),
            action: Some(Action::Restart),
            command_id: Some(command.to_owned()),
            ..record(EventKind::RemediationComplete, container, time_ms)
        }
    }

    fn rejected(container: &str, command: &str, rejection: Rejection, time_ms: u64) -> EventRecord {
        EventRecord {
            rejection: Some(rejection),
            command_id: Some(command.to_owned()),
            ..record(EventKind::Rejected, container, time_ms)
        }
    }

    fn scrape(instruments: &CoordinatorInstruments, fleet: Arc<Registry>) -> String {
        render(&instruments.registry(fleet, None), Format::Prometheus)
    }

    /// The value of the sample written exactly `series` (name and labels), if present.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_and_latencies_follow_the_event_log() {
        let instruments = CoordinatorInstruments::new();
        // web: alert observed at 1.000 s, decided at 1.020 s, restarted and verified at 3.020 s.
        instruments.observe(&alert("web", 1_000, 1_010));
        instruments.observe(&decision(EventKind::RemediationNeeded, "web", "rules", Some("c1"), 1_020));
        instruments.observe(&result("web", "c1", Outcome::Success, 3_020));
        // db: decided a false alarm by the model 2.5 s after it was observed.
        instruments.observe(&alert("db", 10_000, 10_005));
        instruments.observe(&decision(EventKind::FalseAlarm, "db", "ai", None, 12_500));
        // cache: decided, then rejected: no result, no remediation latency.
        instruments.observe(&alert("cache", 20_000, 20_001));
        instruments.observe(&decision(EventKind::RemediationNeeded, "cache", "rules", Some("c2"), 20_002));
        instruments.observe(&rejected("cache", "c2", Rejection::CooldownActive, 20_003));
        instruments.observe(&result("cache", "c2", Outcome::Failed, 25_000));
        // A storm and a lost node are counted by type.
        instruments.observe(&record(EventKind::Storm, "", 30_000));
        instruments.observe(&record(EventKind::NodeLost, "", 30_001));

        let text = scrape(&instruments, Arc::new(Registry::default()));
        let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert_eq!(v("hemostat_events_total{type=\"health_alert\"}"), 3.0);
        assert_eq!(v("hemostat_events_total{type=\"storm\"}"), 1.0);
        assert_eq!(v("hemostat_events_total{type=\"node_lost\"}"), 1.0);
        assert_eq!(v("hemostat_alerts_total{anomaly=\"non_zero_exit\"}"), 3.0);
        assert_eq!(v("hemostat_alerts_total{anomaly=\"high_memory\"}"), 3.0);
        assert_eq!(v("hemostat_decisions_total{method=\"rules\",decision=\"remediate\"}"), 2.0);
        assert_eq!(v("hemostat_decisions_total{method=\"ai\",decision=\"false_alarm\"}"), 1.0);
        assert_eq!(v("hemostat_rejections_total{code=\"cooldown_active\"}"), 1.0);
        assert_eq!(v("hemostat_actions_total{action=\"restart\",result=\"success\"}"), 1.0);
        assert_eq!(v("hemostat_actions_total{action=\"restart\",result=\"failed\"}"), 1.0);

        assert_eq!(v("hemostat_decision_latency_seconds_count{method=\"rules\"}"), 2.0);
        assert!((v("hemostat_decision_latency_seconds_sum{method=\"rules\"}") - 0.022).abs() < 1e-9);
        assert_eq!(v("hemostat_decision_latency_seconds_bucket{method=\"rules\",le=\"0.01\"}"), 1.0);
        assert_eq!(v("hemostat_decision_latency_seconds_bucket{method=\"rules\",le=\"0.025\"}"), 2.0);
        assert_eq!(v("hemostat_decision_latency_seconds_count{method=\"ai\"}"), 1.0);
        assert_eq!(v("hemostat_decision_latency_seconds_sum{method=\"ai\"}"), 2.5);
        assert_eq!(v("hemostat_remediation_latency_seconds_count{action=\"restart\"}"), 1.0);
        assert_eq!(v("hemostat_remediation_latency_seconds_sum{action=\"restart\"}"), 2.0);
    }

    #[test]
    fn a_node_clock_ahead_of_the_coordinator_gives_zero_not_a_huge_latency() {
        let instruments = CoordinatorInstruments::new();
        instruments.observe(&alert("web", 5_000, 4_000));
        instruments.observe(&decision(EventKind::RemediationNeeded, "web", "rules", Some("c1"), 4_010));
        let text = scrape(&instruments, Arc::new(Registry::default()));
        assert_eq!(value(&text, "hemostat_decision_latency_seconds_sum{method=\"rules\"}"), Some(0.0), "{text}");
    }

    #[test]
    fn what_never_finishes_is_forgotten_beyond_the_limit() {
        let mut map = InFlight::default().decisions;
        for i in 0..PENDING_LIMIT as u64 + 10 {
            map.insert(i.to_string(), i);
        }
        assert_eq!(map.len(), PENDING_LIMIT);
        assert_eq!(map.remove("0"), None, "the oldest went first");
        assert_eq!(map.remove(&(PENDING_LIMIT + 9).to_string()), Some(PENDING_LIMIT as u64 + 9));
    }

    struct FixedCounts;

    impl NotificationCounts for FixedCounts {
        fn sent(&self) -> u64 {
            7
        }
        fn failed(&self) -> u64 {
            2
        }
        fn dropped(&self) -> u64 {
            1
        }
        fn queued(&self) -> usize {
            3
        }
    }

    #[test]
    fn gauges_are_read_from_the_fleet_at_each_scrape() {
        let fleet = Arc::new(Registry::default());
        let instruments = CoordinatorInstruments::new();
        let text = scrape(&instruments, fleet.clone());
        assert_eq!(value(&text, "hemostat_nodes_connected"), Some(0.0), "{text}");
        assert_eq!(value(&text, "hemostat_notifications_failed_total"), Some(0.0), "{text}");

        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let hello = |name: &str| NodeHello {
            name: name.into(),
            version: "test".into(),
            stream_id: "s".into(),
            hostname: name.into(),
            abilities: Default::default(),
        };
        fleet.open_session(hello("host-a"), None, tx.clone());
        let session_b = fleet.open_session(hello("host-b"), None, tx);
        fleet.heartbeat("host-a", 42, 0);
        fleet.close_session("host-b", session_b);
        let notifier: Arc<dyn NotificationCounts> = Arc::new(FixedCounts);
        let text = render(&instruments.registry(fleet, Some(notifier)), Format::Prometheus);
        assert_eq!(value(&text, "hemostat_nodes_connected"), Some(1.0), "{text}");
        assert_eq!(value(&text, "hemostat_spool_depth{node=\"host-a\"}"), Some(42.0), "{text}");
        assert_eq!(value(&text, "hemostat_spool_depth{node=\"host-b\"}"), Some(0.0), "{text}");
        assert_eq!(value(&text, "hemostat_notifications_sent_total"), Some(7.0), "{text}");
        assert_eq!(value(&text, "hemostat_notifications_failed_total"), Some(2.0), "{text}");
        assert_eq!(value(&text, "hemostat_notifications_dropped_total"), Some(1.0), "{text}");
        assert_eq!(value(&text, "hemostat_notifications_queued"), Some(3.0), "{text}");
        assert!(text.contains("# TYPE hemostat_nodes_connected gauge"), "{text}");
        assert!(text.contains("# TYPE hemostat_notifications_failed_total counter"), "{text}");
    }
}
