//! Sending one message: an HTTP POST of JSON with a timeout, retried with exponential backoff.
//!
//! A 2xx answer is delivered. A 429 waits as long as its `Retry-After` says (in seconds; an HTTP date, or
//! none, falls back to the backoff), capped at [`RetryPolicy::max_retry_after`]; a 5xx, a timeout or a
//! connection failure backs off (1 s, 2 s, 4 s, ... up to [`RetryPolicy::max_backoff`]; a 5xx's own
//! `Retry-After` is honoured the same way). Any other answer (a 4xx: the URL or the message is wrong) is
//! final. After [`RetryPolicy::attempts`] attempts the message is given up: the event log still has it.
//!
//! Errors never contain the URL: a Slack webhook URL is a secret.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

/// How a sink retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait after the first failure; doubled after each later one.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
    /// How long one request may take.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1 for the first), without a `Retry-After`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A server's answer, as far as delivery cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, when it held seconds.
    pub retry_after: Option<Duration>,
}

/// A request that got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// The server refused it for good (a 4xx other than 429).
    #[error("refused with HTTP {status}; not retried")]
    Refused {
        /// The status.
        status: u16,
    },
    /// Every attempt failed.
    #[error("gave up after {attempts} attempts; the last: {last}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// What the last one got.
        last: String,
    },
}

/// Posts JSON somewhere: HTTP in production, a script in tests.
#[async_trait]
pub trait Transport: Send + Sync {
    /// POSTs `body` as `application/json` to `url`, within `timeout`.
    async fn post_json(&self, url: &str, body: &Value, timeout: Duration) -> Result<Reply, TransportError>;
}

/// The HTTP transport (reqwest with rustls on aws-lc-rs).
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport with its own connection pool; fails when no HTTP client can be built here (e.g. no CA
    /// certificates on the host for HTTPS).
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("hemostat-coordinator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpTransport { client })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn post_json(&self, url: &str, body: &Value, timeout: Duration) -> Result<Reply, TransportError> {
        let response = self
            .client
            .post(url)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| TransportError(e.without_url().to_string()))?;
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        Ok(Reply { status: response.status().as_u16(), retry_after })
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

/// Delivers `body` to `url` under `policy`; returns how many attempts it took.
pub async fn deliver(
    transport: &dyn Transport,
    url: &str,
    body: &Value,
    policy: &RetryPolicy,
) -> Result<u32, DeliveryError> {
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        let (wait, last) = match transport.post_json(url, body, policy.timeout).await {
            Ok(reply) if (200..300).contains(&reply.status) => return Ok(attempt),
            Ok(reply) if reply.status == 429 || (500..600).contains(&reply.status) => {
                let wait = reply.retry_after.map_or_else(|| policy.backoff(attempt), |w| w.min(policy.max_retry_after));
                (wait, format!("HTTP {}", reply.status))
            }
            Ok(reply) => return Err(DeliveryError::Refused { status: reply.status }),
            Err(error) => (policy.backoff(attempt), error.0),
        };
        if attempt >= attempts {
            return Err(DeliveryError::GaveUp { attempts, last });
        }
        tracing::debug!(attempt, wait = ?wait, last = %last, "notification not delivered yet; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use serde_json::json;
    use tokio::time::Instant;

    use super::*;

    /// A transport answering from a script per URL (200 once it runs out), recording each call's body and time.
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
        async fn post_json(&self, url: &str, body: &Value, _timeout: Duration) -> Result<Reply, TransportError> {
            self.calls.lock().unwrap().push((url.to_owned(), body.clone(), Instant::now()));
            let next = self.replies.lock().unwrap().get_mut(url).and_then(VecDeque::pop_front);
            next.unwrap_or(Ok(Reply { status: 200, retry_after: None }))
        }
    }

    pub(crate) fn status(status: u16, retry_after: Option<u64>) -> Result<Reply, TransportError> {
        Ok(Reply { status, retry_after: retry_after.map(Duration::from_secs) })
    }

    fn call_times(transport: &ScriptedTransport, start: Instant) -> Vec<Duration> {
        transport.calls.lock().unwrap().iter().map(|(_, _, at)| at.duration_since(start)).collect()
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
    fn backoff_doubles_up_to_its_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7).map(|n| policy.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(policy.backoff(1000), policy.max_backoff);
    }

    #[tokio::test(start_paused = true)]
    async fn a_5xx_backs_off_and_a_429_waits_its_retry_after() {
        let transport = ScriptedTransport::answering(
            "http://x",
            [
                status(500, None),
                status(503, None),
                status(429, Some(7)),
                Err(TransportError("timed out".into())),
                status(200, None),
            ],
        );
        let start = Instant::now();
        let attempts = deliver(&transport, "http://x", &json!({}), &RetryPolicy::default()).await;
        assert_eq!(attempts, Ok(5));
        let secs: Vec<u64> = call_times(&transport, start).iter().map(Duration::as_secs).collect();
        // 500: wait 1 s; 503: wait 2 s; 429: wait its 7 s; timeout: wait 8 s (the fourth backoff).
        assert_eq!(secs, [0, 1, 3, 10, 18]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_retry_after_is_capped_and_attempts_are_bounded() {
        let transport =
            ScriptedTransport::answering("http://x", [status(429, Some(3600)), status(500, None), status(500, None)]);
        let policy = RetryPolicy { attempts: 3, ..RetryPolicy::default() };
        let start = Instant::now();
        let result = deliver(&transport, "http://x", &json!({}), &policy).await;
        assert_eq!(result, Err(DeliveryError::GaveUp { attempts: 3, last: "HTTP 500".into() }));
        let secs: Vec<u64> = call_times(&transport, start).iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 60, 62], "Retry-After: 3600 waited only the 60 s cap; then 2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_4xx_is_final() {
        let transport = ScriptedTransport::answering("http://x", [status(404, None)]);
        let result = deliver(&transport, "http://x", &json!({}), &RetryPolicy::default()).await;
        assert_eq!(result, Err(DeliveryError::Refused { status: 404 }));
        assert_eq!(transport.calls.lock().unwrap().len(), 1);
    }
}
