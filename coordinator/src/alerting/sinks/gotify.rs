//! Gotify (`GOTIFY_URL`, `GOTIFY_TOKEN`): a message through its `/message` API, authenticated by an
//! application token in the `X-Gotify-Key` header, shown as plain text (so nothing in it renders as
//! Markdown), with a click opening the event in the dashboard.

use serde_json::{Value, json};

use crate::alerting::AlertingConfig;
use crate::alerting::escape::one_line;
use crate::alerting::grouping::Message;
use crate::alerting::notification::{Burst, Notification, Tone};
use crate::alerting::sink::Sink;
use crate::alerting::transport::{Body, HttpRequest, Request};

/// The longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// The longest reason, in characters.
const MAX_REASON_CHARS: usize = 2000;
/// The most lines a burst lists.
const MAX_BURST_LINES: usize = 30;

/// The Gotify sink.
pub struct Gotify {
    url: String,
    token: String,
}

impl Gotify {
    /// The sink, when Gotify is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        let base = config.gotify_url.as_ref()?.trim_end_matches('/');
        Some(Gotify { url: format!("{base}/message"), token: config.gotify_token.clone()? })
    }
}

/// Gotify's priority (0 … 10; 8 and above alert loudly on Android), by tone.
fn priority(tone: Tone) -> u8 {
    match tone {
        Tone::Critical => 9,
        Tone::Failure => 8,
        Tone::Warning => 5,
        Tone::FalseAlarm | Tone::Success | Tone::NotApplicable => 2,
    }
}

impl Sink for Gotify {
    fn name(&self) -> &'static str {
        "gotify"
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        let (title, message_text, tone, click) = match message {
            Message::Single(n) => (n.headline(), n.plain_text(MAX_REASON_CHARS), n.tone(), n.context.event_url.clone()),
            Message::Burst(ns) => {
                let burst = Burst::of(ns, MAX_BURST_LINES, |n| format!("- {}", one_line(&n.headline(), 150)));
                (burst.title, burst.lines.join("\n"), burst.tone, None)
            }
        };
        let mut extras = json!({"client::display": {"contentType": "text/plain"}});
        if let Some(url) = click {
            extras["client::notification"] = json!({"click": {"url": url}});
        }
        let body: Value = json!({
            "title": one_line(&title, MAX_TITLE_CHARS),
            "message": message_text,
            "priority": priority(tone),
            "extras": extras,
        });
        let headers = vec![("X-Gotify-Key".to_owned(), self.token.clone())];
        vec![Request::Http(HttpRequest { url: self.url.clone(), headers, body: Body::Json(body) })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::tests::notification;
    use crate::events::{EventKind, Outcome};

    #[test]
    fn a_message_goes_to_the_message_api_with_the_token_as_plain_text() {
        let config = AlertingConfig {
            gotify_url: Some("https://gotify.test/".into()),
            gotify_token: Some("AppToken".into()),
            ..AlertingConfig::default()
        };
        let gotify = Gotify::new(&config).unwrap();
        let mut n = notification(EventKind::RemediationComplete, "**web**");
        n.record.outcome = Some(Outcome::Failed);
        n.context.event_url = Some("https://hemostat.test/#/timeline".into());
        let [Request::Http(request)] = &gotify.render(&Message::Single(n))[..] else { panic!("one HTTP request") };
        assert_eq!(request.url, "https://gotify.test/message");
        assert_eq!(request.headers, [("X-Gotify-Key".to_owned(), "AppToken".to_owned())]);
        let Body::Json(body) = &request.body else { panic!("JSON") };
        assert_eq!(body["title"], "Restart of **web** on host-a FAILED");
        assert_eq!(body["priority"], 8);
        assert_eq!(body["extras"]["client::display"]["contentType"], "text/plain", "never rendered as Markdown");
        assert_eq!(body["extras"]["client::notification"]["click"]["url"], "https://hemostat.test/#/timeline");
        assert!(body["message"].as_str().unwrap().contains("Host: host-a"));
    }
}
