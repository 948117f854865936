//! The generic JSON webhook (`ALERT_WEBHOOK_URL`): one POST per event, `application/json`, never grouped (a
//! program reading it wants each event on its own; the `id` lets it drop a repeat after a retry).
//!
//! ```json
//! {"id": "1795000000000-0", "time": "2026-11-18T11:06:40.000Z", "type": "remediation_complete",
//!  "node": "host-a", "container_id": "c0ffee…", "container_name": "web", "action": "restart",
//!  "outcome": "success", "rejection": null, "dry_run": false, "reason": "restarted; running for 30s",
//!  "confidence": 0.9, "analysis_method": "rules", "decided_by": "unexpected_exit", "command_id": "…"}
//! ```
//!
//! Absent values are `null`. Text is not escaped (JSON is its own escaping) but the reason is cut to
//! 4000 characters. The event's links and the container's Compose project and service are added as
//! `dashboard_url`, `container_url`, `compose_project` and `compose_service`.
//!
//! With `ALERT_WEBHOOK_FORMAT=alertmanager` the body is instead Alertmanager's webhook payload (version 4),
//! which many tools take: one POST per change of HemoStat's alerts
//! ([`alerts`](crate::alerting::alerts)), `status` `firing` for an alert that fired and `resolved` for
//! those an event ended; events that change no alert are not sent.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::alerting::AlertingConfig;
use crate::alerting::alerts::Alert;
use crate::alerting::conditions::ConditionTracker;
use crate::alerting::filter::SinkFilter;
use crate::alerting::grouping::Message;
use crate::alerting::notification::Notification;
use crate::alerting::sink::{Grouping, Sink};
use crate::alerting::sinks::alertmanager::{common, rfc3339_millis};
use crate::alerting::transport::Request;
use crate::events::{Action, EventKind, Outcome};

/// The generic webhook's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// HemoStat's JSON, one event a POST.
    Hemostat,
    /// Alertmanager's webhook payload, version 4: one POST per change of an alert.
    Alertmanager,
}

impl WebhookFormat {
    /// The format named `name` (`hemostat`, `alertmanager`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "hemostat" => Some(WebhookFormat::Hemostat),
            "alertmanager" => Some(WebhookFormat::Alertmanager),
            _ => None,
        }
    }
}

/// The generic webhook sink (`ALERT_WEBHOOK_URL`): one POST per event, for programs.
pub struct Webhook {
    url: String,
    /// With Alertmanager's format: the alerts firing, to tell what an event changes.
    alerts: Option<ConditionTracker>,
    /// The dashboard, Alertmanager's `externalURL`.
    external_url: String,
}

impl Webhook {
    /// The sink, when the webhook is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        let filter = config.filters.get("webhook").cloned().unwrap_or_default();
        let alerts = (config.webhook_format == WebhookFormat::Alertmanager)
            .then(|| ConditionTracker::new(filter, config.approval_ttl));
        Some(Webhook {
            url: config.webhook_url.clone()?,
            alerts,
            external_url: config.links.dashboard().unwrap_or_default(),
        })
    }

    /// Alertmanager's webhook payload for `alerts`, all of `status` (`firing` or `resolved`).
    fn payload(&self, status: &str, alerts: &[Alert]) -> Value {
        let names: Vec<&str> = alerts.iter().map(|a| a.name.label()).collect();
        let group_labels = match names.split_first() {
            Some((first, rest)) if rest.iter().all(|n| n == first) => json!({"alertname": first}),
            _ => json!({}),
        };
        let group_key = match group_labels["alertname"].as_str() {
            Some(name) => format!("{{}}:{{alertname=\"{name}\"}}"),
            None => "{}:{}".to_owned(),
        };
        json!({
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "hemostat",
            "groupLabels": group_labels,
            "commonLabels": common(alerts, |a| &a.labels),
            "commonAnnotations": common(alerts, |a| &a.annotations),
            "externalURL": self.external_url,
            "alerts": alerts.iter().map(|alert| {
                let firing = alert.resolved_ms.is_none();
                json!({
                    "status": if firing { "firing" } else { "resolved" },
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "startsAt": rfc3339_millis(alert.starts_ms),
                    "endsAt": alert.resolved_ms.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339_millis),
                    "generatorURL": alert.generator_url.clone().unwrap_or_default(),
                    "fingerprint": alert.fingerprint(),
                })
            }).collect::<Vec<_>>(),
        })
    }
}

impl Sink for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn grouping(&self) -> Grouping {
        Grouping::EachAlone
    }

    fn wants(&self, notification: &Notification, selected: bool, filter: &SinkFilter) -> bool {
        match &self.alerts {
            None => selected && filter.admits(notification),
            Some(alerts) => alerts.wants(notification),
        }
    }

    fn tracks_conditions(&self) -> bool {
        self.alerts.is_some()
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        let Some(alerts) = &self.alerts else {
            return message.items().iter().map(|n| Request::json(&self.url, body(n))).collect();
        };
        let changes = alerts.apply(message.items());
        [("firing", changes.fired), ("resolved", changes.resolved)]
            .into_iter()
            .filter(|(_, alerts)| !alerts.is_empty())
            .map(|(status, alerts)| Request::json(&self.url, self.payload(status, &alerts)))
            .collect()
    }
}

/// The longest reason sent.
const MAX_REASON_CHARS: usize = 4000;

/// One event as the webhook receives it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookEvent<'a> {
    /// The event log's id.
    pub id: String,
    /// When it was recorded, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The event type, e.g. `remediation_complete`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The node.
    pub node: &'a str,
    /// The container's id (empty for node events).
    pub container_id: &'a str,
    /// The container's name (empty for node events).
    pub container_name: &'a str,
    /// The action decided or done.
    pub action: Option<Action>,
    /// How an action ended.
    pub outcome: Option<Outcome>,
    /// Why the policy stopped it (`cooldown_active`, ...).
    pub rejection: Option<&'static str>,
    /// Whether this records what a dry run would have done.
    pub dry_run: bool,
    /// Why, in words for people.
    pub reason: String,
    /// The decision's confidence.
    pub confidence: Option<f64>,
    /// How it was decided.
    pub analysis_method: Option<&'a str>,
    /// Who decided.
    pub decided_by: Option<&'a str>,
    /// The command linking the events of one action.
    pub command_id: Option<&'a str>,
    /// The container's Compose project.
    pub compose_project: Option<&'a str>,
    /// The container's Compose service.
    pub compose_service: Option<&'a str>,
    /// The event in the dashboard.
    pub dashboard_url: Option<&'a str>,
    /// The container in the Docker UI.
    pub container_url: Option<&'a str>,
    /// Present, and true, only in a test notification (`hemostat notify test`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

impl<'a> WebhookEvent<'a> {
    /// The webhook's view of a notification.
    pub fn of(n: &'a Notification) -> Self {
        let r = &n.record;
        WebhookEvent {
            id: n.id.to_string(),
            time: humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(r.time_ms)).to_string(),
            kind: r.kind,
            node: &r.node,
            container_id: &r.container_id,
            container_name: &r.container_name,
            action: r.action,
            outcome: r.outcome,
            rejection: r.rejection.map(|r| r.code()),
            dry_run: n.dry_run(),
            reason: r.reason.chars().take(MAX_REASON_CHARS).collect(),
            confidence: n.confidence(),
            analysis_method: n.analysis_method(),
            decided_by: n.decided_by(),
            command_id: r.command_id.as_deref(),
            compose_project: n.context.compose.as_ref().map(|c| c.project.as_str()),
            compose_service: n.context.compose.as_ref().map(|c| c.service.as_str()),
            dashboard_url: n.context.event_url.as_deref(),
            container_url: n.context.container_url.as_deref(),
            test: n.test,
        }
    }
}

/// The body POSTed for one notification.
pub fn body(notification: &Notification) -> Value {
    serde_json::to_value(WebhookEvent::of(notification)).expect("a webhook event serialises")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::alerting::notification::tests::notification;
    use crate::alerting::notification::{Compose, Decision};
    use crate::events::Rejection;

    #[test]
    fn every_field_is_there_with_nulls_for_what_is_absent() {
        let mut n = notification(EventKind::RemediationComplete, "<web>");
        n.record.outcome = Some(Outcome::Success);
        n.record.command_id = Some("cmd1".into());
        n.decision = Some(Decision { confidence: Some(0.9), analysis_method: Some("rules".into()), decided_by: None });
        assert_eq!(
            body(&n),
            json!({
                "id": "1795000000000-0", "time": "2026-11-18T11:06:40.000Z", "type": "remediation_complete",
                "node": "host-a", "container_id": "c0ffee", "container_name": "<web>", "action": "restart",
                "outcome": "success", "rejection": null, "dry_run": false,
                "reason": "exited unexpectedly with code 1", "confidence": 0.9, "analysis_method": "rules",
                "decided_by": null, "command_id": "cmd1", "compose_project": null, "compose_service": null,
                "dashboard_url": null, "container_url": null
            })
        );
        let mut dry = notification(EventKind::Rejected, "web");
        dry.record.rejection = Some(Rejection::DryRun);
        dry.record.reason = "x".repeat(5000);
        let dry = body(&dry);
        assert_eq!((dry["rejection"].as_str(), dry["dry_run"].as_bool()), (Some("dry_run"), Some(true)));
        assert_eq!(dry["reason"].as_str().unwrap().len(), MAX_REASON_CHARS);
    }

    fn alertmanager_format() -> Webhook {
        let config = AlertingConfig {
            webhook_url: Some("http://hook".into()),
            webhook_format: WebhookFormat::Alertmanager,
            links: crate::alerting::links::Links::new(Some("https://hemostat.test".into()), None),
            ..AlertingConfig::default()
        };
        Webhook::new(&config).unwrap()
    }

    fn posted(requests: Vec<Request>) -> Vec<Value> {
        requests
            .into_iter()
            .map(|r| match r {
                Request::Http(http) => match http.body {
                    crate::alerting::transport::Body::Json(v) => v,
                    other => panic!("{other:?}"),
                },
                Request::Mail(_) => panic!("a mail"),
            })
            .collect()
    }

    #[test]
    fn the_links_and_compose_service_are_added() {
        let mut n = notification(EventKind::RemediationComplete, "shop-api-1");
        n.context.compose = Some(Compose { project: "shop".into(), service: "api".into() });
        n.context.event_url = Some("https://hemostat.test/#/timeline".into());
        let sent = body(&n);
        assert_eq!((sent["compose_project"].as_str(), sent["compose_service"].as_str()), (Some("shop"), Some("api")));
        assert_eq!(sent["dashboard_url"], "https://hemostat.test/#/timeline");
    }

    #[test]
    fn alertmanagers_payload_says_what_fired_and_what_resolved() {
        let hook = alertmanager_format();
        assert_eq!(hook.grouping(), Grouping::EachAlone);
        let mut failed = notification(EventKind::RemediationComplete, "web");
        failed.record.outcome = Some(Outcome::Failed);
        assert!(hook.wants(&failed, false, &SinkFilter::default()));
        let fired = posted(hook.render(&Message::Single(failed.clone())));
        assert_eq!(fired.len(), 1);
        let payload = &fired[0];
        for key in ["receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL"] {
            assert!(payload.get(key).is_some(), "{key} missing: {payload:#}");
        }
        assert_eq!((payload["version"].as_str(), payload["status"].as_str()), (Some("4"), Some("firing")));
        assert_eq!(payload["groupKey"], "{}:{alertname=\"HemoStatRemediationFailed\"}");
        assert_eq!(payload["externalURL"], "https://hemostat.test/");
        let alert = &payload["alerts"][0];
        assert_eq!(
            (alert["status"].as_str(), alert["endsAt"].as_str()),
            (Some("firing"), Some("0001-01-01T00:00:00Z"))
        );
        assert_eq!(alert["labels"]["container"], "web");
        assert_eq!(payload["commonLabels"], alert["labels"]);
        assert_eq!(alert["fingerprint"].as_str().map(str::len), Some(16));

        let mut fixed = failed.clone();
        fixed.record.outcome = Some(Outcome::Success);
        let resolved = posted(hook.render(&Message::Single(fixed)));
        assert_eq!(resolved[0]["status"], "resolved");
        assert_eq!(resolved[0]["alerts"][0]["fingerprint"], alert["fingerprint"]);
        assert_eq!(resolved[0]["alerts"][0]["endsAt"], "2026-11-18T11:06:40.000Z");
        assert!(hook.render(&Message::Single(notification(EventKind::FalseAlarm, "web"))).is_empty());
    }
}
