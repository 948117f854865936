//! `hemostat notify test`: a test notification through each configured sink, or the one named, sent now
//! and once (no queue, filter, deduplication or retry: the answer is the service's own), and what each
//! answered. `Fleet::test_notifications` is the command; the gRPC handler converts its answer.

use futures::future::join_all;

use crate::events::{EventId, EventKind, EventRecord, unix_ms};

use super::Notifier;
use super::delivery::{RetryPolicy, deliver};
use super::notification::Notification;

/// What one sink did with the test notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// The sink.
    pub sink: &'static str,
    /// Whether the service took it.
    pub delivered: bool,
    /// What it answered, or why there was no answer.
    pub answer: String,
}

/// Why no test was sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    /// Notifications are off, or no sink is configured.
    #[error("no notification sink is configured (or ALERT_ENABLED is false)")]
    NoSinks,
    /// No configured sink has that name.
    #[error("no sink {name:?} is configured; configured: {}", configured.join(", "))]
    UnknownSink {
        /// The name asked for.
        name: String,
        /// The sinks configured.
        configured: Vec<&'static str>,
    },
}

impl Notifier {
    /// Sends a test notification, asked for by `operator`, through the sink named `sink` (every sink when
    /// empty), and returns each one's answer.
    pub async fn test(&self, sink: &str, operator: &str) -> Result<Vec<ProbeResult>, ProbeError> {
        let active = self.active.as_ref().ok_or(ProbeError::NoSinks)?;
        let slots: Vec<_> = active.slots.iter().filter(|slot| sink.is_empty() || slot.sink.name() == sink).collect();
        if slots.is_empty() {
            let configured = active.slots.iter().map(|slot| slot.sink.name()).collect();
            return Err(ProbeError::UnknownSink { name: sink.chars().take(64).collect(), configured });
        }
        let notification = test_notification(operator);
        let once = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
        let transport = active.transport.as_ref();
        let results = slots.into_iter().map(|slot| {
            let notification = &notification;
            async move {
                let sink = slot.sink.as_ref();
                let requests = sink.render_test(notification);
                let mut answers = Vec::new();
                let mut delivered = !requests.is_empty();
                for request in &requests {
                    match deliver(transport, request, &|reply| sink.classify(reply), &once).await {
                        Ok(done) => answers.push(done.answer),
                        Err(error) => {
                            delivered = false;
                            answers.push(error.to_string());
                        }
                    }
                }
                if requests.is_empty() {
                    answers.push("nothing to send".into());
                }
                ProbeResult { sink: sink.name(), delivered, answer: answers.join("; ") }
            }
        });
        Ok(join_all(results).await)
    }
}

/// The test notification: an operator's, about no container.
fn test_notification(operator: &str) -> Notification {
    let reason = format!(
        "{operator} sent this with `hemostat notify test`. If you can read it, HemoStat's notifications reach \
         this channel."
    );
    let mut record = EventRecord::new(EventKind::OperatorAction, "", "", "", reason);
    record.decided_by = Some(operator.to_owned());
    let now = unix_ms(std::time::SystemTime::now());
    let mut notification = Notification::new(EventId { ms: now, seq: 0 }, record, None);
    notification.test = true;
    notification
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alerting::AlertingConfig;
    use crate::alerting::transport::tests::{ScriptedTransport, status};

    const SLACK: &str = "https://hooks.slack.test/services/T/B/secret";
    const DISCORD: &str = "https://discord.test/api/webhooks/1/secret";

    #[tokio::test]
    async fn each_sink_says_what_it_was_answered() {
        let transport = Arc::new(ScriptedTransport::answering(DISCORD, [status(404, None)]));
        let config = AlertingConfig {
            slack_webhook_url: Some(SLACK.into()),
            discord_webhook_url: Some(DISCORD.into()),
            ..AlertingConfig::default()
        };
        let notifier = Notifier::with_transport(&config, RetryPolicy::default(), transport.clone());
        let results = notifier.test("", "alice").await.unwrap();
        assert_eq!(
            results,
            [
                ProbeResult { sink: "slack", delivered: true, answer: "HTTP 200".into() },
                ProbeResult { sink: "discord", delivered: false, answer: "refused (HTTP 404); not retried".into() },
            ]
        );
        let slack = &transport.bodies(SLACK)[0];
        assert_eq!(slack["attachments"][0]["title"], "Test notification: HemoStat can reach this channel");
        assert!(slack["attachments"][0]["text"].as_str().unwrap().starts_with("alice sent this"));
        assert_eq!(notifier.sent(), 0, "a test is not a notification of the fleet");

        let only = notifier.test("slack", "alice").await.unwrap();
        assert_eq!(only.len(), 1);
        let unknown = notifier.test("pager", "alice").await.unwrap_err();
        assert_eq!(unknown.to_string(), "no sink \"pager\" is configured; configured: slack, discord");
        assert_eq!(Notifier::disabled().test("", "alice").await, Err(ProbeError::NoSinks));
    }
}
