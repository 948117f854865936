//! Microsoft Teams (`TEAMS_WEBHOOK_URL`): an Adaptive Card (schema 1.4; Teams renders up to 1.5) posted to
//! a Workflows webhook ("When a Teams webhook request is received", then "Post card in a chat or
//! channel"), which takes only Adaptive Cards, wrapped in a `message` with one attachment.
//!
//! The card's heading is coloured by how serious the notification is (Teams' palette: good, warning,
//! attention), facts name the host, container and Compose service, and buttons open the event in the
//! dashboard and the container in the Docker UI. Untrusted text is Markdown-escaped ([`markdown`]);
//! Teams mentions need an entity HemoStat never adds, and angle brackets are escaped anyway.

use serde_json::{Value, json};

use crate::alerting::AlertingConfig;
use crate::alerting::escape::markdown;
use crate::alerting::grouping::Message;
use crate::alerting::notification::{Burst, Notification, Tone};
use crate::alerting::sink::Sink;
use crate::alerting::transport::Request;

/// The Adaptive Card schema version used.
pub const CARD_VERSION: &str = "1.4";
/// Characters of a title before escaping.
const MAX_TITLE_CHARS: usize = 200;
/// Characters of a reason before escaping.
const MAX_REASON_CHARS: usize = 2000;
/// Characters of a fact before escaping.
const MAX_FACT_CHARS: usize = 200;
/// The most lines a burst lists.
const MAX_BURST_LINES: usize = 30;

/// The Teams sink.
pub struct Teams {
    url: String,
}

impl Teams {
    /// The sink, when Teams is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        Some(Teams { url: config.teams_webhook_url.clone()? })
    }
}

/// A container style of Teams' palette, by tone.
fn style(tone: Tone) -> &'static str {
    match tone {
        Tone::Success => "good",
        Tone::FalseAlarm | Tone::Warning => "warning",
        Tone::Failure | Tone::Critical => "attention",
        Tone::NotApplicable => "default",
    }
}

fn text_block(text: String, heading: bool) -> Value {
    if heading {
        json!({"type": "TextBlock", "text": text, "wrap": true, "weight": "Bolder", "size": "Medium"})
    } else {
        json!({"type": "TextBlock", "text": text, "wrap": true})
    }
}

fn open_url(title: &str, url: &str) -> Value {
    json!({"type": "Action.OpenUrl", "title": title, "url": url})
}

/// The card's body and actions for one notification.
fn single(n: &Notification) -> (Vec<Value>, Vec<Value>, Tone) {
    let record = &n.record;
    let facts: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": markdown(&value, MAX_FACT_CHARS)}))
        .collect();
    let mut body = vec![text_block(markdown(&n.headline(), MAX_TITLE_CHARS), true)];
    if !record.reason.is_empty() {
        body.push(text_block(markdown(&record.reason, MAX_REASON_CHARS), false));
    }
    body.push(json!({"type": "FactSet", "facts": facts}));
    let mut actions = Vec::new();
    if let Some(url) = &n.context.event_url {
        actions.push(open_url("Open in HemoStat", url));
    }
    if let Some(url) = &n.context.container_url {
        actions.push(open_url("Open in the Docker UI", url));
    }
    (body, actions, n.tone())
}

/// The card's body for a burst.
fn burst(ns: &[Notification]) -> (Vec<Value>, Vec<Value>, Tone) {
    let burst = Burst::of(ns, MAX_BURST_LINES, |n| {
        format!("- {} {}", n.time_rfc3339(), markdown(&n.headline(), MAX_TITLE_CHARS))
    });
    let items = vec![text_block(burst.title, true), text_block(burst.lines.join("\n"), false)];
    (items, Vec::new(), burst.tone)
}

/// The Workflows webhook's body: a message with one Adaptive Card.
pub fn body(message: &Message<Notification>) -> Value {
    let (items, actions, tone) = match message {
        Message::Single(n) => single(n),
        Message::Burst(ns) => burst(ns),
    };
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": [{"type": "Container", "style": style(tone), "items": items}],
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
    })
}

impl Sink for Teams {
    fn name(&self) -> &'static str {
        "teams"
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        vec![Request::json(&self.url, body(message))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::Compose;
    use crate::alerting::notification::tests::notification;
    use crate::events::{EventKind, Outcome};

    #[test]
    fn a_notification_is_a_card_in_a_message_with_facts_and_buttons() {
        let mut n = notification(EventKind::RemediationComplete, "<at>boss</at> **x**");
        n.record.outcome = Some(Outcome::Failed);
        n.context.compose = Some(Compose { project: "shop".into(), service: "web".into() });
        n.context.event_url = Some("https://hemostat.test/#/timeline".into());
        n.context.container_url = Some("https://portainer.test/#!/1/docker/containers/c0ffee".into());
        let body = body(&Message::Single(n));
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &attachment["content"];
        assert_eq!((card["type"].as_str(), card["version"].as_str()), (Some("AdaptiveCard"), Some("1.4")));
        let container = &card["body"][0];
        assert_eq!((container["type"].as_str(), container["style"].as_str()), (Some("Container"), Some("attention")));
        let title = container["items"][0]["text"].as_str().unwrap();
        assert!(!title.contains("<at>") && !title.contains("**"), "{title}");
        let facts = container["items"][2]["facts"].as_array().unwrap();
        let fact =
            |name: &str| facts.iter().find(|f| f["title"] == name).map(|f| f["value"].as_str().unwrap().to_owned());
        assert_eq!(fact("Host").as_deref(), Some("host\\-a"));
        assert_eq!(fact("Compose service").as_deref(), Some("web"));
        let actions = card["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[1]["url"], "https://portainer.test/#!/1/docker/containers/c0ffee");
    }

    #[test]
    fn a_burst_lists_them_coloured_by_the_worst() {
        let mut ok = notification(EventKind::RemediationComplete, "a");
        ok.record.outcome = Some(Outcome::Success);
        let lost = notification(EventKind::NodeLost, "");
        let body = body(&Message::Burst(vec![ok.clone(), lost, ok]));
        let container = &body["attachments"][0]["content"]["body"][0];
        assert_eq!(container["style"], "attention");
        assert_eq!(container["items"][0]["text"], "HemoStat: 3 notifications at once");
        assert_eq!(container["items"][1]["text"].as_str().unwrap().lines().count(), 3);
        assert!(body["attachments"][0]["content"].get("actions").is_none());
    }
}
