//! Sending one request: with a timeout, retried with exponential backoff, the same for every sink.
//!
//! The sink classifies each answer ([`Verdict`]). Delivered ends it. A retry waits as long as the service
//! asked (HTTP's `Retry-After`, Discord's `retry_after`), capped at [`RetryPolicy::max_retry_after`], or
//! else backs off (1 s, 2 s, 4 s, ... up to [`RetryPolicy::max_backoff`]); a timeout or a connection
//! failure backs off the same way. A refusal (a 4xx: the URL or the message is wrong) is final. After
//! [`RetryPolicy::attempts`] attempts the message is given up: the event log still has it.

use std::time::Duration;

use super::transport::{Reply, Request, Transport};

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

/// What an answer means, as the sink reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The service took it.
    Delivered,
    /// Try again: after this long if the service said, else after the backoff.
    Retry(Option<Duration>),
    /// The service refused it for good.
    Refused,
}

/// The usual reading of an HTTP answer: 2xx delivered; 429 and 5xx retried after their `Retry-After`;
/// anything else refused.
pub fn http_verdict(reply: &Reply) -> Verdict {
    match reply.status {
        200..=299 => Verdict::Delivered,
        429 | 500..=599 => Verdict::Retry(reply.retry_after),
        _ => Verdict::Refused,
    }
}

/// A request the service took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// How many attempts it took.
    pub attempts: u32,
    /// The service's answer, in a few words.
    pub answer: String,
}

/// Why a request was not delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// The service refused it for good (a 4xx other than 429, an SMTP 5xx).
    #[error("refused ({answer}); not retried")]
    Refused {
        /// The service's answer.
        answer: String,
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

/// Delivers `request` under `policy`, reading answers with `classify`; `protocol` names them in messages
/// (`HTTP`, `SMTP`).
pub async fn deliver(
    transport: &dyn Transport,
    request: &Request,
    classify: &(dyn Fn(&Reply) -> Verdict + Sync),
    policy: &RetryPolicy,
) -> Result<Delivered, DeliveryError> {
    let protocol = match request {
        Request::Http(_) => "HTTP",
        Request::Mail(_) => "SMTP",
    };
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        let (wait, last) = match transport.send(request, policy.timeout).await {
            Ok(reply) => match classify(&reply) {
                Verdict::Delivered => return Ok(Delivered { attempts: attempt, answer: reply.summary(protocol) }),
                Verdict::Retry(after) => (
                    after.map_or_else(|| policy.backoff(attempt), |w| w.min(policy.max_retry_after)),
                    reply.summary(protocol),
                ),
                Verdict::Refused => return Err(DeliveryError::Refused { answer: reply.summary(protocol) }),
            },
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
mod tests {
    use serde_json::json;
    use tokio::time::Instant;

    use super::*;
    use crate::alerting::transport::TransportError;
    use crate::alerting::transport::tests::{ScriptedTransport, status};

    fn call_times(transport: &ScriptedTransport, start: Instant) -> Vec<Duration> {
        transport.calls.lock().unwrap().iter().map(|(_, _, at)| at.duration_since(start)).collect()
    }

    async fn post(transport: &ScriptedTransport, policy: &RetryPolicy) -> Result<Delivered, DeliveryError> {
        deliver(transport, &Request::json("http://x", json!({})), &http_verdict, policy).await
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
        let attempts = post(&transport, &RetryPolicy::default()).await.map(|d| d.attempts);
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
        let result = post(&transport, &policy).await;
        assert_eq!(result, Err(DeliveryError::GaveUp { attempts: 3, last: "HTTP 500".into() }));
        let secs: Vec<u64> = call_times(&transport, start).iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 60, 62], "Retry-After: 3600 waited only the 60 s cap; then 2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_4xx_is_final() {
        let transport = ScriptedTransport::answering("http://x", [status(404, None)]);
        let result = post(&transport, &RetryPolicy::default()).await;
        assert_eq!(result, Err(DeliveryError::Refused { answer: "HTTP 404".into() }));
        assert_eq!(transport.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sink_decides_what_an_answer_means() {
        // An SMTP-like reading: 4xx is temporary, 5xx final.
        let smtp = |reply: &Reply| match reply.status {
            200..=299 => Verdict::Delivered,
            400..=499 => Verdict::Retry(None),
            _ => Verdict::Refused,
        };
        let transport = ScriptedTransport::answering("http://x", [status(451, None), status(250, None)]);
        let request = Request::json("http://x", json!({}));
        let delivered = deliver(&transport, &request, &smtp, &RetryPolicy::default()).await.unwrap();
        assert_eq!(delivered, Delivered { attempts: 2, answer: "HTTP 250".into() });
        let transport = ScriptedTransport::answering("http://x", [status(554, None)]);
        let refused = deliver(&transport, &request, &smtp, &RetryPolicy::default()).await;
        assert_eq!(refused, Err(DeliveryError::Refused { answer: "HTTP 554".into() }));
    }
}
