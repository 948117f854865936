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
use crate::alerting::escape::one_line;
use crate::alerting::grouping::Message;
use crate::alerting::notification::{Burst, Notification, Tone};
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

impl Sink for Ntfy {
    fn name(&self) -> &'static str {
        "ntfy"
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        let (title, body, tone, first) = match message {
            Message::Single(n) => (n.headline(), n.plain_text(MAX_MESSAGE_CHARS), n.tone(), n),
            Message::Burst(ns) => {
                let burst = Burst::of(ns, MAX_BURST_LINES, |n| format!("- {}", one_line(&n.headline(), 150)));
                (burst.title, burst.lines.join("\n"), burst.tone, &ns[0])
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
        assert!(text.starts_with("exited unexpectedly with code 1\n\nHost: host-a\n"), "{text}");
        assert_eq!(encoded_word("é"), "=?UTF-8?B?w6k=?=");
    }
}
