//! Intake limits: the most the coordinator keeps of what one node sends, whatever the node is (a node
//! certificate is not a licence to grow the coordinator). Every node message passes [`IntakeLimits::bound`]
//! before it is converted; the registry holds a node to [`IntakeLimits::containers_per_node`].
//!
//! | what | limit (defaults) | when over it |
//! |---|---|---|
//! | containers of one node | 10,000 (`HEMOSTAT_MAX_CONTAINERS_PER_NODE`) | containers beyond it are not kept (a known one is still updated) |
//! | one string (ids, names, image, hostname, ...) | 1 KiB (`HEMOSTAT_MAX_STRING_BYTES`) | cut, with the marker |
//! | one label | key 256 B, value 4 KiB | a longer key: the label is left out; a longer value: cut |
//! | labels of one container | 32 KiB (keys and values) | the labels beyond it are left out |
//! | evidence of one message (log tail, health outputs, detail, output) | 64 KiB each (`HEMOSTAT_MAX_EVIDENCE_BYTES`) | the oldest lines left out, or cut, with the marker |
//! | samples of one alert, anomalies of one alert | 1,024, 64 | the oldest samples, the last anomalies left out |
//!
//! The node's own bounds (agent-node/src/bounds.rs) are within these, so a well-behaved node is never cut
//! here. The marker says how much was cut: `…[cut 4500000 B]`. What is cut is counted in `/metrics`
//! (`hemostat_intake_cuts_total{limit}`) and said once per session and limit in an `input_refused` event.

use std::collections::BTreeMap;

use hemostat_proto::v1 as pb;
use pb::session_request::Body;

/// What the coordinator keeps of one node's reports at most. The defaults are in the module's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Containers of one node kept in the registry.
    pub containers_per_node: usize,
    /// One string: an id, a name, an image, a hostname, a version.
    pub string_bytes: usize,
    /// One label's key.
    pub label_key_bytes: usize,
    /// One label's value.
    pub label_value_bytes: usize,
    /// Every label of one container, keys and values.
    pub labels_bytes: usize,
    /// Each piece of evidence of one message: an alert's log tail, its health outputs, a detail, an output.
    pub evidence_bytes: usize,
    /// Samples of one alert.
    pub samples_per_alert: usize,
    /// Anomalies of one alert.
    pub anomalies_per_alert: usize,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            containers_per_node: 10_000,
            string_bytes: 1 << 10,
            label_key_bytes: 256,
            label_value_bytes: 4 << 10,
            labels_bytes: 32 << 10,
            evidence_bytes: 64 << 10,
            samples_per_alert: 1024,
            anomalies_per_alert: 64,
        }
    }
}

/// What a node sent that this coordinator does not know, because the node is newer (see README, "Rolling
/// upgrades"): it is ignored, counted in `hemostat_unknown_messages_total{kind}`, and logged once per session
/// and kind; the message is acknowledged and the session goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unknown {
    /// A message of a kind added after this coordinator (prost decodes its body as none): ignored whole.
    Message,
    /// A host alert of a condition added after this coordinator: ignored whole.
    HostCondition,
    /// An anomaly of a type added after this coordinator, in a health alert or a resolution: left out, the
    /// rest of the message is handled.
    AnomalyType,
}

impl Unknown {
    /// Every kind, in order.
    pub const ALL: [Unknown; 3] = [Unknown::Message, Unknown::HostCondition, Unknown::AnomalyType];

    /// Its name in `/metrics` and logs.
    pub fn name(self) -> &'static str {
        match self {
            Unknown::Message => "message",
            Unknown::HostCondition => "host_condition",
            Unknown::AnomalyType => "anomaly_type",
        }
    }
}

/// Which limit cut something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    /// Containers of one node.
    Containers,
    /// One string.
    String,
    /// A container's labels.
    Labels,
    /// Evidence: log tails, health outputs, details, outputs.
    Evidence,
    /// An alert's samples or anomalies.
    Alert,
}

impl Limit {
    /// Every limit, in order.
    pub const ALL: [Limit; 5] = [Limit::Containers, Limit::String, Limit::Labels, Limit::Evidence, Limit::Alert];

    /// Its name in `/metrics` and events.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Containers => "containers",
            Limit::String => "string",
            Limit::Labels => "labels",
            Limit::Evidence => "evidence",
            Limit::Alert => "alert",
        }
    }

    /// What it limits, for people.
    pub fn describe(self, limits: &IntakeLimits) -> String {
        match self {
            Limit::Containers => format!("more than {} containers", limits.containers_per_node),
            Limit::String => format!("strings longer than {} B", limits.string_bytes),
            Limit::Labels => format!(
                "labels over {} B (key {} B, value {} B)",
                limits.labels_bytes, limits.label_key_bytes, limits.label_value_bytes
            ),
            Limit::Evidence => format!("evidence (log tail, health outputs, details) over {} B", limits.evidence_bytes),
            Limit::Alert => format!(
                "alerts with more than {} samples or {} anomalies",
                limits.samples_per_alert, limits.anomalies_per_alert
            ),
        }
    }
}

/// What was cut, by limit: how many items (strings, labels, lines, containers) each cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cuts(BTreeMap<Limit, u64>);

impl Cuts {
    /// Counts `n` items cut by `limit`.
    pub fn add(&mut self, limit: Limit, n: u64) {
        if n > 0 {
            *self.0.entry(limit).or_default() += n;
        }
    }

    /// Whether nothing was cut.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each limit that cut something, with how many items it cut.
    pub fn iter(&self) -> impl Iterator<Item = (Limit, u64)> + '_ {
        self.0.iter().map(|(limit, n)| (*limit, *n))
    }

    /// The items `limit` cut.
    pub fn of(&self, limit: Limit) -> u64 {
        self.0.get(&limit).copied().unwrap_or(0)
    }
}

impl IntakeLimits {
    /// Cuts what in `body` is over a limit (but the containers per node, which the registry holds), in
    /// place, and says what it cut.
    pub fn bound(&self, body: &mut Body) -> Cuts {
        let mut cuts = Cuts::default();
        match body {
            Body::Hello(hello) => {
                for s in [&mut hello.node_name, &mut hello.version, &mut hello.stream_id, &mut hello.hostname] {
                    self.string(s, &mut cuts);
                }
            }
            Body::Heartbeat(_) => {}
            Body::Snapshot(snapshot) => {
                for container in &mut snapshot.containers {
                    self.container(container, &mut cuts);
                }
            }
            Body::HostAlert(alert) => self.string(&mut alert.path, &mut cuts),
            Body::Notice(notice) => {
                self.string(&mut notice.container_id, &mut cuts);
                self.string(&mut notice.container_name, &mut cuts);
                self.evidence(&mut notice.detail, &mut cuts);
            }
            Body::ContainerEvent(event) => {
                if let Some(container) = event.container.as_mut() {
                    self.container(container, &mut cuts);
                }
            }
            Body::HealthAlert(alert) => {
                if let Some(container) = alert.container.as_mut() {
                    self.container(container, &mut cuts);
                }
                if let Some(metrics) = alert.metrics.as_mut() {
                    self.string(&mut metrics.container_id, &mut cuts);
                }
                if alert.recent.len() > self.samples_per_alert {
                    let over = alert.recent.len() - self.samples_per_alert;
                    alert.recent.drain(..over);
                    cuts.add(Limit::Alert, over as u64);
                }
                for sample in &mut alert.recent {
                    self.string(&mut sample.container_id, &mut cuts);
                }
                if alert.anomalies.len() > self.anomalies_per_alert {
                    cuts.add(Limit::Alert, (alert.anomalies.len() - self.anomalies_per_alert) as u64);
                    alert.anomalies.truncate(self.anomalies_per_alert);
                }
                self.lines(&mut alert.log_tail, &mut cuts);
                self.lines(&mut alert.health_outputs, &mut cuts);
                self.string(&mut alert.local_command_id, &mut cuts);
            }
            Body::Resolved(resolved) => {
                if let Some(container) = resolved.container.as_mut() {
                    self.container(container, &mut cuts);
                }
                if resolved.cleared.len() > self.anomalies_per_alert {
                    cuts.add(Limit::Alert, (resolved.cleared.len() - self.anomalies_per_alert) as u64);
                    resolved.cleared.truncate(self.anomalies_per_alert);
                }
            }
            Body::Metrics(report) => {
                for sample in &mut report.samples {
                    self.string(&mut sample.container_id, &mut cuts);
                }
                // Samples of containers the registry does not keep are ignored there; more samples than
                // containers kept cannot be anything but repeats.
                if report.samples.len() > self.containers_per_node {
                    cuts.add(Limit::Containers, (report.samples.len() - self.containers_per_node) as u64);
                    report.samples.truncate(self.containers_per_node);
                }
            }
            Body::CommandResult(result) => {
                self.string(&mut result.command_id, &mut cuts);
                self.string(&mut result.container_id, &mut cuts);
                self.evidence(&mut result.detail, &mut cuts);
                self.evidence(&mut result.output, &mut cuts);
            }
        }
        cuts
    }

    fn container(&self, container: &mut pb::ContainerState, cuts: &mut Cuts) {
        for s in [&mut container.id, &mut container.name, &mut container.image, &mut container.restart_policy] {
            self.string(s, cuts);
        }
        let over =
            container.labels.iter().any(|(k, v)| k.len() > self.label_key_bytes || v.len() > self.label_value_bytes)
                || container.labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > self.labels_bytes;
        if !over {
            return;
        }
        // In key order, so that what is kept does not depend on the map's order.
        let mut labels: Vec<(String, String)> = std::mem::take(&mut container.labels).into_iter().collect();
        labels.sort();
        let mut total = 0;
        for (key, mut value) in labels {
            if key.len() > self.label_key_bytes {
                cuts.add(Limit::Labels, 1);
                continue;
            }
            if value.len() > self.label_value_bytes {
                cut(&mut value, self.label_value_bytes);
                cuts.add(Limit::Labels, 1);
            }
            if total + key.len() + value.len() > self.labels_bytes {
                cuts.add(Limit::Labels, 1);
                continue;
            }
            total += key.len() + value.len();
            container.labels.insert(key, value);
        }
    }

    fn string(&self, s: &mut String, cuts: &mut Cuts) {
        if s.len() > self.string_bytes {
            cut(s, self.string_bytes);
            cuts.add(Limit::String, 1);
        }
    }

    fn evidence(&self, s: &mut String, cuts: &mut Cuts) {
        if s.len() > self.evidence_bytes {
            cut(s, self.evidence_bytes);
            cuts.add(Limit::Evidence, 1);
        }
    }

    /// Keeps the newest lines within the evidence limit (each line cut to it too), with a first line that
    /// says what was left out.
    fn lines(&self, lines: &mut Vec<String>, cuts: &mut Cuts) {
        let total: usize = lines.iter().map(String::len).sum();
        if total <= self.evidence_bytes {
            return;
        }
        let mut kept = Vec::new();
        let mut size = MARKER_MAX;
        let mut left_out = 0usize;
        for mut line in std::mem::take(lines).into_iter().rev() {
            if line.len() > self.evidence_bytes / 2 {
                left_out += line.len();
                cut(&mut line, self.evidence_bytes / 2);
                left_out -= line.len();
            }
            if size + line.len() > self.evidence_bytes {
                left_out += line.len();
                continue;
            }
            size += line.len();
            kept.push(line);
        }
        kept.push(marker(left_out));
        kept.reverse();
        *lines = kept;
        cuts.add(Limit::Evidence, 1);
    }
}

/// The longest marker.
const MARKER_MAX: usize = 32;

fn marker(bytes: usize) -> String {
    format!("…[cut {bytes} B]")
}

/// Cuts `s` to at most `max` bytes, the marker included, on a character boundary.
fn cut(s: &mut String, max: usize) {
    let removed_at_least = s.len().saturating_sub(max);
    let keep = max.saturating_sub(MARKER_MAX);
    let mut end = keep.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let removed = (s.len() - end).max(removed_at_least);
    s.truncate(end);
    s.push_str(&marker(removed));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> IntakeLimits {
        IntakeLimits {
            containers_per_node: 3,
            string_bytes: 64,
            label_key_bytes: 40,
            label_value_bytes: 48,
            labels_bytes: 120,
            evidence_bytes: 100,
            samples_per_alert: 2,
            anomalies_per_alert: 1,
        }
    }

    #[test]
    fn a_long_string_is_cut_on_a_character_boundary_with_a_marker_that_says_how_much() {
        let mut cuts = Cuts::default();
        let mut s = "é".repeat(100);
        small().string(&mut s, &mut cuts);
        assert!(s.len() <= 64, "{s}");
        assert!(s.ends_with("…[cut 168 B]"), "{s}");
        assert_eq!(cuts.of(Limit::String), 1);
        let mut short = "web".to_owned();
        small().string(&mut short, &mut cuts);
        assert_eq!((short.as_str(), cuts.of(Limit::String)), ("web", 1), "what is within the limit stays");
    }

    #[test]
    fn labels_over_their_limits_are_cut_or_left_out() {
        let mut container = pb::ContainerState {
            labels: [
                ("a".repeat(41), "x".into()),
                ("big".into(), "v".repeat(4_500_000)),
                ("c1".into(), "y".repeat(40)),
                ("c2".into(), "z".repeat(40)),
                ("c3".into(), "w".repeat(40)),
            ]
            .into(),
            ..Default::default()
        };
        let mut cuts = Cuts::default();
        small().container(&mut container, &mut cuts);
        let total: usize = container.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(total <= 120, "{total}");
        assert!(!container.labels.contains_key(&"a".repeat(41)), "a long key leaves its label out");
        assert!(container.labels["big"].ends_with("…[cut 4499984 B]"), "{}", container.labels["big"]);
        assert!(container.labels.contains_key("c1") && !container.labels.contains_key("c3"));
        assert_eq!(cuts.of(Limit::Labels), 4, "the long key, the long value, the two beyond the total");
    }

    #[test]
    fn a_long_log_tail_keeps_its_newest_lines_after_a_marker() {
        let mut alert = Body::HealthAlert(pb::HealthAlert {
            log_tail: (0..20).map(|i| format!("line {i:02}")).collect(),
            recent: vec![pb::ContainerMetrics::default(); 5],
            anomalies: vec![pb::Anomaly::default(); 3],
            ..Default::default()
        });
        let cuts = small().bound(&mut alert);
        let Body::HealthAlert(alert) = alert else { unreachable!() };
        assert!(alert.log_tail[0].starts_with("…[cut "), "{:?}", alert.log_tail);
        assert_eq!(alert.log_tail.last().unwrap(), "line 19");
        assert!(alert.log_tail.iter().map(String::len).sum::<usize>() <= 100);
        assert_eq!((alert.recent.len(), alert.anomalies.len()), (2, 1));
        assert_eq!((cuts.of(Limit::Evidence), cuts.of(Limit::Alert)), (1, 5));
    }

    #[test]
    fn a_well_behaved_nodes_message_is_left_as_it_is() {
        let container = pb::ContainerState {
            id: "0".repeat(64),
            name: "web".into(),
            image: "registry.example/app:1".into(),
            labels: [("com.docker.compose.service".into(), "web".into())].into(),
            ..Default::default()
        };
        let mut body = Body::Snapshot(pb::ContainerSnapshot { containers: vec![container], ..Default::default() });
        let before = body.clone();
        assert!(IntakeLimits::default().bound(&mut body).is_empty());
        assert_eq!(body, before);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn text(max: usize) -> impl Strategy<Value = String> {
            proptest::collection::vec(any::<char>(), 0..max).prop_map(|chars| chars.into_iter().collect())
        }

        fn state() -> impl Strategy<Value = pb::ContainerState> {
            (text(300), text(300), text(300), proptest::collection::btree_map(text(80), text(200), 0..12)).prop_map(
                |(id, name, image, labels)| pb::ContainerState {
                    id,
                    name,
                    image,
                    labels: labels.into_iter().collect(),
                    ..Default::default()
                },
            )
        }

        fn alert() -> impl Strategy<Value = pb::HealthAlert> {
            (
                state(),
                proptest::collection::vec(text(150), 0..8),
                proptest::collection::vec(text(150), 0..4),
                0..6usize,
                0..5usize,
            )
                .prop_map(|(container, log_tail, health_outputs, samples, anomalies)| pb::HealthAlert {
                    container: Some(container),
                    log_tail,
                    health_outputs,
                    recent: vec![pb::ContainerMetrics::default(); samples],
                    anomalies: vec![pb::Anomaly::default(); anomalies],
                    ..Default::default()
                })
        }

        fn within(limits: &IntakeLimits, state: &pb::ContainerState) -> Result<(), TestCaseError> {
            for s in [&state.id, &state.name, &state.image, &state.restart_policy] {
                prop_assert!(s.len() <= limits.string_bytes, "{} > {}", s.len(), limits.string_bytes);
            }
            let mut total = 0;
            for (k, v) in &state.labels {
                prop_assert!(k.len() <= limits.label_key_bytes && v.len() <= limits.label_value_bytes);
                total += k.len() + v.len();
            }
            prop_assert!(total <= limits.labels_bytes);
            Ok(())
        }

        proptest! {
            /// Whatever a node sends (any text, any size, any labels), what is kept is within every limit,
            /// and bounding it again cuts nothing more.
            #[test]
            fn what_a_node_sends_is_kept_within_the_limits(alert in alert(), snapshot in proptest::collection::vec(state(), 0..6)) {
                let limits = small();
                let mut body = Body::HealthAlert(alert);
                limits.bound(&mut body);
                let Body::HealthAlert(kept) = &body else { unreachable!() };
                within(&limits, kept.container.as_ref().unwrap())?;
                prop_assert!(kept.log_tail.iter().map(String::len).sum::<usize>() <= limits.evidence_bytes);
                prop_assert!(kept.health_outputs.iter().map(String::len).sum::<usize>() <= limits.evidence_bytes);
                prop_assert!(kept.recent.len() <= limits.samples_per_alert);
                prop_assert!(kept.anomalies.len() <= limits.anomalies_per_alert);
                let again = limits.bound(&mut body);
                prop_assert!(again.is_empty(), "bounded twice: {again:?}");

                let mut body = Body::Snapshot(pb::ContainerSnapshot { containers: snapshot, ..Default::default() });
                limits.bound(&mut body);
                let Body::Snapshot(kept) = &body else { unreachable!() };
                for state in &kept.containers {
                    within(&limits, state)?;
                }
            }
        }
    }
}
