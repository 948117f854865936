//! One sink's sending task: takes notifications from its queue, groups them as the sink wants, sends what
//! the sink renders with retries, refreshes what the sink refreshes, and counts what happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, MissedTickBehavior};

use crate::events::EventId;

use super::delivery::{RetryPolicy, deliver};
use super::grouping::{Message, gather, into_messages};
use super::notification::Notification;
use super::queue::DropOldestQueue;
use super::sink::{Grouping, Sink};
use super::transport::{Request, Transport};

/// What happened to notifications, for metrics. Each event counts once per sink it was meant for.
#[derive(Debug, Default)]
pub struct Counters {
    /// Delivered.
    pub sent: AtomicU64,
    /// Given up on, or refused.
    pub failed: AtomicU64,
    /// Dropped from a full queue.
    pub dropped: AtomicU64,
}

/// One sink's sending task.
pub struct SinkSender {
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// Its queue.
    pub queue: Arc<DropOldestQueue<Notification>>,
    /// How requests go out.
    pub transport: Arc<dyn Transport>,
    /// How they are retried.
    pub retry: RetryPolicy,
    /// The group window (`ALERT_GROUP_WINDOW_SECONDS`).
    pub group_window: Duration,
    /// The notifier's counters.
    pub counters: Arc<Counters>,
}

impl SinkSender {
    /// Runs until the queue is closed and empty.
    pub async fn run(self) {
        let mut refresh = self.sink.refresh_every().map(|every| {
            let mut interval = tokio::time::interval_at(Instant::now() + every, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        loop {
            let first = match refresh.as_mut() {
                None => self.queue.pop().await,
                Some(interval) => tokio::select! {
                    first = self.queue.pop() => first,
                    _ = interval.tick() => {
                        let requests = self.sink.refresh(SystemTime::now());
                        self.send(&requests, &[]).await;
                        continue;
                    }
                },
            };
            let Some(first) = first else { break };
            let messages = match self.sink.grouping() {
                Grouping::Bursts => into_messages(gather(&self.queue, first, self.group_window).await),
                Grouping::EachAlone => vec![Message::Single(first)],
            };
            for message in messages {
                let ids: Vec<EventId> = message.items().iter().map(|n| n.id).collect();
                self.send(&self.sink.render(&message), &ids).await;
            }
        }
        tracing::debug!(sink = self.sink.name(), "notification sink stopped");
    }

    /// Sends a message's requests; it counts as sent (once per event it carries) if each was delivered.
    async fn send(&self, requests: &[Request], ids: &[EventId]) {
        let count = ids.len() as u64;
        let mut delivered = !requests.is_empty();
        for request in requests {
            match deliver(self.transport.as_ref(), request, &|reply| self.sink.classify(reply), &self.retry).await {
                Ok(done) => {
                    tracing::debug!(
                        sink = self.sink.name(),
                        events = count,
                        attempts = done.attempts,
                        "notification sent"
                    );
                }
                Err(error) => {
                    delivered = false;
                    let ids: Vec<String> = ids.iter().map(EventId::to_string).collect();
                    tracing::warn!(
                        sink = self.sink.name(),
                        events = %ids.join(","),
                        %error,
                        "notification not delivered; the event log keeps the events"
                    );
                }
            }
        }
        let counter = if delivered { &self.counters.sent } else { &self.counters.failed };
        if !requests.is_empty() {
            counter.fetch_add(count, Ordering::Relaxed);
        }
    }
}
