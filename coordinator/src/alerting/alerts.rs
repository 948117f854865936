//! HemoStat's alerts, as Alertmanager sees them: which events start a condition and which end it.
//!
//! | alert | fires on | ends on |
//! | --- | --- | --- |
//! | `HemoStatRemediationFailed` | an action that failed or was refused by the node | a later success on that container, or its problems clearing (`resolved`) |
//! | `HemoStatCircuitOpen` | an exhausted budget (`circuit_open`) | the same |
//! | `HemoStatApprovalPending` | a decision awaiting approval | the approval taken (any later event of that command), or its expiry |
//! | `HemoStatNodeLost` | `node_lost` | `node_recovered` |
//! | `HemoStatStorm` | a storm | an admin ending it, or [`SHORT_LIVED`] later (no event marks the rate falling) |
//! | `HemoStatStoreUnavailable` | the state store not answering | [`SHORT_LIVED`] later (its end is not notified) |
//! | `HemoStatSpoolOverflow` | a node dropping reports | [`SPOOL_OVERFLOW_LIFETIME`] later |
//! | `HemoStatQuarantined` | a container quarantined (defined for the quarantine to come) | its release |
//!
//! Labels: `alertname`, `severity` (`info`, `warning`, `critical`), and where known `node`, `container`,
//! `compose_project`, `compose_service` (and `approval`, the command id, for approvals). Annotations:
//! `summary`, `description`, `event_id`, `dashboard_url`, `container_url`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::events::{EventKind, Outcome, Rejection};

use super::notification::{Notification, Severity};

/// How long a storm or a store outage stays an alert when no event ends it.
pub const SHORT_LIVED: Duration = Duration::from_secs(15 * 60);
/// How long a node's dropped reports stay an alert.
pub const SPOOL_OVERFLOW_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a test alert (`hemostat notify test`) stays.
pub const TEST_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The most characters of a description.
const MAX_DESCRIPTION_CHARS: usize = 2000;

/// The alerts HemoStat raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertName {
    /// An action failed or was refused.
    RemediationFailed,
    /// A container's budget is exhausted: no more automatic actions for the hour.
    CircuitOpen,
    /// A container is quarantined: no more automatic actions until released.
    Quarantined,
    /// A node stopped sending heartbeats.
    NodeLost,
    /// A decision waits for an admin's approval.
    ApprovalPending,
    /// Too many containers needed remediation at once: automatic actions stopped.
    Storm,
    /// The state store does not answer.
    StoreUnavailable,
    /// A node dropped reports from its full spool.
    SpoolOverflow,
    /// A test from `hemostat notify test`.
    Test,
}

impl AlertName {
    /// Its `alertname` label.
    pub fn label(self) -> &'static str {
        match self {
            AlertName::RemediationFailed => "HemoStatRemediationFailed",
            AlertName::CircuitOpen => "HemoStatCircuitOpen",
            AlertName::Quarantined => "HemoStatQuarantined",
            AlertName::NodeLost => "HemoStatNodeLost",
            AlertName::ApprovalPending => "HemoStatApprovalPending",
            AlertName::Storm => "HemoStatStorm",
            AlertName::StoreUnavailable => "HemoStatStoreUnavailable",
            AlertName::SpoolOverflow => "HemoStatSpoolOverflow",
            AlertName::Test => "HemoStatTest",
        }
    }
}

/// One alert, firing or resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Which alert.
    pub name: AlertName,
    /// Its labels, `alertname` included: they identify it.
    pub labels: BTreeMap<String, String>,
    /// What it says.
    pub annotations: BTreeMap<String, String>,
    /// When the condition started (Unix ms).
    pub starts_ms: u64,
    /// When it ends by itself, if no event ends it first (Unix ms).
    pub expires_ms: Option<u64>,
    /// When an event ended it (Unix ms).
    pub resolved_ms: Option<u64>,
    /// The event in the dashboard, if its URL is known.
    pub generator_url: Option<String>,
}

impl Alert {
    /// The alert `name` about what `notification` names (node, container, Compose service).
    pub fn of(name: AlertName, notification: &Notification, severity: Severity, lifetime: Option<Duration>) -> Self {
        let record = &notification.record;
        let mut labels = BTreeMap::from([
            ("alertname".to_owned(), name.label().to_owned()),
            ("severity".to_owned(), severity.name().to_owned()),
        ]);
        let put = |map: &mut BTreeMap<String, String>, key: &str, value: &str| {
            if !value.is_empty() {
                map.insert(key.to_owned(), value.to_owned());
            }
        };
        if name != AlertName::Storm {
            put(&mut labels, "node", &record.node);
            put(&mut labels, "container", &record.container_name);
            if let Some(compose) = &notification.context.compose {
                put(&mut labels, "compose_project", &compose.project);
                put(&mut labels, "compose_service", &compose.service);
            }
        }
        if name == AlertName::ApprovalPending {
            put(&mut labels, "approval", record.command_id.as_deref().unwrap_or_default());
        }
        let mut annotations = BTreeMap::new();
        put(&mut annotations, "summary", &notification.headline());
        put(&mut annotations, "description", &record.reason.chars().take(MAX_DESCRIPTION_CHARS).collect::<String>());
        put(&mut annotations, "event_id", &notification.id.to_string());
        put(&mut annotations, "dashboard_url", notification.context.event_url.as_deref().unwrap_or_default());
        put(&mut annotations, "container_url", notification.context.container_url.as_deref().unwrap_or_default());
        Alert {
            name,
            labels,
            annotations,
            starts_ms: record.time_ms,
            expires_ms: lifetime.map(|l| record.time_ms.saturating_add(l.as_millis() as u64)),
            resolved_ms: None,
            generator_url: notification.context.event_url.clone(),
        }
    }

    /// Alertmanager's fingerprint of its labels (see [`fingerprint`]).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }
}

/// Alertmanager's fingerprint of a label set: FNV-1a (64 bits) over each name and value, sorted by name,
/// each followed by the byte 0xff, in 16 hexadecimal digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, value) in labels {
        for byte in name.bytes().chain([0xff]).chain(value.bytes()).chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Which firing alerts an event ends: those named `name` whose labels hold each of `labels`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// The alert.
    pub name: AlertName,
    /// Labels the alert must have.
    pub labels: Vec<(&'static str, String)>,
}

impl Ending {
    /// Whether this ends `alert`.
    pub fn ends(&self, alert: &Alert) -> bool {
        alert.name == self.name && self.labels.iter().all(|(k, v)| alert.labels.get(*k) == Some(v))
    }
}

/// What an event does to the alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transition {
    /// The alert it fires.
    pub fires: Option<Alert>,
    /// The alerts it ends.
    pub ends: Vec<Ending>,
}

impl Transition {
    /// Whether it changes anything.
    pub fn is_empty(&self) -> bool {
        self.fires.is_none() && self.ends.is_empty()
    }
}

/// What `notification` does to the alerts; `approval_ttl` is how long an approval waits.
pub fn transition(notification: &Notification, approval_ttl: Duration) -> Transition {
    let record = &notification.record;
    let severity = notification.severity();
    let fire = |name, lifetime| Some(Alert::of(name, notification, severity, lifetime));
    let on_container = |name| Ending {
        name,
        labels: vec![("node", record.node.clone()), ("container", record.container_name.clone())],
    };
    let mut transition = Transition::default();
    if notification.test {
        transition.fires = fire(AlertName::Test, Some(TEST_LIFETIME));
        return transition;
    }
    // Any later event of an approval's command (the approval taken, its result, a rejection) ends it.
    if let Some(command) = &record.command_id
        && record.rejection != Some(Rejection::AwaitingApproval)
    {
        transition.ends.push(Ending { name: AlertName::ApprovalPending, labels: vec![("approval", command.clone())] });
    }
    match (record.kind, record.outcome, record.rejection) {
        (EventKind::RemediationComplete, Some(Outcome::Failed | Outcome::Refused) | None, _) => {
            transition.fires = fire(AlertName::RemediationFailed, None);
        }
        (EventKind::RemediationComplete, Some(Outcome::Success), _) | (EventKind::Resolved, _, _) => {
            transition.ends.push(on_container(AlertName::RemediationFailed));
            transition.ends.push(on_container(AlertName::CircuitOpen));
        }
        (EventKind::Rejected, _, Some(Rejection::CircuitOpen)) => {
            transition.fires = fire(AlertName::CircuitOpen, None);
        }
        (EventKind::Rejected, _, Some(Rejection::AwaitingApproval)) => {
            transition.fires = fire(AlertName::ApprovalPending, Some(approval_ttl));
        }
        (EventKind::NodeLost, _, _) => transition.fires = fire(AlertName::NodeLost, None),
        (EventKind::NodeRecovered, _, _) => {
            transition.ends.push(Ending { name: AlertName::NodeLost, labels: vec![("node", record.node.clone())] });
        }
        (EventKind::Storm, _, _) if record.decided_by.as_deref().is_some_and(|by| by.starts_with("operator:")) => {
            transition.ends.push(Ending { name: AlertName::Storm, labels: Vec::new() });
        }
        (EventKind::Storm, _, _) => transition.fires = fire(AlertName::Storm, Some(SHORT_LIVED)),
        (EventKind::StoreUnavailable, _, _) => transition.fires = fire(AlertName::StoreUnavailable, Some(SHORT_LIVED)),
        (EventKind::SpoolOverflow, _, _) => {
            transition.fires = fire(AlertName::SpoolOverflow, Some(SPOOL_OVERFLOW_LIFETIME));
        }
        _ => {}
    }
    if transition.fires.is_some()
        && record.silenced
        && !matches!(record.kind, EventKind::Storm | EventKind::StoreUnavailable)
    {
        // An operator muted this container or node: it raises nothing, but what it ends still ends.
        transition.fires = None;
    }
    transition
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::Compose;
    use crate::alerting::notification::tests::notification;
    use crate::events::EventRecord;

    const TTL: Duration = Duration::from_secs(3600);

    fn complete(outcome: Outcome) -> Notification {
        let mut n = notification(EventKind::RemediationComplete, "web");
        n.record.outcome = Some(outcome);
        n.record.command_id = Some("cmd1".into());
        n
    }

    fn fired(n: &Notification) -> Alert {
        transition(n, TTL).fires.unwrap_or_else(|| panic!("{n:?} fires nothing"))
    }

    #[test]
    fn a_failure_fires_with_its_labels_and_a_success_ends_it() {
        let mut failed = complete(Outcome::Failed);
        failed.context.compose = Some(Compose { project: "shop".into(), service: "web".into() });
        failed.context.event_url = Some("https://hemostat.test/#/timeline".into());
        let alert = fired(&failed);
        let labels: Vec<(&str, &str)> = alert.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            labels,
            [
                ("alertname", "HemoStatRemediationFailed"),
                ("compose_project", "shop"),
                ("compose_service", "web"),
                ("container", "web"),
                ("node", "host-a"),
                ("severity", "critical"),
            ]
        );
        assert_eq!(alert.annotations["summary"], "Restart of web on host-a FAILED");
        assert_eq!(alert.annotations["event_id"], "1795000000000-0");
        assert_eq!(alert.generator_url.as_deref(), Some("https://hemostat.test/#/timeline"));
        assert_eq!((alert.starts_ms, alert.expires_ms), (1_795_000_000_000, None), "until an event ends it");

        let fixed = transition(&complete(Outcome::Success), TTL);
        assert_eq!(fixed.fires, None);
        assert!(fixed.ends.iter().any(|e| e.ends(&alert)), "{fixed:?}");
        let elsewhere = EventRecord { container_name: "db".into(), ..complete(Outcome::Success).record };
        let other = Notification::new(failed.id, elsewhere, None);
        assert!(!transition(&other, TTL).ends.iter().any(|e| e.ends(&alert)), "db's success does not end web's");
    }

    #[test]
    fn approvals_end_when_taken_or_at_their_expiry() {
        let mut waiting = notification(EventKind::Rejected, "web");
        waiting.record.rejection = Some(Rejection::AwaitingApproval);
        waiting.record.command_id = Some("abc123".into());
        let alert = fired(&waiting);
        assert_eq!(alert.labels["approval"], "abc123");
        assert_eq!(alert.labels["severity"], "warning");
        assert_eq!(alert.expires_ms, Some(1_795_000_000_000 + 3_600_000));
        let mut approved = notification(EventKind::RemediationNeeded, "web");
        approved.record.command_id = Some("abc123".into());
        assert!(transition(&approved, TTL).ends.iter().any(|e| e.ends(&alert)));
        approved.record.command_id = Some("other".into());
        assert!(!transition(&approved, TTL).ends.iter().any(|e| e.ends(&alert)));
    }

    #[test]
    fn nodes_storms_and_what_only_informs() {
        let lost = fired(&notification(EventKind::NodeLost, ""));
        assert_eq!((lost.name, lost.labels.get("container")), (AlertName::NodeLost, None));
        let back = transition(&notification(EventKind::NodeRecovered, ""), TTL);
        assert!(back.ends.iter().any(|e| e.ends(&lost)));
        let storm = fired(&notification(EventKind::Storm, "web"));
        assert_eq!(storm.labels.len(), 2, "one storm alert: {:?}", storm.labels);
        assert_eq!(storm.expires_ms, Some(1_795_000_000_000 + SHORT_LIVED.as_millis() as u64));
        let mut ended = notification(EventKind::Storm, "");
        ended.record.decided_by = Some("operator:alice".into());
        assert!(transition(&ended, TTL).ends.iter().any(|e| e.ends(&storm)));
        let circuit = {
            let mut n = notification(EventKind::Rejected, "web");
            n.record.rejection = Some(Rejection::CircuitOpen);
            fired(&n)
        };
        assert_eq!(circuit.name, AlertName::CircuitOpen);
        let resolved = transition(&notification(EventKind::Resolved, "web"), TTL);
        assert!(resolved.ends.iter().any(|e| e.ends(&circuit)));
        for quiet in [EventKind::FalseAlarm, EventKind::HealthAlert, EventKind::OperatorAction] {
            assert!(transition(&notification(quiet, "web"), TTL).is_empty(), "{quiet:?}");
        }
        let mut cooldown = notification(EventKind::Rejected, "web");
        cooldown.record.rejection = Some(Rejection::CooldownActive);
        assert!(transition(&cooldown, TTL).is_empty());
    }

    #[test]
    fn a_silenced_target_fires_nothing_but_still_ends() {
        let mut failed = complete(Outcome::Failed);
        failed.record.silenced = true;
        assert_eq!(transition(&failed, TTL).fires, None);
        let mut fixed = complete(Outcome::Success);
        fixed.record.silenced = true;
        assert!(!transition(&fixed, TTL).ends.is_empty());
    }

    #[test]
    fn the_fingerprint_depends_on_the_labels_only() {
        // The integration tests check it against a real Alertmanager's.
        let failed = fired(&complete(Outcome::Failed));
        let mut again = fired(&complete(Outcome::Failed));
        again.starts_ms += 5000;
        again.annotations.clear();
        assert_eq!(failed.fingerprint(), again.fingerprint());
        assert_eq!(failed.fingerprint().len(), 16);
        again.labels.insert("container".into(), "db".into());
        assert_ne!(failed.fingerprint(), again.fingerprint());
    }
}
