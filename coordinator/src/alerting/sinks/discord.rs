//! Discord (`DISCORD_WEBHOOK_URL`): a channel webhook's message with one embed, coloured as Slack's
//! attachments are (the seed's colours), its title linking to the event in the dashboard.
//!
//! Discord refuses a message beyond its limits (HTTP 400): an embed's title 256 characters, description
//! 4096, at most 25 fields of name 256 and value 1024, footer 2048, and 6000 in all; every text here is
//! cut well within them before it is escaped ([`markdown`]), and `allowed_mentions` is empty so nothing
//! in a message can ping anyone. Discord rate-limits webhooks with HTTP 429 and a JSON body whose
//! `retry_after` (seconds, fractional) says how long to wait; that wait is honoured.

use std::time::Duration;

use serde_json::{Value, json};

use crate::alerting::AlertingConfig;
use crate::alerting::delivery::{Verdict, http_verdict};
use crate::alerting::escape::markdown;
use crate::alerting::grouping::Message;
use crate::alerting::notification::{Burst, Notification, Tone};
use crate::alerting::sink::Sink;
use crate::alerting::sinks::slack::colour;
use crate::alerting::transport::{Reply, Request};

/// Characters of a title before escaping (escaped, at most 2 × 120 + 1 ≤ 256).
const MAX_TITLE_CHARS: usize = 120;
/// Characters of a description before escaping.
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Characters of a field value before escaping.
const MAX_VALUE_CHARS: usize = 100;
/// Characters of a command's output before escaping.
const MAX_OUTPUT_CHARS: usize = 400;
/// Characters of one line of a burst before escaping.
const MAX_LINE_CHARS: usize = 90;
/// The most lines a burst lists (20 × (2 × 90 + 30) stays within a description's 4096).
const MAX_BURST_LINES: usize = 18;

/// The Discord sink.
pub struct Discord {
    url: String,
}

impl Discord {
    /// The sink, when Discord is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        Some(Discord { url: config.discord_webhook_url.clone()? })
    }
}

/// An embed's colour: Slack's, as a number.
fn embed_colour(tone: Tone) -> u32 {
    u32::from_str_radix(colour(tone).trim_start_matches('#'), 16).unwrap_or_default()
}

fn field(name: &str, value: String, inline: bool) -> Value {
    json!({"name": name, "value": value, "inline": inline})
}

/// The embed of one notification.
fn embed(n: &Notification) -> Value {
    let record = &n.record;
    let mut fields: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(name, value)| field(name, markdown(&value, MAX_VALUE_CHARS), name != "Event"))
        .collect();
    if let Some(output) = record.output.as_deref().filter(|o| !o.is_empty()) {
        fields.push(field("Output", markdown(output, MAX_OUTPUT_CHARS), false));
    }
    if let Some(url) = &n.context.container_url {
        // Our own link, its parts percent-encoded: a masked link is safe.
        fields.push(field("Docker UI", format!("[Open the container]({url})"), false));
    }
    let mut embed = json!({
        "title": markdown(&n.headline(), MAX_TITLE_CHARS),
        "description": markdown(&record.reason, MAX_DESCRIPTION_CHARS),
        "color": embed_colour(n.tone()),
        "fields": fields,
        "footer": {"text": "HemoStat"},
        "timestamp": n.time_rfc3339(),
    });
    if let Some(url) = &n.context.event_url {
        embed["url"] = Value::String(url.clone());
    }
    embed
}

/// The one embed listing a burst, coloured by the most serious.
fn burst_embed(ns: &[Notification]) -> Value {
    let burst = Burst::of(ns, MAX_BURST_LINES, |n| {
        format!("• {} {}", n.time_rfc3339(), markdown(&n.headline(), MAX_LINE_CHARS))
    });
    json!({
        "title": burst.title,
        "description": burst.lines.join("\n"),
        "color": embed_colour(burst.tone),
        "footer": {"text": "HemoStat"},
        "timestamp": ns.last().map(Notification::time_rfc3339).unwrap_or_default(),
    })
}

/// A webhook message: one embed, no mention allowed.
pub fn body(message: &Message<Notification>) -> Value {
    let embed = match message {
        Message::Single(n) => embed(n),
        Message::Burst(ns) => burst_embed(ns),
    };
    json!({"username": "HemoStat", "allowed_mentions": {"parse": []}, "embeds": [embed]})
}

impl Sink for Discord {
    fn name(&self) -> &'static str {
        "discord"
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        vec![Request::json(&self.url, body(message))]
    }

    /// A 429's wait is its body's `retry_after` (fractional seconds), else its `Retry-After`.
    fn classify(&self, reply: &Reply) -> Verdict {
        if reply.status == 429
            && let Some(seconds) = serde_json::from_str::<Value>(&reply.body)
                .ok()
                .and_then(|body| body["retry_after"].as_f64())
                .filter(|s| s.is_finite() && *s >= 0.0)
        {
            return Verdict::Retry(Some(Duration::from_secs_f64(seconds.min(3600.0))));
        }
        http_verdict(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::Compose;
    use crate::alerting::notification::tests::notification;
    use crate::events::{EventKind, Outcome};

    const HOSTILE: &str = "@everyone **x** <@123> [click](http://evil) `y`";

    /// Discord's documented embed limits, counted in UTF-16 units (stricter than characters).
    fn within_limits(body: &Value) {
        let len = |v: &Value| v.as_str().map_or(0, |s| s.encode_utf16().count());
        let embeds = body["embeds"].as_array().unwrap();
        assert!(embeds.len() <= 10);
        let mut total = 0;
        for embed in embeds {
            assert!(len(&embed["title"]) <= 256 && len(&embed["description"]) <= 4096, "{embed:#}");
            assert!(len(&embed["footer"]["text"]) <= 2048);
            total += len(&embed["title"]) + len(&embed["description"]) + len(&embed["footer"]["text"]);
            let fields = embed["fields"].as_array().cloned().unwrap_or_default();
            assert!(fields.len() <= 25);
            for field in fields {
                assert!(len(&field["name"]) <= 256 && len(&field["value"]) <= 1024 && len(&field["value"]) > 0);
                total += len(&field["name"]) + len(&field["value"]);
            }
        }
        assert!(total <= 6000, "{total}");
    }

    #[test]
    fn a_notification_is_one_embed_in_the_seeds_colour_naming_host_compose_and_links() {
        let mut n = notification(EventKind::RemediationComplete, "shop-web-1");
        n.record.outcome = Some(Outcome::Success);
        n.context.compose = Some(Compose { project: "shop".into(), service: "web".into() });
        n.context.event_url = Some("https://hemostat.test/#/timeline?type=remediation_complete".into());
        n.context.container_url = Some("https://arcane.test/containers/c0ffee".into());
        let body = body(&Message::Single(n));
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        let embed = &body["embeds"][0];
        assert_eq!(embed["color"], 0x36a64f, "green");
        assert_eq!(embed["title"], "Restart of shop\\-web\\-1 on host\\-a succeeded");
        assert_eq!(embed["url"], "https://hemostat.test/#/timeline?type=remediation_complete");
        assert_eq!(embed["timestamp"], "2026-11-18T11:06:40Z");
        let fields: Vec<(String, String)> = embed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_owned(), f["value"].as_str().unwrap().to_owned()))
            .collect();
        assert!(fields.contains(&("Host".into(), "host\\-a".into())), "{fields:?}");
        assert!(fields.contains(&("Compose project".into(), "shop".into())), "{fields:?}");
        assert!(
            fields
                .contains(&("Docker UI".into(), "[Open the container](https://arcane.test/containers/c0ffee)".into()))
        );
        within_limits(&body);
    }

    #[test]
    fn hostile_text_is_inert_and_the_longest_message_stays_within_discords_limits() {
        let mut n = notification(EventKind::RemediationComplete, &format!("{HOSTILE}{}", "_".repeat(600)));
        n.record.outcome = Some(Outcome::Failed);
        n.record.node = "*".repeat(253);
        n.record.reason = format!("{HOSTILE} {}", "`".repeat(5000));
        n.record.output = Some("|".repeat(5000));
        n.record.analysis_method = Some("#".repeat(500));
        n.record.decided_by = Some("-".repeat(500));
        let body = body(&Message::Single(n.clone()));
        let text = body.to_string();
        assert!(!text.contains("@everyone") && !text.contains("<@123>") && !text.contains("http://evil"), "{text}");
        within_limits(&body);
        let many: Vec<Notification> = (0..50).map(|_| n.clone()).collect();
        let burst = super::body(&Message::Burst(many));
        within_limits(&burst);
        assert_eq!(burst["embeds"][0]["color"], 0xff0000);
        assert!(burst["embeds"][0]["description"].as_str().unwrap().ends_with("… and 32 more (hemostat events)"));
    }

    #[test]
    fn a_rate_limit_waits_what_discord_says() {
        let discord = Discord { url: "http://discord".into() };
        let limited = Reply {
            status: 429,
            retry_after: Some(Duration::from_secs(2)),
            body: r#"{"message": "You are being rate limited.", "retry_after": 0.35, "global": false}"#.into(),
        };
        assert_eq!(discord.classify(&limited), Verdict::Retry(Some(Duration::from_millis(350))));
        let header_only = Reply { body: "rate limited".into(), ..limited.clone() };
        assert_eq!(discord.classify(&header_only), Verdict::Retry(Some(Duration::from_secs(2))));
        assert_eq!(discord.classify(&Reply::status(204)), Verdict::Delivered);
        assert_eq!(discord.classify(&Reply::status(400)), Verdict::Refused);
    }
}
