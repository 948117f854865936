//! Carrying a sink's request to its service: HTTP for the chat and alerting services, SMTP for email.
//!
//! A sink says *what* to send ([`Request`]); the [`Transport`] sends it and reports the service's answer
//! ([`Reply`]) without judging it: the sink classifies it ([`Sink::classify`](super::sink::Sink::classify)).
//! Errors and replies never contain the URL: a webhook URL is a secret.

use std::time::Duration;

use async_trait::async_trait;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

/// The most characters of an answer's body kept (for logs and `hemostat notify test`).
const MAX_ANSWER_CHARS: usize = 300;

/// What a sink sends for one message.
#[derive(Clone, Debug)]
pub enum Request {
    /// An HTTP POST.
    Http(HttpRequest),
    /// An email, through the configured SMTP server.
    Mail(Box<lettre::Message>),
}

impl Request {
    /// A POST of `body` as JSON to `url`.
    pub fn json(url: &str, body: Value) -> Self {
        Request::Http(HttpRequest { url: url.to_owned(), headers: Vec::new(), body: Body::Json(body) })
    }
}

/// An HTTP POST.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// Where to.
    pub url: String,
    /// Extra headers (names and values the sink made safe: no line breaks).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

/// An HTTP body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// `application/json`.
    Json(Value),
    /// `text/plain; charset=utf-8`.
    Text(String),
}

/// A service's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status, or the SMTP reply code.
    pub status: u16,
    /// The `Retry-After` header, when it held seconds.
    pub retry_after: Option<Duration>,
    /// The start of the body (HTTP) or the reply text (SMTP), control characters replaced.
    pub body: String,
}

impl Reply {
    /// An answer with this status and nothing else.
    pub fn status(status: u16) -> Self {
        Reply { status, retry_after: None, body: String::new() }
    }

    /// The answer in a few words, for logs and `hemostat notify test`: `HTTP 429: {"message": ...}`.
    pub fn summary(&self, protocol: &str) -> String {
        if self.body.is_empty() {
            format!("{protocol} {}", self.status)
        } else {
            format!("{protocol} {}: {}", self.status, self.body)
        }
    }
}

/// A request that got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Sends requests: HTTP and SMTP in production, a script in tests.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` within `timeout` and returns the service's answer.
    async fn send(&self, request: &Request, timeout: Duration) -> Result<Reply, TransportError>;
}

/// The production transport: reqwest (rustls on aws-lc-rs) and, when email is configured, lettre.
pub struct NetworkTransport {
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl NetworkTransport {
    /// A transport with its own HTTP connection pool and `smtp` for email; fails when no HTTP client can
    /// be built here (e.g. no CA certificates on the host for HTTPS).
    pub fn new(smtp: Option<AsyncSmtpTransport<Tokio1Executor>>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("hemostat-coordinator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(NetworkTransport { http, smtp })
    }

    async fn post(&self, request: &HttpRequest, timeout: Duration) -> Result<Reply, TransportError> {
        let mut builder = self.http.post(&request.url).timeout(timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match &request.body {
            Body::Json(value) => builder.json(value),
            Body::Text(text) => {
                builder.header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8").body(text.clone())
            }
        };
        let response = builder.send().await.map_err(|e| TransportError(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // The body only matters for what it says; a body that cannot be read is an empty one.
        let body = response.text().await.unwrap_or_default();
        Ok(Reply { status, retry_after, body: printable(&body) })
    }

    async fn mail(&self, message: &lettre::Message, timeout: Duration) -> Result<Reply, TransportError> {
        let smtp =
            self.smtp.as_ref().ok_or_else(|| TransportError("no SMTP server is configured (SMTP_URL)".into()))?;
        match tokio::time::timeout(timeout, smtp.send(message.clone())).await {
            Err(_) => Err(TransportError(format!("no answer from the SMTP server within {}s", timeout.as_secs()))),
            Ok(Ok(response)) => Ok(Reply {
                status: u16::from(response.code()),
                retry_after: None,
                body: printable(&response.message().collect::<Vec<_>>().join(" ")),
            }),
            // A reply with a code is an answer to classify; anything else (connection, TLS) never got one.
            Ok(Err(error)) => match error.status() {
                Some(code) => {
                    Ok(Reply { status: u16::from(code), retry_after: None, body: printable(&error.to_string()) })
                }
                None => Err(TransportError(error.to_string())),
            },
        }
    }
}

#[async_trait]
impl Transport for NetworkTransport {
    async fn send(&self, request: &Request, timeout: Duration) -> Result<Reply, TransportError> {
        match request {
            Request::Http(request) => self.post(request, timeout).await,
            Request::Mail(message) => self.mail(message, timeout).await,
        }
    }
}

/// A `Retry-After` value in seconds (`"120"`); `None` for an HTTP date or anything else.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u64>().map_or(Duration::MAX, Duration::from_secs))
}

/// An answer's text cut to [`MAX_ANSWER_CHARS`], control characters as spaces: safe for one log line.
fn printable(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text.chars().take(MAX_ANSWER_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > MAX_ANSWER_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    /// What the scripted transport records for a mail: its "URL".
    pub(crate) const SMTP: &str = "smtp";

    /// A transport answering from a script per URL (200 once it runs out), recording each call's body and
    /// time. A text body is recorded as a JSON string, a mail (under [`SMTP`]) as its formatted text.
    #[derive(Default)]
    pub(crate) struct ScriptedTransport {
        replies: Mutex<HashMap<String, VecDeque<Result<Reply, TransportError>>>>,
        pub(crate) calls: Mutex<Vec<(String, Value, Instant)>>,
    }

    impl ScriptedTransport {
        /// Answers the requests to `url` with `replies` first.
        pub(crate) fn answering(url: &str, replies: impl IntoIterator<Item = Result<Reply, TransportError>>) -> Self {
            let transport = ScriptedTransport::default();
            transport.replies.lock().unwrap().insert(url.to_owned(), replies.into_iter().collect());
            transport
        }

        pub(crate) fn bodies(&self, url: &str) -> Vec<Value> {
            self.calls.lock().unwrap().iter().filter(|(u, _, _)| u == url).map(|(_, b, _)| b.clone()).collect()
        }
    }

    #[async_trait]
    impl Transport for ScriptedTransport {
        async fn send(&self, request: &Request, _timeout: Duration) -> Result<Reply, TransportError> {
            let (url, body) = match request {
                Request::Http(http) => (
                    http.url.clone(),
                    match &http.body {
                        Body::Json(value) => value.clone(),
                        Body::Text(text) => Value::String(text.clone()),
                    },
                ),
                Request::Mail(message) => {
                    (SMTP.to_owned(), Value::String(String::from_utf8_lossy(&message.formatted()).into_owned()))
                }
            };
            self.calls.lock().unwrap().push((url.clone(), body, Instant::now()));
            let next = self.replies.lock().unwrap().get_mut(&url).and_then(VecDeque::pop_front);
            next.unwrap_or(Ok(Reply::status(200)))
        }
    }

    pub(crate) fn status(status: u16, retry_after: Option<u64>) -> Result<Reply, TransportError> {
        Ok(Reply { status, retry_after: retry_after.map(Duration::from_secs), body: String::new() })
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(Duration::MAX),
            "huge, then capped by the policy"
        );
        for unreadable in ["", "-1", "1.5", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            assert_eq!(parse_retry_after(unreadable), None, "{unreadable:?}");
        }
    }

    #[test]
    fn answers_are_cut_and_made_printable() {
        assert_eq!(printable(" a\r\nb\u{7} "), "a  b ");
        let long = printable(&"x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_ANSWER_CHARS + 1);
        assert_eq!(Reply::status(204).summary("HTTP"), "HTTP 204");
        let reply = Reply { status: 429, retry_after: None, body: "slow down".into() };
        assert_eq!(reply.summary("HTTP"), "HTTP 429: slow down");
    }
}
