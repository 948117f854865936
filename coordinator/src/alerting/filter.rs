//! Per-sink filters (`<SINK>_EVENTS`, `<SINK>_MIN_SEVERITY`, `<SINK>_NODES`): a sink can take only some
//! event types, only what is at least so serious, only some nodes. Unset, a sink takes everything that
//! notifies.

use serde::Deserialize;
use serde::de::IntoDeserializer;

use crate::events::EventKind;

use super::notification::{Notification, Severity};
use super::selection::NOTIFIED;

/// Which notifications one sink takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkFilter {
    /// Only these event types; empty takes every type.
    pub events: Vec<EventKind>,
    /// Only notifications at least this serious; `None` takes all.
    pub min_severity: Option<Severity>,
    /// Only events of these nodes (events of no node, a fleet-wide storm, always pass); empty takes all.
    pub nodes: Vec<String>,
}

/// A filter setting that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{setting}: {problem}")]
pub struct FilterError {
    /// The setting, e.g. `DISCORD_EVENTS`.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SinkFilter {
    /// The filter from the settings `<prefix>_EVENTS` (comma-separated event types), `<prefix>_MIN_SEVERITY`
    /// (`info`, `warning` or `critical`) and `<prefix>_NODES` (comma-separated node names).
    pub fn parse(
        prefix: &str,
        events: Option<&str>,
        min_severity: Option<&str>,
        nodes: Option<&str>,
    ) -> Result<Self, FilterError> {
        let error = |suffix: &str, problem: String| FilterError { setting: format!("{prefix}_{suffix}"), problem };
        let events = list(events)
            .map(|name| {
                let kind = EventKind::deserialize(name.into_deserializer())
                    .map_err(|_: serde::de::value::Error| format!("{name:?} is not an event type"));
                match kind {
                    Ok(kind) if NOTIFIED.contains(&kind) => Ok(kind),
                    Ok(_) => Err(format!("{name} is never notified")),
                    Err(problem) => Err(problem),
                }
                .map_err(|problem| {
                    let notified: Vec<&str> = NOTIFIED.iter().map(|k| k.name()).collect();
                    error("EVENTS", format!("{problem}; the notified types are {}", notified.join(", ")))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let min_severity = match min_severity.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(Severity::from_name(name).ok_or_else(|| {
                error("MIN_SEVERITY", format!("{name:?} is not a severity: info, warning or critical"))
            })?),
        };
        Ok(SinkFilter { events, min_severity, nodes: list(nodes).map(str::to_owned).collect() })
    }

    /// Whether the sink takes `notification`.
    pub fn admits(&self, notification: &Notification) -> bool {
        let node = notification.record.node.as_str();
        (self.events.is_empty() || self.events.contains(&notification.kind()))
            && self.min_severity.is_none_or(|min| notification.severity() >= min)
            && (self.nodes.is_empty() || node.is_empty() || self.nodes.iter().any(|n| n == node))
    }
}

/// The non-empty, trimmed items of a comma-separated list.
fn list(value: Option<&str>) -> impl Iterator<Item = &str> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::tests::notification;
    use crate::events::Outcome;

    #[test]
    fn unset_takes_everything_and_each_setting_narrows() {
        let mut failed = notification(EventKind::RemediationComplete, "web");
        failed.record.outcome = Some(Outcome::Failed);
        let mut fixed = failed.clone();
        fixed.record.outcome = Some(Outcome::Success);
        let mut storm = notification(EventKind::Storm, "");
        storm.record.node = String::new();
        let all = SinkFilter::default();
        assert!(all.admits(&failed) && all.admits(&fixed) && all.admits(&storm));

        let serious = SinkFilter::parse("DISCORD", None, Some("critical"), None).unwrap();
        assert!(serious.admits(&failed) && !serious.admits(&fixed), "a success is info");
        let warning = SinkFilter::parse("DISCORD", None, Some(" warning "), None).unwrap();
        assert!(warning.admits(&failed) && !warning.admits(&fixed));

        let lost_only = SinkFilter::parse("NTFY", Some("node_lost, node_recovered"), None, None).unwrap();
        assert_eq!(lost_only.events, [EventKind::NodeLost, EventKind::NodeRecovered]);
        assert!(!lost_only.admits(&failed));

        let other_node = SinkFilter::parse("SLACK", None, None, Some("host-b,host-c")).unwrap();
        assert!(!other_node.admits(&failed), "failed is on host-a");
        assert!(other_node.admits(&storm), "an event of no node concerns every node");
        let this_node = SinkFilter::parse("SLACK", Some(""), Some(""), Some("host-a")).unwrap();
        assert_eq!(this_node, SinkFilter { nodes: vec!["host-a".into()], ..SinkFilter::default() });
        assert!(this_node.admits(&failed));
    }

    #[test]
    fn a_bad_setting_is_named_with_what_it_accepts() {
        let unknown = SinkFilter::parse("DISCORD", Some("remediation_complete,crash"), None, None).unwrap_err();
        assert_eq!(unknown.setting, "DISCORD_EVENTS");
        assert!(unknown.problem.starts_with("\"crash\" is not an event type"), "{unknown}");
        assert!(unknown.problem.contains("node_lost"), "{unknown}");
        let never = SinkFilter::parse("DISCORD", Some("health_alert"), None, None).unwrap_err();
        assert!(never.to_string().starts_with("DISCORD_EVENTS: health_alert is never notified"), "{never}");
        let severity = SinkFilter::parse("ALERT_EMAIL", None, Some("loud"), None).unwrap_err();
        assert_eq!(
            severity.to_string(),
            "ALERT_EMAIL_MIN_SEVERITY: \"loud\" is not a severity: info, warning or critical"
        );
    }
}
