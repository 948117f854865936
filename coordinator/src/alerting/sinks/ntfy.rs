//! ntfy (`NTFY_URL`, the topic's URL; `NTFY_TOKEN` for a protected topic): the message as plain text, its
//! headline as the title, the priority and tags from how serious it is, a tap opening the event in the
//! dashboard and a button opening the container in the Docker UI.
//!
//! HTTP headers cannot carry untrusted text as it is: the title is always sent RFC 2047-encoded
//! (`=?UTF-8?B?…?=`, which ntfy decodes), so no name can break a header or add one; the other headers
//! hold only HemoStat's own words and percent-encoded links.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::alerting::AlertingConfig;
use crate::alerting::escape::{one_line, plain};
use crate::alerting::grouping::Message;
use crate::alerting::notification::{Notification, Tone};
use crate::alerting::sink::Sink;
use crate::alerting::transport::{Body, HttpRequest, Request};

/// The longest title, in characters.
const MAX_TITLE_CHARS: usize = 150;
/// The longest message, in characters (ntfy takes 4096 bytes as a message; longer becomes an attachment).
const MAX_MESSAGE_CHARS: usize = 1000;
/// The most lines a burst lists.
const MAX_BURST_LINES: usize = 20;

/// The ntfy sink.
pub struct Ntfy {
    url: String,
    token: Option<String>,
}

impl Ntfy {
    /// The sink, when ntfy is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        Some(Ntfy { url: config.ntfy_url.clone()?, token: config.ntfy_token.clone() })
    }
}

/// ntfy's priority (1 min … 5 urgent) and emoji tags, by tone.
fn priority_and_tags(tone: Tone) -> (&'static str, &'static str) {
    match tone {
        Tone::Critical => ("5", "sos"),
        Tone::Failure => ("4", "rotating_light"),
        Tone::Warning => ("3", "warning"),
        Tone::FalseAlarm => ("2", "grey_question"),
        Tone::Success => ("2", "white_check_mark"),
        Tone::NotApplicable => ("2", "information_source"),
    }
}

/// A header value of any text: RFC 2047's base64 encoded-word.
pub fn encoded_word(text: &str) -> String {
    format!("=?UTF-8?B?{}?=", STANDARD.encode(text))
}

/// The message text of one notification: the reason, then the facts.
fn text(n: &Notification) -> String {
    let record = &n.record;
    let mut lines = vec![plain(&record.reason, MAX_MESSAGE_CHARS)];
    let mut fact = |name: &str, value: &str| {
        if !value.is_empty() {
            lines.push(format!("{name}: {}", one_line(value, 200)));
        }
    };
    fact("Host", &record.node);
    fact("Container", &record.container_name);
    if let Some(compose) = &n.context.compose {
        fact("Compose", &format!("{}/{}", compose.project, compose.service));
    }
    fact("Result", n.result().unwrap_or_default());
    fact("Event", &format!("{} {}", record.kind.name(), n.id));
    lines.join("\n")
}

impl Sink for Ntfy {
    fn name(&self) -> &'static str {
        "ntfy"
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        let (title, body, tone, first) = match message {
            Message::Single(n) => (n.headline(), text(n), n.tone(), n),
            Message::Burst(ns) => {
                let mut lines: Vec<String> =
                    ns.iter().take(MAX_BURST_LINES).map(|n| format!("- {}", one_line(&n.headline(), 150))).collect();
                if ns.len() > MAX_BURST_LINES {
                    lines.push(format!("… and {} more (hemostat events)", ns.len() - MAX_BURST_LINES));
                }
                let tone = ns.iter().map(Notification::tone).max().unwrap_or(Tone::NotApplicable);
                (format!("HemoStat: {} notifications at once", ns.len()), lines.join("\n"), tone, &ns[0])
            }
        };
        let (priority, tags) = priority_and_tags(tone);
        let mut headers = vec![
            ("X-Title".to_owned(), encoded_word(&one_line(&title, MAX_TITLE_CHARS))),
            ("X-Priority".to_owned(), priority.to_owned()),
            ("X-Tags".to_owned(), format!("{tags},hemostat")),
        ];
        if let Message::Single(_) = message {
            if let Some(url) = &first.context.event_url {
                headers.push(("X-Click".to_owned(), url.clone()));
            }
            if let Some(url) = &first.context.container_url {
                headers.push(("X-Actions".to_owned(), format!("view, Open the container, {url}")));
            }
        }
        if let Some(token) = &self.token {
            headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
        }
        vec![Request::Http(HttpRequest { url: self.url.clone(), headers, body: Body::Text(body) })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::tests::notification;
    use crate::events::{EventKind, Outcome};

    #[test]
    fn the_title_is_encoded_and_the_headers_say_how_serious() {
        let config = AlertingConfig {
            ntfy_url: Some("https://ntfy.test/hemostat".into()),
            ntfy_token: Some("tk_secret".into()),
            ..AlertingConfig::default()
        };
        let ntfy = Ntfy::new(&config).unwrap();
        let mut n = notification(EventKind::RemediationComplete, "wéb\r\nX-Evil: 1");
        n.record.outcome = Some(Outcome::Failed);
        n.context.event_url = Some("https://hemostat.test/#/timeline?type=x".into());
        n.context.container_url = Some("https://arcane.test/containers/c0ffee".into());
        let [Request::Http(request)] = &ntfy.render(&Message::Single(n))[..] else { panic!("one HTTP request") };
        assert_eq!(request.url, "https://ntfy.test/hemostat");
        let header = |name: &str| request.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let title = header("X-Title").unwrap();
        assert_eq!(title, encoded_word("Restart of wéb  X-Evil: 1 on host-a FAILED"));
        assert!(title.is_ascii() && !title.contains('\n'));
        assert_eq!(
            (header("X-Priority").as_deref(), header("X-Tags").as_deref()),
            (Some("4"), Some("rotating_light,hemostat"))
        );
        assert_eq!(header("X-Click").as_deref(), Some("https://hemostat.test/#/timeline?type=x"));
        assert_eq!(
            header("X-Actions").as_deref(),
            Some("view, Open the container, https://arcane.test/containers/c0ffee")
        );
        assert_eq!(header("Authorization").as_deref(), Some("Bearer tk_secret"));
        let Body::Text(text) = &request.body else { panic!("plain text") };
        assert!(text.starts_with("exited unexpectedly with code 1\nHost: host-a\n"), "{text}");
        assert_eq!(encoded_word("é"), "=?UTF-8?B?w6k=?=");
    }
}
