//! One notification: a stored event, with the decision behind it, where it happened (the container's
//! Compose project and service, links to the dashboard and the operator's Docker UI), and how it reads to
//! a person.
use std::collections::BTreeMap;

use crate::events::{Action, EventId, EventKind, EventRecord, Outcome, Rejection};

use super::escape;

/// What the analysis said when it decided an action: remembered from the `remediation_needed` event so that
/// the result (`remediation_complete`, `rejected`), whose record does not repeat it, can show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// The decision's confidence, 0 to 1.
    pub confidence: Option<f64>,
    /// `rules`, `ai`, `operator` or `local`.
    pub analysis_method: Option<String>,
    /// The rule's name, the model's, or the operator's.
    pub decided_by: Option<String>,
}

impl Decision {
    /// The decision fields of a record, if it has any.
    pub fn of(record: &EventRecord) -> Option<Self> {
        let decision = Decision {
            confidence: record.confidence,
            analysis_method: record.analysis_method.clone(),
            decided_by: record.decided_by.clone(),
        };
        (decision != Decision::default()).then_some(decision)
    }
}

/// The Compose project and service a container belongs to (its `com.docker.compose.*` labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compose {
    /// The project (`com.docker.compose.project`): untrusted text.
    pub project: String,
    /// The service (`com.docker.compose.service`): untrusted text.
    pub service: String,
}

impl Compose {
    /// The Compose project and service named by a container's labels, if it has both.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        let label = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
        Some(Compose { project: label("com.docker.compose.project")?, service: label("com.docker.compose.service")? })
    }
}

/// What the notifier adds to a stored record: where it happened and where to look.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    /// The container's Compose project and service, when it belongs to one.
    pub compose: Option<Compose>,
    /// The event in the dashboard (`HEMOSTAT_EXTERNAL_URL`).
    pub event_url: Option<String>,
    /// The container in the operator's Docker UI (`HEMOSTAT_CONTAINER_URL_TEMPLATE`).
    pub container_url: Option<String>,
}

/// An event to notify, as it was stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Its id in the event log (an operator finds it with `hemostat events`).
    pub id: EventId,
    /// The stored record.
    pub record: EventRecord,
    /// The decision that led to it, for results and rejections.
    pub decision: Option<Decision>,
    /// Where it happened and where to look.
    pub context: Context,
    /// A test notification (`hemostat notify test`), not an event of the fleet.
    pub test: bool,
}

/// How serious a notification is, for per-sink filters and Alertmanager's `severity` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something worked, or needed nothing.
    Info,
    /// Held back, or data lost on a node.
    Warning,
    /// An action failed, a node is lost, automatic actions stopped.
    Critical,
}

impl Severity {
    /// Its name in settings and labels: `info`, `warning`, `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity named `name` (as [`Severity::name`] writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        [Severity::Info, Severity::Warning, Severity::Critical].into_iter().find(|s| s.name() == name)
    }
}

/// How a notification should strike the reader; each sink maps it to its own colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tone {
    /// Nothing was done because nothing applied (grey).
    NotApplicable,
    /// Fixed, or back (green).
    Success,
    /// Analysis decided no action was needed (yellow).
    FalseAlarm,
    /// Held back by the policy or the node, or data lost on a node (orange).
    Warning,
    /// An action failed, or a node was lost (red).
    Failure,
    /// Automatic actions stopped fleet- or node-wide (dark red).
    Critical,
}

impl Notification {
    /// The notification of the event stored under `id`, with nothing added yet.
    pub fn new(id: EventId, record: EventRecord, decision: Option<Decision>) -> Self {
        Notification { id, record, decision, context: Context::default(), test: false }
    }

    /// How serious it is.
    pub fn severity(&self) -> Severity {
        match self.tone() {
            Tone::NotApplicable | Tone::Success | Tone::FalseAlarm => Severity::Info,
            Tone::Warning => Severity::Warning,
            Tone::Failure | Tone::Critical => Severity::Critical,
        }
    }

    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        self.record.kind
    }

    /// The decision's confidence: the record's own, else the remembered decision's.
    pub fn confidence(&self) -> Option<f64> {
        self.record.confidence.or_else(|| self.decision.as_ref().and_then(|d| d.confidence))
    }

    /// How it was decided (`rules`, `ai`, `operator`, `local`).
    pub fn analysis_method(&self) -> Option<&str> {
        self.record.analysis_method.as_deref().or_else(|| self.decision.as_ref()?.analysis_method.as_deref())
    }

    /// Who decided: the rule, the model, the operator.
    pub fn decided_by(&self) -> Option<&str> {
        self.record.decided_by.as_deref().or_else(|| self.decision.as_ref()?.decided_by.as_deref())
    }

    /// Whether this is a dry run's record of what would have been done.
    pub fn dry_run(&self) -> bool {
        self.record.rejection == Some(Rejection::DryRun)
    }

    /// When the coordinator recorded it, RFC 3339 in UTC to the second (`2026-11-28T14:17:05Z`).
    pub fn time_rfc3339(&self) -> String {
        crate::events::rfc3339(self.record.time_ms)
    }

    /// Whether this storm record is an operator ending the storms rather than one starting.
    fn storm_ended(&self) -> bool {
        self.record.decided_by.as_deref().is_some_and(|by| by.starts_with("operator:"))
    }

    /// How it should strike the reader.
    pub fn tone(&self) -> Tone {
        let record = &self.record;
        match record.kind {
            EventKind::RemediationComplete => match record.outcome {
                Some(Outcome::Success) => Tone::Success,
                Some(Outcome::Failed) | None => Tone::Failure,
                Some(Outcome::Refused) => Tone::Warning,
                Some(Outcome::NotApplicable) => Tone::NotApplicable,
            },
            EventKind::Rejected => Tone::Warning,
            EventKind::FalseAlarm => Tone::FalseAlarm,
            EventKind::Storm if self.storm_ended() => Tone::Success,
            EventKind::Storm | EventKind::StoreUnavailable => Tone::Critical,
            EventKind::NodeLost => Tone::Failure,
            EventKind::NodeRecovered => Tone::Success,
            EventKind::SpoolOverflow | EventKind::NodeNotice | EventKind::InputRefused => Tone::Warning,
            EventKind::HealthAlert | EventKind::RemediationNeeded | EventKind::Resolved | EventKind::OperatorAction => {
                Tone::NotApplicable
            }
        }
    }

    /// The result in one word or code: the outcome (`success`, ...) or the rejection code (`cooldown_active`).
    pub fn result(&self) -> Option<&'static str> {
        match (self.record.outcome, self.record.rejection) {
            (Some(outcome), _) => Some(outcome.name()),
            (None, Some(rejection)) => Some(rejection.code()),
            (None, None) => None,
        }
    }

    /// One line saying what happened, from the record's raw (untrusted) text: sinks escape it as they need.
    pub fn headline(&self) -> String {
        let r = &self.record;
        if self.test {
            return "Test notification: HemoStat can reach this channel".to_owned();
        }
        let (node, container) = (r.node.as_str(), r.container_name.as_str());
        let target = if container.is_empty() { format!("on {node}") } else { format!("{container} on {node}") };
        let action = r.action.map_or("action", Action::name);
        match r.kind {
            EventKind::RemediationComplete => {
                let result = match r.outcome {
                    Some(Outcome::Success) => "succeeded",
                    Some(Outcome::Failed) | None => "FAILED",
                    Some(Outcome::Refused) => "refused by the node",
                    Some(Outcome::NotApplicable) => "not applicable",
                };
                format!("{} of {target} {result}", capitalized(action))
            }
            EventKind::Rejected => match r.rejection {
                Some(Rejection::DryRun) => format!("Dry run: would {action} {target}; nothing was done"),
                Some(Rejection::AwaitingApproval) => {
                    format!("{} of {target} awaits an admin's approval", capitalized(action))
                }
                Some(Rejection::CircuitOpen) => {
                    format!("{} of {target} not done: budget exhausted (circuit open)", capitalized(action))
                }
                Some(rejection) => format!("{} of {target} not done: {}", capitalized(action), rejection.code()),
                None => format!("{} of {target} not done", capitalized(action)),
            },
            EventKind::FalseAlarm => format!("False alarm: {target}, no action needed"),
            EventKind::Storm if self.storm_ended() => "Storm over: automatic actions resumed".to_owned(),
            EventKind::Storm => "Storm: automatic actions stopped".to_owned(),
            EventKind::NodeLost => format!("Node {node} lost: no heartbeat"),
            EventKind::NodeRecovered => format!("Node {node} is back"),
            EventKind::SpoolOverflow => format!("Node {node} dropped reports: its spool was full"),
            EventKind::NodeNotice => format!("Node {node} notice: {}", r.reason),
            EventKind::InputRefused => format!("Coordinator refused part of what node {node} sent"),
            EventKind::HealthAlert => format!("Problem with {target}"),
            EventKind::RemediationNeeded => format!("{} of {target} decided", capitalized(action)),
            EventKind::Resolved => format!("Resolved: {target}"),
            EventKind::OperatorAction => format!("Operator action {target}"),
            EventKind::StoreUnavailable => "State store unavailable: nothing is acted on until it answers".to_owned(),
        }
    }
}

impl Notification {
    /// What a person needs to know besides the headline and the reason, in order, as (name, raw value)
    /// pairs, empty ones left out: host, container, Compose project and service, action, result, method,
    /// who decided, confidence, time, event. Values are untrusted: sinks escape them for their format.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let record = &self.record;
        let compose = self.context.compose.as_ref();
        [
            ("Host", record.node.clone()),
            ("Container", record.container_name.clone()),
            ("Compose project", compose.map(|c| c.project.clone()).unwrap_or_default()),
            ("Compose service", compose.map(|c| c.service.clone()).unwrap_or_default()),
            ("Action", record.action.map(|a| a.name().to_owned()).unwrap_or_default()),
            ("Result", self.result().unwrap_or_default().to_owned()),
            ("Method", self.analysis_method().unwrap_or_default().to_owned()),
            ("Decided by", self.decided_by().unwrap_or_default().to_owned()),
            ("Confidence", self.confidence().map(|c| format!("{c:.2}")).unwrap_or_default()),
            ("Time (UTC)", self.time_rfc3339()),
            ("Event", format!("{} {}", record.kind.name(), self.id)),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect()
    }

    /// The notification as plain text for people: the reason (cut to `max_reason` characters), then one
    /// `name: value` line per fact and link. For formats that show text as it is (email, ntfy, Gotify).
    pub fn plain_text(&self, max_reason: usize) -> String {
        let mut lines = vec![escape::plain(&self.record.reason, max_reason), String::new()];
        let links = [("Dashboard", &self.context.event_url), ("Docker UI", &self.context.container_url)];
        let links = links.into_iter().filter_map(|(name, url)| Some((name, url.clone()?)));
        for (name, value) in self.facts().into_iter().chain(links) {
            lines.push(format!("{name}: {}", escape::one_line(&value, MAX_PLAIN_FACT_CHARS)));
        }
        lines.join("\n")
    }
}

/// The longest fact in plain text.
const MAX_PLAIN_FACT_CHARS: usize = 300;

/// A burst as a list: its title, one line per notification (at most so many, then how many more), and
/// the most serious tone among them.
#[derive(Clone, Debug, PartialEq)]
pub struct Burst {
    /// `HemoStat: <n> notifications at once`.
    pub title: String,
    /// One line each, as `line` writes it, and a last one counting those left out.
    pub lines: Vec<String>,
    /// The most serious tone.
    pub tone: Tone,
}

impl Burst {
    /// The list of `notifications`, at most `max_lines` of them each written by `line`.
    pub fn of(notifications: &[Notification], max_lines: usize, line: impl Fn(&Notification) -> String) -> Self {
        let mut lines: Vec<String> = notifications.iter().take(max_lines).map(line).collect();
        if notifications.len() > max_lines {
            lines.push(format!("… and {} more (hemostat events)", notifications.len() - max_lines));
        }
        Burst {
            title: format!("HemoStat: {} notifications at once", notifications.len()),
            lines,
            tone: notifications.iter().map(Notification::tone).max().unwrap_or(Tone::NotApplicable),
        }
    }
}

/// `restart` → `Restart`, `scale_up` → `Scale up`.
fn capitalized(name: &str) -> String {
    let name = name.replace('_', " ");
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored event of `kind` about container `name` on `host-a`, at a fixed time.
    pub(crate) fn notification(kind: EventKind, name: &str) -> Notification {
        let mut record = EventRecord::new(kind, "host-a", "c0ffee", name, "exited unexpectedly with code 1");
        record.time_ms = 1_795_000_000_000;
        record.action = Some(Action::Restart);
        Notification::new(EventId { ms: record.time_ms, seq: 0 }, record, None)
    }

    /// Every event kind.
    pub(crate) const ALL_KINDS: [EventKind; EventKind::ALL.len()] = EventKind::ALL;

    #[test]
    fn kind_names_match_the_event_logs_serialisation() {
        for kind in ALL_KINDS {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name(), "{kind:?}");
        }
        for outcome in [Outcome::Success, Outcome::Failed, Outcome::Refused, Outcome::NotApplicable] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.name());
        }
    }

    #[test]
    fn results_and_rejections_show_the_decision_behind_them() {
        let mut n = notification(EventKind::RemediationComplete, "web");
        n.record.outcome = Some(Outcome::Success);
        assert_eq!(n.confidence(), None);
        n.decision = Some(Decision {
            confidence: Some(0.9),
            analysis_method: Some("rules".into()),
            decided_by: Some("unexpected_exit".into()),
        });
        assert_eq!(
            (n.confidence(), n.analysis_method(), n.decided_by()),
            (Some(0.9), Some("rules"), Some("unexpected_exit"))
        );
        assert_eq!(n.result(), Some("success"));
        assert_eq!(n.headline(), "Restart of web on host-a succeeded");
        assert_eq!(n.time_rfc3339(), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn headlines_say_what_happened() {
        let mut dry = notification(EventKind::Rejected, "web");
        dry.record.rejection = Some(Rejection::DryRun);
        assert!(dry.dry_run());
        assert_eq!(dry.headline(), "Dry run: would restart web on host-a; nothing was done");
        let mut lost = notification(EventKind::NodeLost, "");
        lost.record.action = None;
        assert_eq!(lost.headline(), "Node host-a lost: no heartbeat");
        let mut ended = notification(EventKind::Storm, "");
        ended.record.decided_by = Some("operator:alice".into());
        assert_eq!((ended.headline().as_str(), ended.tone()), ("Storm over: automatic actions resumed", Tone::Success));
        assert_eq!(notification(EventKind::Storm, "").tone(), Tone::Critical);
        assert_eq!(capitalized("scale_up"), "Scale up");
    }

    #[test]
    fn facts_and_plain_text_leave_out_what_is_unknown() {
        let mut n = notification(EventKind::RemediationComplete, "web");
        n.record.outcome = Some(Outcome::Failed);
        n.context.compose = Some(Compose { project: "shop".into(), service: "web\r\nx".into() });
        n.context.event_url = Some("https://hemostat.test/#/timeline".into());
        let names: Vec<&str> = n.facts().iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            ["Host", "Container", "Compose project", "Compose service", "Action", "Result", "Time (UTC)", "Event"]
        );
        let text = n.plain_text(100);
        assert!(text.starts_with("exited unexpectedly with code 1\n\nHost: host-a\nContainer: web\n"), "{text}");
        assert!(text.contains("Compose service: web  x\n"), "one line each: {text}");
        assert!(text.ends_with("Dashboard: https://hemostat.test/#/timeline"), "{text}");
        let burst = Burst::of(&vec![n.clone(); 5], 3, |n| n.headline());
        assert_eq!(burst.title, "HemoStat: 5 notifications at once");
        assert_eq!(burst.lines.len(), 4);
        assert_eq!(burst.lines[3], "… and 2 more (hemostat events)");
        assert_eq!(burst.tone, Tone::Failure);
    }

    #[test]
    fn severity_follows_the_tone_and_compose_needs_both_labels() {
        let mut n = notification(EventKind::RemediationComplete, "web");
        for (outcome, severity) in [
            (Outcome::Success, Severity::Info),
            (Outcome::NotApplicable, Severity::Info),
            (Outcome::Refused, Severity::Warning),
            (Outcome::Failed, Severity::Critical),
        ] {
            n.record.outcome = Some(outcome);
            assert_eq!(n.severity(), severity, "{outcome:?}");
        }
        assert_eq!(notification(EventKind::Storm, "").severity(), Severity::Critical);
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!(Severity::from_name("warning"), Some(Severity::Warning));
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let both = labels(&[("com.docker.compose.project", "shop"), ("com.docker.compose.service", "api")]);
        assert_eq!(Compose::from_labels(&both), Some(Compose { project: "shop".into(), service: "api".into() }));
        assert_eq!(Compose::from_labels(&labels(&[("com.docker.compose.project", "shop")])), None);
        let mut test = notification(EventKind::OperatorAction, "");
        test.test = true;
        assert_eq!(test.headline(), "Test notification: HemoStat can reach this channel");
    }
}
