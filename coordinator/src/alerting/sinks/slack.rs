//! Slack incoming-webhook messages: one attachment per notification, coloured as the seed says (green
//! success, red failed, orange rejected, yellow false alarm, grey not applicable; dark red for a storm, red
//! for a lost node, green for a node back, orange for a node's overflowing spool), with the fields an on-call
//! person needs, in plain text.
//!
//! Everything that comes from outside the coordinator's own words (container and node names, reasons, which
//! quote log lines and model output, command output) is untrusted. It is cut to a length, its control
//! characters are replaced, `&`, `<` and `>` are escaped as Slack requires (so `<!channel>` or
//! `<http://evil|click>` show as text and do nothing), a zero-width space follows every `@` (so `@here`,
//! `@channel` and `@everyone` do not notify anyone) and every `://` is broken the same way (no link appears).
//! Markdown is off for the text and the attachments. The title links to the event in the dashboard; the
//! container's Compose project and service and its page in the Docker UI are fields.

use serde_json::{Value, json};

use crate::alerting::AlertingConfig;
use crate::alerting::grouping::Message;
use crate::alerting::notification::{Notification, Tone};
use crate::alerting::sink::Sink;
use crate::alerting::transport::Request;

/// The Slack sink (`SLACK_WEBHOOK_URL`): grouped, formatted for people.
pub struct Slack {
    url: String,
}

impl Slack {
    /// The sink, when Slack is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        Some(Slack { url: config.slack_webhook_url.clone()? })
    }
}

impl Sink for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        let body = match message {
            Message::Single(notification) => single(notification),
            Message::Burst(notifications) => burst(notifications),
        };
        vec![Request::json(&self.url, body)]
    }
}

/// Slack's colours, by tone.
pub fn colour(tone: Tone) -> &'static str {
    match tone {
        Tone::Success => "#36a64f",
        Tone::Failure => "#ff0000",
        Tone::Warning => "#ff9900",
        Tone::FalseAlarm => "#ffcc00",
        Tone::NotApplicable => "#cccccc",
        Tone::Critical => "#8b0000",
    }
}

/// The longest a field value (a name, a method) may be.
const MAX_FIELD_CHARS: usize = 200;
/// The longest a reason may be.
const MAX_REASON_CHARS: usize = 1500;
/// The longest a command's output may be.
const MAX_OUTPUT_CHARS: usize = 1000;
/// The longest a reason may be on one line of a burst.
const MAX_LINE_REASON_CHARS: usize = 150;
/// The most lines a burst lists; the rest are counted.
const MAX_BURST_LINES: usize = 20;

/// A zero-width space: invisible, but it stops Slack from reading what follows as a mention or a link.
const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// Makes untrusted text safe to show in Slack: cut to `max_chars` (with `…`), control characters other than
/// newlines replaced by spaces, `&`, `<`, `>` escaped, mentions and links broken with a zero-width space.
pub fn escape(text: &str, max_chars: usize) -> String {
    let cut = text.chars().count() > max_chars;
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars().take(if cut { max_chars.saturating_sub(1) } else { max_chars }) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => {
                out.push('@');
                out.push(ZERO_WIDTH_SPACE);
            }
            '\n' => out.push('\n'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    if cut {
        out.push('…');
    }
    out.replace("://", &format!(":{ZERO_WIDTH_SPACE}//"))
}

/// A Slack message field.
fn field(title: &str, value: String, short: bool) -> Value {
    json!({"title": title, "value": value, "short": short})
}

/// The message for one notification.
pub fn single(notification: &Notification) -> Value {
    let record = &notification.record;
    let headline = escape(&notification.headline(), MAX_REASON_CHARS);
    let mut fields = Vec::new();
    if !record.node.is_empty() {
        fields.push(field("Node", escape(&record.node, MAX_FIELD_CHARS), true));
    }
    if !record.container_name.is_empty() {
        fields.push(field("Container", escape(&record.container_name, MAX_FIELD_CHARS), true));
    }
    if let Some(compose) = &notification.context.compose {
        let compose = format!("{}/{}", compose.project, compose.service);
        fields.push(field("Compose", escape(&compose, MAX_FIELD_CHARS), true));
    }
    if let Some(action) = record.action {
        fields.push(field("Action", action.name().to_owned(), true));
    }
    if let Some(result) = notification.result() {
        fields.push(field("Result", result.to_owned(), true));
    }
    let method = match (notification.analysis_method(), notification.decided_by()) {
        (Some(method), Some(by)) => Some(format!("{method} ({by})")),
        (method, by) => method.or(by).map(str::to_owned),
    };
    if let Some(method) = method {
        fields.push(field("Method", escape(&method, MAX_FIELD_CHARS), true));
    }
    if let Some(confidence) = notification.confidence() {
        fields.push(field("Confidence", format!("{confidence:.2}"), true));
    }
    if record.action.is_some() {
        fields.push(field("Dry run", if notification.dry_run() { "yes" } else { "no" }.to_owned(), true));
    }
    fields.push(field("Time (UTC)", notification.time_rfc3339(), true));
    fields.push(field("Event", format!("{} {}", record.kind.name(), notification.id), false));
    if let Some(output) = record.output.as_deref().filter(|o| !o.is_empty()) {
        fields.push(field("Output", escape(output, MAX_OUTPUT_CHARS), false));
    }
    if let Some(url) = &notification.context.container_url {
        fields.push(field("Docker UI", escape_url(url), false));
    }
    let mut attachment = json!({
            "color": colour(notification.tone()),
            "fallback": headline,
            "title": headline,
            "text": escape(&record.reason, MAX_REASON_CHARS),
            "fields": fields,
            "footer": "HemoStat",
            "ts": record.time_ms / 1000,
            "mrkdwn_in": [],
    });
    if let Some(url) = &notification.context.event_url {
        attachment["title_link"] = Value::String(url.clone());
    }
    message(&format!("HemoStat: {headline}"), attachment)
}

/// One of our own links as Slack text: only `&`, `<` and `>` escaped, as Slack requires (the values in it
/// are percent-encoded already).
fn escape_url(url: &str) -> String {
    url.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One message listing a burst of notifications, coloured by the most serious of them.
pub fn burst(notifications: &[Notification]) -> Value {
    let tone = notifications.iter().map(Notification::tone).max().unwrap_or(Tone::NotApplicable);
    let (first, last) = match (notifications.first(), notifications.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return message("HemoStat: no notifications", json!({})),
    };
    let summary = format!("HemoStat: {} notifications at once", notifications.len());
    let mut lines: Vec<String> = notifications
        .iter()
        .take(MAX_BURST_LINES)
        .map(|n| {
            format!(
                "• {}  {} — {}",
                n.time_rfc3339(),
                escape(&n.headline(), MAX_FIELD_CHARS * 2),
                escape(&n.record.reason, MAX_LINE_REASON_CHARS)
            )
        })
        .collect();
    if notifications.len() > MAX_BURST_LINES {
        lines.push(format!("… and {} more (hemostat events)", notifications.len() - MAX_BURST_LINES));
    }
    let span = if first.record.time_ms == last.record.time_ms {
        first.time_rfc3339()
    } else {
        format!("{} to {}", first.time_rfc3339(), last.time_rfc3339())
    };
    message(
        &summary,
        json!({
            "color": colour(tone),
            "fallback": summary,
            "title": summary,
            "text": lines.join("\n"),
            "fields": [
                field("Time (UTC)", span, false),
                field("Events", format!("{} to {}", first.id, last.id), false),
            ],
            "footer": "HemoStat",
            "ts": last.record.time_ms / 1000,
            "mrkdwn_in": [],
        }),
    )
}

/// An incoming-webhook message: plain text, no unfurling, one attachment.
fn message(text: &str, attachment: Value) -> Value {
    json!({
        "text": text,
        "mrkdwn": false,
        "unfurl_links": false,
        "unfurl_media": false,
        "attachments": [attachment],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::tests::notification;
    use crate::alerting::notification::{Compose, Decision};
    use crate::events::{EventKind, Outcome, Rejection};

    const HOSTILE: &str = "<!channel> @here *x* <http://evil|click>";

    fn fields(message: &Value) -> Vec<(String, String)> {
        message["attachments"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["title"].as_str().unwrap().to_owned(), f["value"].as_str().unwrap().to_owned()))
            .collect()
    }

    fn field_value(message: &Value, title: &str) -> Option<String> {
        fields(message).into_iter().find(|(t, _)| t == title).map(|(_, v)| v)
    }

    /// Every string anywhere in a JSON document.
    fn strings(value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items.iter().flat_map(strings).collect(),
            Value::Object(map) => map.values().flat_map(strings).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn hostile_text_is_escaped_and_cannot_mention_or_link() {
        let escaped = escape(HOSTILE, 200);
        assert_eq!(escaped, "&lt;!channel&gt; @\u{200B}here *x* &lt;http:\u{200B}//evil|click&gt;");
        assert!(!escaped.contains('<') && !escaped.contains('>'));
        assert_eq!(escape("a & b", 200), "a &amp; b", "an ampersand is escaped once");
        assert_eq!(escape("@everyone @channel", 200), "@\u{200B}everyone @\u{200B}channel");
        assert_eq!(escape("bell\u{7}\r\nnext", 200), "bell  \nnext");
        assert_eq!(escape("abcdef", 4), "abc…", "cut, with a mark that it was");
        assert_eq!(escape("<<<<", 3), "&lt;&lt;…", "cut before escaping: no half entity");
        assert_eq!(escape("plain", 5), "plain");
    }

    #[test]
    fn a_hostile_container_name_and_reason_reach_slack_only_escaped() {
        let mut n = notification(EventKind::RemediationComplete, HOSTILE);
        n.record.outcome = Some(Outcome::Success);
        n.record.reason = format!("log line: {HOSTILE} <@U123> <#C1|general>");
        n.record.output = Some("@channel wake up".into());
        let message = single(&n);
        for text in strings(&message) {
            assert!(!text.contains('<') && !text.contains('>'), "a raw angle bracket in {text:?}");
            assert!(!text.contains("@here") && !text.contains("@channel"), "a live mention in {text:?}");
            assert!(!text.contains("http://"), "a link in {text:?}");
        }
        assert_eq!(field_value(&message, "Container").unwrap(), escape(HOSTILE, 200));
        assert_eq!(message["mrkdwn"], false);
        assert_eq!(message["attachments"][0]["mrkdwn_in"], json!([]));
    }

    #[test]
    fn a_result_carries_what_on_call_needs() {
        let mut n = notification(EventKind::RemediationComplete, "web");
        n.record.outcome = Some(Outcome::Success);
        n.record.reason = "restarted; running for 30s".into();
        n.decision = Some(Decision {
            confidence: Some(0.9),
            analysis_method: Some("rules".into()),
            decided_by: Some("unexpected_exit".into()),
        });
        let message = single(&n);
        let attachment = &message["attachments"][0];
        assert_eq!(attachment["color"], "#36a64f");
        assert_eq!(attachment["title"], "Restart of web on host-a succeeded");
        assert_eq!(attachment["text"], "restarted; running for 30s");
        assert_eq!(attachment["ts"], 1_795_000_000);
        assert_eq!(
            fields(&message),
            [
                ("Node", "host-a"),
                ("Container", "web"),
                ("Action", "restart"),
                ("Result", "success"),
                ("Method", "rules (unexpected_exit)"),
                ("Confidence", "0.90"),
                ("Dry run", "no"),
                ("Time (UTC)", "2026-11-18T11:06:40Z"),
                ("Event", "remediation_complete 1795000000000-0"),
            ]
            .map(|(t, v)| (t.to_owned(), v.to_owned()))
        );
        assert!(message["text"].as_str().unwrap().contains("Restart of web on host-a succeeded"));
    }

    #[test]
    fn compose_and_links_are_shown_when_known() {
        let mut n = notification(EventKind::RemediationComplete, "shop-api-1");
        n.record.outcome = Some(Outcome::Failed);
        n.context.compose = Some(Compose { project: "shop".into(), service: "<api>".into() });
        n.context.event_url = Some("https://hemostat.test/#/timeline?type=x&node=host-a".into());
        n.context.container_url = Some("https://arcane.test/containers/c0ffee?a=1&b=2".into());
        let message = single(&n);
        assert_eq!(field_value(&message, "Compose").as_deref(), Some("shop/&lt;api&gt;"));
        assert_eq!(message["attachments"][0]["title_link"], "https://hemostat.test/#/timeline?type=x&node=host-a");
        assert_eq!(
            field_value(&message, "Docker UI").as_deref(),
            Some("https://arcane.test/containers/c0ffee?a=1&amp;b=2")
        );
    }

    #[test]
    fn colours_follow_the_seed() {
        let complete = |outcome| {
            let mut n = notification(EventKind::RemediationComplete, "web");
            n.record.outcome = Some(outcome);
            single(&n)["attachments"][0]["color"].as_str().unwrap().to_owned()
        };
        assert_eq!(complete(Outcome::Success), "#36a64f", "green: success");
        assert_eq!(complete(Outcome::Failed), "#ff0000", "red: failed");
        assert_eq!(complete(Outcome::NotApplicable), "#cccccc", "grey: not applicable");
        assert_eq!(complete(Outcome::Refused), "#ff9900", "orange: refused by the node");
        let colour_of = |kind, rejection| {
            let mut n = notification(kind, "web");
            n.record.rejection = rejection;
            single(&n)["attachments"][0]["color"].as_str().unwrap().to_owned()
        };
        assert_eq!(colour_of(EventKind::Rejected, Some(Rejection::CooldownActive)), "#ff9900", "orange: rejected");
        assert_eq!(colour_of(EventKind::FalseAlarm, None), "#ffcc00", "yellow: false alarm");
        assert_eq!(colour_of(EventKind::Storm, None), "#8b0000");
        assert_eq!(colour_of(EventKind::NodeLost, None), "#ff0000");
        assert_eq!(colour_of(EventKind::NodeRecovered, None), "#36a64f");
        assert_eq!(colour_of(EventKind::SpoolOverflow, None), "#ff9900");
    }

    #[test]
    fn a_dry_run_says_so() {
        let mut n = notification(EventKind::Rejected, "web");
        n.record.rejection = Some(Rejection::DryRun);
        let message = single(&n);
        assert_eq!(field_value(&message, "Dry run").as_deref(), Some("yes"));
        assert_eq!(field_value(&message, "Result").as_deref(), Some("dry_run"));
        let mut lost = notification(EventKind::NodeLost, "");
        lost.record.action = None;
        let message = single(&lost);
        assert_eq!(field_value(&message, "Container"), None, "node news has no container field");
        assert_eq!(field_value(&message, "Dry run"), None);
    }

    #[test]
    fn a_burst_is_one_message_listing_each_coloured_by_the_worst() {
        let mut burst_of: Vec<Notification> = (0..25)
            .map(|i| {
                let mut n = notification(EventKind::RemediationComplete, &format!("web{i}"));
                n.record.outcome = Some(Outcome::Success);
                n.record.time_ms += i * 100;
                n.id.seq = i;
                n
            })
            .collect();
        burst_of[3].record.outcome = Some(Outcome::Failed);
        burst_of[4].record.container_name = HOSTILE.into();
        let message = burst(&burst_of);
        assert_eq!(message["attachments"].as_array().unwrap().len(), 1);
        let attachment = &message["attachments"][0];
        assert_eq!(attachment["color"], "#ff0000", "the failure colours the burst");
        assert_eq!(attachment["title"], "HemoStat: 25 notifications at once");
        let text = attachment["text"].as_str().unwrap();
        assert_eq!(text.lines().count(), MAX_BURST_LINES + 1);
        assert_eq!(
            text.lines().next(),
            Some("• 2026-11-18T11:06:40Z  Restart of web0 on host-a succeeded — exited unexpectedly with code 1")
        );
        assert!(text.contains("Restart of web3 on host-a FAILED"));
        assert!(text.ends_with("… and 5 more (hemostat events)"), "{text}");
        for s in strings(&message) {
            assert!(!s.contains('<') && !s.contains("@here"), "{s}");
        }
        assert_eq!(field_value(&message, "Time (UTC)").unwrap(), "2026-11-18T11:06:40Z to 2026-11-18T11:06:42Z");
    }
}
