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
//! 4000 characters.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::events::{Action, EventKind, Outcome};

use super::notification::Notification;

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
    use crate::alerting::notification::Decision;
    use crate::alerting::notification::tests::notification;
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
                "decided_by": null, "command_id": "cmd1"
            })
        );
        let mut dry = notification(EventKind::Rejected, "web");
        dry.record.rejection = Some(Rejection::DryRun);
        dry.record.reason = "x".repeat(5000);
        let dry = body(&dry);
        assert_eq!((dry["rejection"].as_str(), dry["dry_run"].as_bool()), (Some("dry_run"), Some(true)));
        assert_eq!(dry["reason"].as_str().unwrap().len(), MAX_REASON_CHARS);
    }
}
