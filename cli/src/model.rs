//! What the coordinator tells the CLI, as plain values: converted once from the wire types (`hemostat.v1`)
//! here, at the edge, and serialised with stable field names for `-o json`.
//!
//! Conventions of the JSON form: enum values are lower-case names without their prefix (`health_alert`,
//! `success`, `high_cpu`); times are RFC 3339 UTC strings with milliseconds; a value the coordinator did
//! not give (an event without an action, a container without metrics) is `null`, never an empty string or
//! a made-up zero.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use hemostat_proto::v1 as pb;
use serde::Serialize;

/// A moment in time, shown as RFC 3339 UTC: to the second for people ([`fmt::Display`]), to the
/// millisecond in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcTime(pub SystemTime);

impl UtcTime {
    fn from_proto(ts: Option<prost_types::Timestamp>) -> Option<Self> {
        ts.map(|ts| UtcTime(hemostat_proto::timestamp::from_proto(&ts)))
    }

    /// The time `rfc3339` names (UTC, `Z` suffix; seconds or finer), e.g. `2026-11-28T14:17:05Z`.
    pub fn parse(rfc3339: &str) -> Option<Self> {
        humantime::parse_rfc3339(rfc3339).ok().map(UtcTime)
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.0))
    }
}

impl Serialize for UtcTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
}

/// The lower-case name of a wire enum value without its prefix (`EVENT_TYPE_HEALTH_ALERT` →
/// `health_alert`); `None` for UNSPECIFIED, `unknown_<n>` for a value newer than this CLI.
fn enum_name(name: Option<&str>, raw: i32, prefix: &str) -> Option<String> {
    match name {
        Some(name) => {
            let name = name.strip_prefix(prefix).unwrap_or(name);
            (name != "UNSPECIFIED").then(|| name.to_ascii_lowercase())
        }
        None => Some(format!("unknown_{raw}")),
    }
}

fn event_type_name(raw: i32) -> Option<String> {
    enum_name(pb::EventType::try_from(raw).ok().map(|t| t.as_str_name()), raw, "EVENT_TYPE_")
}

fn action_name(raw: i32) -> Option<String> {
    enum_name(pb::Action::try_from(raw).ok().map(|a| a.as_str_name()), raw, "ACTION_")
}

fn outcome_name(raw: i32) -> Option<String> {
    enum_name(pb::Outcome::try_from(raw).ok().map(|o| o.as_str_name()), raw, "OUTCOME_")
}

fn status_name(raw: i32) -> Option<String> {
    enum_name(pb::ContainerStatus::try_from(raw).ok().map(|s| s.as_str_name()), raw, "CONTAINER_STATUS_")
}

fn health_name(raw: i32) -> Option<String> {
    enum_name(pb::HealthStatus::try_from(raw).ok().map(|h| h.as_str_name()), raw, "HEALTH_STATUS_")
}

/// `None` for the empty string (proto3 has no "absent" for strings).
fn text(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// A node, as the coordinator sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    /// The node's name, from its certificate.
    pub name: String,
    /// Whether it has a session open with the coordinator.
    pub connected: bool,
    /// The network address it connected from.
    pub address: Option<String>,
    /// Its software version.
    pub version: Option<String>,
    /// The Docker host's name.
    pub hostname: Option<String>,
    /// When its current (or last) session opened.
    pub connected_at: Option<UtcTime>,
    /// When it was last heard from.
    pub last_seen: Option<UtcTime>,
    /// Messages waiting in its spool at its last heartbeat.
    pub spool_depth: u64,
    /// Messages it dropped from a full spool since it started.
    pub spool_dropped: u64,
}

impl From<pb::Node> for Node {
    fn from(n: pb::Node) -> Self {
        Node {
            name: n.name,
            connected: n.connected,
            address: text(n.address),
            version: text(n.version),
            hostname: text(n.hostname),
            connected_at: UtcTime::from_proto(n.connected_at),
            last_seen: UtcTime::from_proto(n.last_seen),
            spool_depth: n.spool_depth,
            spool_dropped: n.spool_dropped,
        }
    }
}

/// An anomaly a node detected.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Anomaly {
    /// What kind: `high_cpu`, `high_memory`, `unhealthy`, `non_zero_exit`, `oom_killed`,
    /// `excessive_restarts`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// How bad: `medium`, `high`, `critical`.
    pub severity: Option<String>,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The value seen.
    pub actual: f64,
}

impl From<pb::Anomaly> for Anomaly {
    fn from(a: pb::Anomaly) -> Self {
        Anomaly {
            kind: enum_name(
                pb::AnomalyType::try_from(a.r#type).ok().map(|t| t.as_str_name()),
                a.r#type,
                "ANOMALY_TYPE_",
            ),
            severity: enum_name(
                pb::Severity::try_from(a.severity).ok().map(|s| s.as_str_name()),
                a.severity,
                "SEVERITY_",
            ),
            threshold: a.threshold,
            actual: a.actual,
        }
    }
}

/// One metrics sample of a container, with the container's state when it was taken.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// The figures (the docker CLI's formulas: CPU 100 % = one core), the shared vocabulary's sample.
    #[serde(flatten)]
    pub figures: hemostat_model::Metrics,
    /// Lifecycle state at sampling time.
    pub status: Option<String>,
    /// Health at sampling time.
    pub health: Option<String>,
    /// Exit code of the last run.
    pub exit_code: i64,
}

impl From<pb::ContainerMetrics> for Metrics {
    fn from(m: pb::ContainerMetrics) -> Self {
        Metrics {
            figures: hemostat_model::Metrics::from(&m),
            status: status_name(m.status),
            health: health_name(m.health),
            exit_code: m.exit_code,
        }
    }
}

/// A container on a node, with its latest state, metrics and anomalies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Container {
    /// The node it runs on.
    pub node: String,
    /// Docker's full container id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The image it was created from.
    pub image: Option<String>,
    /// Lifecycle state: `running`, `exited`, ...
    pub status: Option<String>,
    /// Health check state: `none`, `starting`, `healthy`, `unhealthy`.
    pub health: Option<String>,
    /// Exit code of the last run (meaningful when exited).
    pub exit_code: i64,
    /// Docker's restart policy name.
    pub restart_policy: Option<String>,
    /// When it last started.
    pub started_at: Option<UtcTime>,
    /// When its node last reported on it.
    pub updated_at: Option<UtcTime>,
    /// Its memory limit, bytes; `null` for none.
    pub memory_limit_bytes: Option<u64>,
    /// Its CPU limit, in CPUs; `null` for none.
    pub cpu_limit: Option<f64>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its latest metrics sample.
    pub metrics: Option<Metrics>,
    /// Its anomalies now.
    pub anomalies: Vec<Anomaly>,
    /// Its running episode, `null` when none.
    pub episode: Option<Episode>,
    /// In `hemostat containers`: its cooldown and circuit breaker (`null` when the coordinator did not
    /// say: `hemostat container` has them in its own `budget`).
    pub budget: Option<Budget>,
    /// In `hemostat containers`: the silence covering it, if any.
    pub silence: Option<Silence>,
}

/// A container's running episode: a condition from its first alert until it clears, and what analysis has
/// made of it so far (decided at most once).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Episode {
    /// When the coordinator received its first alert.
    pub first_seen: Option<UtcTime>,
    /// The conditions in it now: `high_cpu`, ...
    pub anomalies: Vec<String>,
    /// Since when the value has been above its threshold, per the samples.
    pub above_since: Option<UtcTime>,
    /// How long it must stay above to be sustained.
    pub sustain_seconds: u32,
    /// When it was decided; `null` while it is watched.
    pub decided_at: Option<UtcTime>,
    /// The rule that decided it, or that its latest evaluation came to.
    pub rule: Option<String>,
    /// That rule's reason.
    pub reason: Option<String>,
    /// The action decided: `restart`, ...; `null` for none.
    pub action: Option<String>,
}

impl From<pb::Episode> for Episode {
    fn from(e: pb::Episode) -> Self {
        Episode {
            first_seen: UtcTime::from_proto(e.first_seen),
            anomalies: e
                .anomalies
                .iter()
                .filter_map(|t| {
                    enum_name(pb::AnomalyType::try_from(*t).ok().map(|t| t.as_str_name()), *t, "ANOMALY_TYPE_")
                })
                .collect(),
            above_since: UtcTime::from_proto(e.above_since),
            sustain_seconds: e.sustain_seconds,
            decided_at: UtcTime::from_proto(e.decided_at),
            rule: text(e.rule),
            reason: text(e.reason),
            action: action_name(e.action),
        }
    }
}

impl Container {
    /// What holds an automatic action on it back now, for people: `cooldown 59m`, `quarantined (circuit open)`,
    /// `3 of 3 attempts`, `silenced 1h` (empty when nothing does, or when the coordinator did not say).
    pub fn holds(&self, now: SystemTime) -> Vec<String> {
        let mut holds = Vec::new();
        if let Some(b) = &self.budget {
            if b.circuit.as_deref() == Some("open") {
                holds.push("quarantined (circuit open)".to_owned());
            }
            if b.max_attempts > 0 && b.attempts_in_window >= b.max_attempts {
                holds.push(format!("{} of {} attempts", b.attempts_in_window, b.max_attempts));
            }
            if b.cooldown_remaining_seconds > 0 {
                holds.push(format!("cooldown {}", short_duration(b.cooldown_remaining_seconds)));
            }
        }
        if let Some(s) = &self.silence {
            let left = s.expires_at.and_then(|t| t.0.duration_since(now).ok()).map(|d| d.as_secs());
            holds.push(match left {
                Some(left) => format!("silenced {}", short_duration(left.max(1))),
                None => "silenced".to_owned(),
            });
        }
        holds
    }
}

/// A duration in its largest unit, rounded up: `45s`, `59m`, `2h`, `3d` (59 min 57 s is `1h`).
pub fn short_duration(seconds: u64) -> String {
    let (minutes, hours) = (seconds.div_ceil(60), seconds.div_ceil(3600));
    if seconds < 60 {
        format!("{seconds}s")
    } else if minutes < 60 {
        format!("{minutes}m")
    } else if hours < 24 {
        format!("{hours}h")
    } else {
        format!("{}d", seconds.div_ceil(86_400))
    }
}

impl From<pb::Container> for Container {
    fn from(c: pb::Container) -> Self {
        let state = c.state.unwrap_or_default();
        Container {
            node: c.node,
            id: state.id,
            name: state.name,
            image: text(state.image),
            status: status_name(state.status),
            health: health_name(state.health),
            exit_code: state.exit_code,
            restart_policy: text(state.restart_policy),
            started_at: UtcTime::from_proto(state.started_at),
            updated_at: UtcTime::from_proto(c.updated_at),
            memory_limit_bytes: (state.memory_limit_bytes > 0).then_some(state.memory_limit_bytes),
            cpu_limit: (state.cpu_limit > 0.0).then_some(state.cpu_limit),
            labels: state.labels.into_iter().collect(),
            metrics: c.metrics.map(Metrics::from),
            anomalies: c.anomalies.into_iter().map(Anomaly::from).collect(),
            episode: c.episode.map(Episode::from),
            budget: c.budget.map(Budget::from),
            silence: c.silence.map(Silence::from),
        }
    }
}

/// A container's remediation budget: its cooldown and circuit breaker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budget {
    /// The key budgets are kept under.
    pub key: String,
    /// Seconds until the cooldown ends; 0 when none runs.
    pub cooldown_remaining_seconds: u64,
    /// Attempts within the rolling hour.
    pub attempts_in_window: u32,
    /// The most attempts allowed in the hour.
    pub max_attempts: u32,
    /// Verifications failed in a row.
    pub consecutive_failures: u32,
    /// The circuit breaker: `closed`, `open` or `half_open`.
    pub circuit: Option<String>,
    /// When open: seconds until a trial is allowed.
    pub circuit_retry_seconds: u64,
    /// When the container was last acted on.
    pub last_action: Option<UtcTime>,
    /// Quarantined: the breaker is open; no automatic action until `hemostat release`.
    pub quarantined: bool,
    /// The restart policy: `cooldown` or `backoff`.
    pub restart_policy: Option<String>,
}

impl From<pb::BudgetStatus> for Budget {
    fn from(b: pb::BudgetStatus) -> Self {
        Budget {
            key: b.key,
            cooldown_remaining_seconds: b.cooldown_remaining_seconds,
            attempts_in_window: b.attempts_in_window,
            max_attempts: b.max_attempts,
            consecutive_failures: b.consecutive_failures,
            circuit: text(b.circuit),
            circuit_retry_seconds: b.circuit_retry_seconds,
            last_action: UtcTime::from_proto(b.last_action),
            quarantined: b.quarantined,
            restart_policy: text(b.restart_policy),
        }
    }
}

/// A silence: no actions on, and no notifications about, a container or a node until it expires.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// The node silenced, or the node of the container silenced.
    pub node: String,
    /// The container's name; `null` when the whole node is silenced.
    pub container: Option<String>,
    /// Why, in the operator's words.
    pub reason: String,
    /// Who created it.
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: Option<UtcTime>,
    /// When it ends.
    pub expires_at: Option<UtcTime>,
}

impl From<pb::Silence> for Silence {
    fn from(s: pb::Silence) -> Self {
        Silence {
            id: s.id,
            node: s.node,
            container: text(s.container),
            reason: s.reason,
            created_by: text(s.created_by),
            created_at: UtcTime::from_proto(s.created_at),
            expires_at: UtcTime::from_proto(s.expires_at),
        }
    }
}

/// One entry of the event log (or of the audit log, which has the same form).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Stable, ordered id; `events --after <id>` reads on from it.
    pub id: String,
    /// When it was recorded.
    pub time: Option<UtcTime>,
    /// What kind of event: `health_alert`, `remediation_needed`, `false_alarm`, `remediation_complete`,
    /// `rejected`, `resolved`, `storm`, `spool_overflow`, `node_lost`, `node_recovered`,
    /// `operator_action`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The node.
    pub node: Option<String>,
    /// The container's id.
    pub container_id: Option<String>,
    /// The container's name.
    pub container: Option<String>,
    /// The action decided or executed: `none`, `restart`, `exec`, `cleanup`, `scale_up`.
    pub action: Option<String>,
    /// The arguments sent to the node with the action.
    pub arguments: Vec<String>,
    /// Why, in words for people.
    pub reason: Option<String>,
    /// For `remediation_complete`: `success`, `failed`, `refused`, `not_applicable`.
    pub outcome: Option<String>,
    /// For `rejected`: the rejection's code (`cooldown_active`, `circuit_open`, ...).
    pub rejection: Option<String>,
    /// For decisions: confidence from 0 to 1.
    pub confidence: Option<f64>,
    /// For decisions: `rules`, `ai` or `operator`.
    pub analysis_method: Option<String>,
    /// For decisions: the rule's name, the model's, or the operator's.
    pub decided_by: Option<String>,
    /// The command's id, linking the needed, rejected and complete events of one action.
    pub command_id: Option<String>,
    /// For alerts about an exit: the exit code.
    pub exit_code: Option<i64>,
    /// For `health_alert`: the anomalies; for `resolved`: those that cleared.
    pub anomalies: Vec<Anomaly>,
    /// For `health_alert`: when the node observed what it reports.
    pub observed_at: Option<UtcTime>,
    /// For decisions: the evidence, a JSON document as text.
    pub evidence: Option<String>,
    /// For a diagnostic command's `remediation_complete`: its output.
    pub output: Option<String>,
    /// For `remediation_complete`: how long the action took on the node.
    pub duration_ms: Option<u64>,
}

impl From<pb::Event> for Event {
    fn from(e: pb::Event) -> Self {
        let decision = !e.analysis_method.is_empty() || e.confidence != 0.0;
        let exit_anomaly = [pb::AnomalyType::NonZeroExit as i32, pb::AnomalyType::OomKilled as i32];
        let exit = e.exit_code != 0 || e.anomalies.iter().any(|a| exit_anomaly.contains(&a.r#type));
        Event {
            id: e.id,
            time: UtcTime::from_proto(e.time),
            kind: event_type_name(e.r#type),
            node: text(e.node),
            container_id: text(e.container_id),
            container: text(e.container_name),
            action: action_name(e.action),
            arguments: e.arguments,
            reason: text(e.reason),
            outcome: outcome_name(e.outcome),
            rejection: text(e.rejection),
            confidence: decision.then_some(e.confidence),
            analysis_method: text(e.analysis_method),
            decided_by: text(e.decided_by),
            command_id: text(e.command_id),
            exit_code: exit.then_some(e.exit_code),
            anomalies: e.anomalies.into_iter().map(Anomaly::from).collect(),
            observed_at: UtcTime::from_proto(e.observed_at),
            evidence: text(e.evidence),
            output: text(e.output),
            duration_ms: (e.duration_ms > 0 || e.r#type == pb::EventType::RemediationComplete as i32)
                .then_some(e.duration_ms),
        }
    }
}

/// Everything about one container: `hemostat container <node>/<name>`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContainerDetail {
    /// The container, with its latest state, metrics and anomalies.
    pub container: Container,
    /// Its recent metrics samples, oldest first.
    pub recent_metrics: Vec<Metrics>,
    /// Its cooldown and circuit breaker.
    pub budget: Option<Budget>,
    /// The silence covering it, if any.
    pub silence: Option<Silence>,
    /// Its most recent events, oldest first.
    pub recent_events: Vec<Event>,
    /// Its effective remediation policy, each value with where it came from.
    pub policy: Vec<PolicyValue>,
}

/// One value of a container's effective remediation policy and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyValue {
    /// `cooldown`, `max_per_hour`, `restart_policy`, `stop_timeout`, `sustain`, `cpu_threshold`,
    /// `memory_threshold`.
    pub name: String,
    /// The value (`5s`, `3`, `backoff`, `85%`); `None` when only the node knows it.
    pub value: Option<String>,
    /// Where it came from: `default`, `environment RESPONDER_COOLDOWN_SECONDS`, `label hemostat.cooldown`,
    /// `node setting THRESHOLD_CPU_PERCENT`, ….
    pub source: String,
}

impl From<pb::PolicyValue> for PolicyValue {
    fn from(value: pb::PolicyValue) -> Self {
        let source = hemostat_model::policy::describe_source(&value);
        PolicyValue { name: value.name, value: text(value.value), source }
    }
}

impl ContainerDetail {
    /// From the wire response; `node` is the one asked about, in case the response leaves it out.
    pub fn from_proto(response: pb::GetContainerResponse, node: &str) -> Self {
        let mut container = Container::from(response.container.unwrap_or_default());
        if container.node.is_empty() {
            container.node = node.to_owned();
        }
        ContainerDetail {
            container,
            recent_metrics: response.recent_metrics.into_iter().map(Metrics::from).collect(),
            budget: response.budget.map(Budget::from),
            silence: response.silence.map(Silence::from),
            recent_events: response.recent_events.into_iter().map(Event::from).collect(),
            policy: response.policy.into_iter().map(PolicyValue::from).collect(),
        }
    }
}

/// Whether the fleet is in dry-run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DryRun {
    /// Dry-run on (decisions recorded, nothing executed).
    pub enabled: bool,
    /// What decides: `configuration` (RESPONDER_DRY_RUN) or `operator` (set at runtime).
    pub source: Option<String>,
}

impl From<pb::GetDryRunResponse> for DryRun {
    fn from(r: pb::GetDryRunResponse) -> Self {
        DryRun { enabled: r.enabled, source: text(r.source) }
    }
}

/// The answer to `dry-run on|off`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DryRunChange {
    /// Whether the fleet is in dry-run now.
    pub enabled: bool,
    /// Whether it was before.
    pub previous: bool,
}

impl From<pb::SetDryRunResponse> for DryRunChange {
    fn from(r: pb::SetDryRunResponse) -> Self {
        DryRunChange { enabled: r.enabled, previous: r.previous }
    }
}

/// A command the coordinator accepted: a manual action or an approval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accepted {
    /// The command's id; the `remediation_complete` event carrying it tells the result.
    pub command_id: Option<String>,
    /// What happened, for people.
    pub detail: String,
}

impl From<pb::TriggerActionResponse> for Accepted {
    fn from(r: pb::TriggerActionResponse) -> Self {
        Accepted { command_id: text(r.command_id), detail: r.detail }
    }
}

impl From<pb::ApproveActionResponse> for Accepted {
    fn from(r: pb::ApproveActionResponse) -> Self {
        Accepted { command_id: text(r.command_id), detail: r.detail }
    }
}

/// A manual action and, with `--wait`, how it ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionReport {
    /// The command's id.
    pub command_id: Option<String>,
    /// What the coordinator said when it accepted the action.
    pub detail: String,
    /// The event that ended it (`remediation_complete`, or `rejected`); `null` without `--wait`.
    pub result: Option<Event>,
}

/// The answer to `end-storm`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StormEnd {
    /// The storm scopes that were cleared (`fleet`, `node/<name>`); empty when no storm was in force.
    pub cleared: Vec<String>,
}

impl From<pb::EndStormResponse> for StormEnd {
    fn from(r: pb::EndStormResponse) -> Self {
        StormEnd { cleared: r.cleared }
    }
}

/// The answer to `release`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Release {
    /// The budget key released.
    pub key: String,
    /// Whether the container was quarantined before.
    pub was_quarantined: bool,
    /// What its budget held.
    pub detail: String,
}

impl From<pb::ReleaseContainerResponse> for Release {
    fn from(r: pb::ReleaseContainerResponse) -> Self {
        Release { key: r.key, was_quarantined: r.was_quarantined, detail: r.detail }
    }
}

/// What a command is about: a node, or a container on a node, written `node` or `node/container`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub node: String,
    /// The container's name (or id); `None` for the whole node.
    pub container: Option<String>,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (node, container) = match text.split_once('/') {
            Some((node, container)) => (node, Some(container)),
            None => (text, None),
        };
        if node.is_empty() || container.is_some_and(|c| c.is_empty() || c.contains('/')) {
            return Err(format!("{text:?} is not <node> or <node>/<container>"));
        }
        Ok(Target { node: node.to_owned(), container: container.map(str::to_owned) })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.container {
            Some(container) => write!(f, "{}/{container}", self.node),
            None => write!(f, "{}", self.node),
        }
    }
}

/// A container on a node, written `node/container`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerTarget {
    /// The node.
    pub node: String,
    /// The container's name (or id).
    pub container: String,
}

impl FromStr for ContainerTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.parse::<Target>() {
            Ok(Target { node, container: Some(container) }) => Ok(ContainerTarget { node, container }),
            _ => Err(format!("{text:?} is not <node>/<container>")),
        }
    }
}

impl fmt::Display for ContainerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.container)
    }
}

/// A container as an operator names it: `node/container`, or only `container` when one node has it
/// (resolved with [`ContainerRef::resolve_in`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// The node, when given.
    pub node: Option<String>,
    /// The container's name (or id).
    pub container: String,
}

impl FromStr for ContainerRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.parse::<Target>() {
            Ok(Target { node, container: Some(container) }) => Ok(ContainerRef { node: Some(node), container }),
            Ok(Target { node, container: None }) => Ok(ContainerRef { node: None, container: node }),
            Err(_) => Err(format!("{text:?} is not <container> or <node>/<container>")),
        }
    }
}

impl ContainerRef {
    /// The container on its node: as given with a node; else the one container of `containers` (the
    /// fleet's) with this name, full id or id prefix of at least 12 characters. None, or one on more than
    /// one node, is an error for people (the candidates listed).
    pub fn resolve_in(&self, containers: &[Container]) -> Result<ContainerTarget, String> {
        if let Some(node) = &self.node {
            return Ok(ContainerTarget { node: node.clone(), container: self.container.clone() });
        }
        let ident = self.container.as_str();
        let by_name: Vec<&Container> = containers.iter().filter(|c| c.name == ident).collect();
        let found = if by_name.is_empty() {
            containers.iter().filter(|c| c.id == ident || (ident.len() >= 12 && c.id.starts_with(ident))).collect()
        } else {
            by_name
        };
        match found.as_slice() {
            [one] => Ok(ContainerTarget { node: one.node.clone(), container: one.name.clone() }),
            [] => Err(format!("no node has reported a container {ident:?} (see `hemostat containers`)")),
            many => {
                let candidates: Vec<String> = many.iter().map(|c| format!("{}/{}", c.node, c.name)).collect();
                Err(format!(
                    "{ident:?} is on more than one node; name it as <node>/<container>: {}",
                    candidates.join(", ")
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(node: &str, name: &str, id: &str) -> Container {
        let mut c = Container::from(pb::Container {
            node: node.into(),
            state: Some(pb::ContainerState { name: name.into(), id: id.into(), ..Default::default() }),
            ..Default::default()
        });
        c.node = node.into();
        c
    }

    #[test]
    fn a_bare_container_name_resolves_to_the_one_node_that_has_it() {
        let fleet = [
            container("a", "web", "1111111111111111aaaa"),
            container("a", "db", "2222222222222222bbbb"),
            container("b", "db", "3333333333333333cccc"),
        ];
        let web: ContainerRef = "web".parse().unwrap();
        assert_eq!(web.resolve_in(&fleet).unwrap().to_string(), "a/web");
        let by_id: ContainerRef = "333333333333".parse().unwrap();
        assert_eq!(by_id.resolve_in(&fleet).unwrap().to_string(), "b/db");
        let given: ContainerRef = "c/anything".parse().unwrap();
        assert_eq!(given.resolve_in(&fleet).unwrap().to_string(), "c/anything", "a node given is not checked here");

        let db: ContainerRef = "db".parse().unwrap();
        let error = db.resolve_in(&fleet).unwrap_err();
        assert!(error.contains("more than one node") && error.contains("a/db, b/db"), "{error}");
        let error = "cache".parse::<ContainerRef>().unwrap().resolve_in(&fleet).unwrap_err();
        assert!(error.contains("no node has reported a container \"cache\""), "{error}");
        let short_id = "3333".parse::<ContainerRef>().unwrap().resolve_in(&fleet).unwrap_err();
        assert!(short_id.contains("no node"), "an id prefix needs 12 characters: {short_id}");
        assert!("a/b/c".parse::<ContainerRef>().is_err());
    }

    #[test]
    fn holds_say_what_keeps_an_action_back() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let mut c = container("a", "web", "1");
        assert!(c.holds(now).is_empty(), "nothing said, nothing held");
        c.budget = Some(Budget {
            key: "a/web".into(),
            cooldown_remaining_seconds: 3_599,
            attempts_in_window: 3,
            max_attempts: 3,
            consecutive_failures: 3,
            circuit: Some("open".into()),
            circuit_retry_seconds: 60,
            last_action: None,
            quarantined: true,
            restart_policy: None,
        });
        c.silence = Some(Silence {
            id: "s".into(),
            node: "a".into(),
            container: None,
            reason: "r".into(),
            created_by: None,
            created_at: None,
            expires_at: Some(UtcTime(now + std::time::Duration::from_secs(7_000))),
        });
        assert_eq!(c.holds(now), ["quarantined (circuit open)", "3 of 3 attempts", "cooldown 1h", "silenced 2h"]);
        let shown = [45, 61, 3_540, 3_541, 86_400, 86_401].map(short_duration);
        assert_eq!(shown, ["45s", "2m", "59m", "1h", "1d", "2d"]);
    }

    #[test]
    fn targets_parse() {
        assert_eq!("vm".parse(), Ok(Target { node: "vm".into(), container: None }));
        assert_eq!("vm/web".parse(), Ok(Target { node: "vm".into(), container: Some("web".into()) }));
        for bad in ["", "/web", "vm/", "vm/a/b"] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?}");
        }
        assert!("vm".parse::<ContainerTarget>().is_err());
        assert_eq!("vm/web".parse::<ContainerTarget>().unwrap().to_string(), "vm/web");
    }

    #[test]
    fn wire_enums_become_lower_case_names() {
        let event = Event::from(pb::Event {
            r#type: pb::EventType::RemediationComplete as i32,
            outcome: pb::Outcome::NotApplicable as i32,
            action: 99,
            ..Default::default()
        });
        assert_eq!(event.kind.as_deref(), Some("remediation_complete"));
        assert_eq!(event.outcome.as_deref(), Some("not_applicable"));
        assert_eq!(event.action.as_deref(), Some("unknown_99"));
        assert_eq!(event.rejection, None);
        assert_eq!(event.confidence, None);
    }
}
