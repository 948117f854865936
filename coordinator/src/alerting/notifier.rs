//! The [`Notifier`]: takes every stored event, picks those worth telling people, and hands them to one
//! sending task per configured sink ([`sinks`](super::sinks)) through bounded queues.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::time::Instant;

use crate::events::{EventId, EventRecord};

use super::AlertingConfig;
use super::context::ContainerLookup;
use super::decisions::{DecisionMemory, REMEMBERED_DECISIONS};
use super::dedupe::{DedupeKey, Deduplicator};
use super::delivery::RetryPolicy;
use super::filter::SinkFilter;
use super::links::Links;
use super::notification::{Context, Notification};
use super::queue::DropOldestQueue;
use super::selection::{Selection, select};
use super::sender::{Counters, SinkSender};
use super::sink::Sink;
use super::sinks;
use super::transport::{NetworkTransport, Transport};

/// What `notify` keeps between events.
struct Memory {
    dedupe: Deduplicator,
    decisions: DecisionMemory,
}

/// One configured sink, as the notifier holds it.
pub(super) struct Slot {
    pub(super) sink: Arc<dyn Sink>,
    filter: SinkFilter,
    queue: Arc<DropOldestQueue<Notification>>,
}

/// A running notifier; dropping the last handle closes the queues, and each sink's task ends once it has
/// sent (or given up on) what was queued.
pub(super) struct Active {
    quiet_success: bool,
    memory: Mutex<Memory>,
    pub(super) slots: Vec<Slot>,
    /// Whether a sink takes events the shared rules did not select.
    tracks_conditions: bool,
    links: Links,
    containers: OnceLock<Arc<dyn ContainerLookup>>,
    pub(super) transport: Arc<dyn Transport>,
}

impl Drop for Active {
    fn drop(&mut self) {
        for slot in &self.slots {
            slot.queue.close();
        }
    }
}

/// Sends notifications of stored events to the configured sinks without ever holding up the caller.
///
/// Cheap to clone; every clone feeds the same queues.
#[derive(Clone)]
pub struct Notifier {
    pub(super) active: Option<Arc<Active>>,
    counters: Arc<Counters>,
}

/// Why notifications cannot be sent from this host.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// No HTTP client can be built.
    #[error("notifications are configured but no HTTP client can be built here: {0}")]
    Http(String),
    /// The SMTP client cannot be set up.
    #[error("email notifications are configured but cannot be sent: {0}")]
    Email(#[from] super::sinks::email::EmailError),
}

impl Notifier {
    /// A notifier for `config`, sending over HTTP (and SMTP) with the default [`RetryPolicy`]. Spawns one
    /// task per configured sink, so it must be called within a Tokio runtime. Disabled (it notifies
    /// nothing) when `ALERT_ENABLED` is false or no sink is configured. Fails when a sink is configured but
    /// no client for it can be built on this host.
    pub fn new(config: &AlertingConfig) -> Result<Self, NotifierError> {
        if !config.enabled || sinks::configured(config).is_empty() {
            return Ok(Self::off(config));
        }
        let smtp = config.email.as_ref().map(|email| email.mailer()).transpose()?;
        let transport = NetworkTransport::new(smtp).map_err(|e| NotifierError::Http(e.to_string()))?;
        Ok(Self::with_transport(config, RetryPolicy::default(), Arc::new(transport)))
    }

    /// A notifier that notifies nothing (counters stay at zero).
    pub fn disabled() -> Self {
        Notifier { active: None, counters: Arc::default() }
    }

    /// A notifier sending through `transport` (a script in tests) under `retry`.
    pub(crate) fn with_transport(config: &AlertingConfig, retry: RetryPolicy, transport: Arc<dyn Transport>) -> Self {
        let sinks = if config.enabled { sinks::configured(config) } else { Vec::new() };
        if sinks.is_empty() {
            return Self::off(config);
        }
        let counters = Arc::new(Counters::default());
        let mut slots = Vec::new();
        for sink in sinks {
            let queue = Arc::new(DropOldestQueue::new(config.queue_capacity));
            let sender = SinkSender {
                sink: sink.clone(),
                queue: queue.clone(),
                transport: transport.clone(),
                retry,
                group_window: config.group_window,
                counters: counters.clone(),
            };
            tokio::spawn(sender.run());
            let filter = config.filters.get(sink.name()).cloned().unwrap_or_default();
            slots.push(Slot { sink, filter, queue });
        }
        tracing::info!(
            sinks = ?slots.iter().map(|slot| slot.sink.name()).collect::<Vec<_>>(),
            dedupe_ttl = ?config.dedupe_ttl,
            group_window = ?config.group_window,
            quiet_success = config.quiet_success,
            "notifications on"
        );
        let memory = Memory {
            dedupe: Deduplicator::new(config.dedupe_ttl),
            decisions: DecisionMemory::new(REMEMBERED_DECISIONS),
        };
        let active = Active {
            quiet_success: config.quiet_success,
            memory: Mutex::new(memory),
            tracks_conditions: slots.iter().any(|slot| slot.sink.tracks_conditions()),
            slots,
            links: config.links.clone(),
            containers: OnceLock::new(),
            transport,
        };
        Notifier { active: Some(Arc::new(active)), counters }
    }

    /// A disabled notifier, saying why.
    fn off(config: &AlertingConfig) -> Self {
        tracing::info!(
            enabled = config.enabled,
            "notifications off (ALERT_ENABLED, or no sink configured: SLACK_WEBHOOK_URL, ALERT_WEBHOOK_URL, \
             ALERTMANAGER_URL, DISCORD_WEBHOOK_URL, TEAMS_WEBHOOK_URL, NTFY_URL, GOTIFY_URL, SMTP_URL); the event \
             log is kept"
        );
        Self::disabled()
    }

    /// Looks containers' Compose project and service up in `containers` (the registry) for notifications.
    pub fn with_containers(self, containers: Arc<dyn ContainerLookup>) -> Self {
        if let Some(active) = &self.active {
            let _ = active.containers.set(containers);
        }
        self
    }

    /// Whether any sink is configured and notifications are on.
    pub fn is_enabled(&self) -> bool {
        self.active.is_some()
    }

    /// Takes an event just stored under `id`: notifies it if it is of a notified kind and not a repeat within
    /// the dedupe TTL (and to the sinks that track conditions, if it starts or ends one). Never waits and
    /// never fails: a full queue drops its oldest notification (counted in [`dropped`](Self::dropped)).
    pub fn notify(&self, id: EventId, record: &EventRecord) {
        let Some(active) = &self.active else { return };
        let (selected, decision) = {
            let mut memory = active.memory.lock().expect("notifier memory lock");
            memory.decisions.remember(record);
            let selected = match select(record, active.quiet_success) {
                Selection::Skip => false,
                Selection::Deduplicated => {
                    let admitted = memory.dedupe.admit(DedupeKey::of(record), Instant::now());
                    if !admitted {
                        tracing::debug!(%id, kind = ?record.kind, container = ?record.container_name, "repeat not notified");
                    }
                    admitted
                }
                Selection::Always => true,
            };
            (selected, memory.decisions.recall(record))
        };
        if !selected && !active.tracks_conditions {
            return;
        }
        let mut notification = Notification::new(id, record.clone(), decision);
        let takers: Vec<&Slot> =
            active.slots.iter().filter(|slot| slot.sink.wants(&notification, selected, &slot.filter)).collect();
        if takers.is_empty() {
            return;
        }
        notification.context = active.context(record);
        for slot in takers {
            if let Some(dropped) = slot.queue.push(notification.clone()) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    sink = slot.sink.name(),
                    dropped = %dropped.id,
                    "notification queue full (ALERT_QUEUE_CAPACITY): the oldest was dropped; the event log keeps it"
                );
            }
        }
    }

    /// Notifications delivered, counted once per event and sink (a burst of five counts five).
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }

    /// Notifications given up on after their retries, or refused by the receiver, per event and sink.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Notifications dropped from a full queue, per event and sink.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Notifications waiting to be sent, over all sinks.
    pub fn queued(&self) -> usize {
        self.active.as_ref().map_or(0, |a| a.slots.iter().map(|slot| slot.queue.len()).sum())
    }
}

impl Active {
    /// What a notification of `record` adds: the Compose service, the links.
    fn context(&self, record: &EventRecord) -> Context {
        Context {
            compose: self.containers.get().and_then(|c| c.compose(&record.node, &record.container_id)),
            event_url: self.links.event(record),
            container_url: self.links.container(record),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use std::time::Duration;

    use serde_json::Value;

    use crate::alerting::transport::tests::{ScriptedTransport, status};
    use crate::events::{Action, EventKind, Outcome, Rejection};

    const SLACK: &str = "https://hooks.slack.test/services/T/B/secret";
    const HOOK: &str = "https://hooks.example.test/hemostat";

    fn config() -> AlertingConfig {
        AlertingConfig {
            slack_webhook_url: Some(SLACK.into()),
            webhook_url: Some(HOOK.into()),
            ..AlertingConfig::default()
        }
    }

    fn start(config: AlertingConfig, transport: &Arc<ScriptedTransport>) -> Notifier {
        Notifier::with_transport(&config, RetryPolicy::default(), transport.clone())
    }

    /// Events get increasing ids.
    fn stored(seq: u64) -> EventId {
        EventId { ms: 1_795_000_000_000, seq }
    }

    fn complete(name: &str, outcome: Outcome) -> EventRecord {
        EventRecord {
            action: Some(Action::Restart),
            outcome: Some(outcome),
            command_id: Some(format!("cmd-{name}")),
            ..EventRecord::new(EventKind::RemediationComplete, "host-a", &format!("id-{name}"), name, "restarted")
        }
    }

    fn rejected(name: &str, rejection: Rejection) -> EventRecord {
        EventRecord {
            action: Some(Action::Restart),
            rejection: Some(rejection),
            ..EventRecord::new(EventKind::Rejected, "host-a", &format!("id-{name}"), name, "not now")
        }
    }

    fn slack_titles(transport: &ScriptedTransport) -> Vec<String> {
        transport
            .bodies(SLACK)
            .iter()
            .map(|b| b["attachments"][0]["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Lets the paused clock run on for `secs` (every timer due within it fires), so the sink tasks work.
    async fn run_for(secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn two_containers_at_once_give_two_messages_each_named() {
        let transport = Arc::new(ScriptedTransport::default());
        let notifier = start(config(), &transport);
        notifier.notify(stored(0), &complete("web", Outcome::Success));
        notifier.notify(stored(1), &complete("db", Outcome::Success));
        run_for(10).await;
        assert_eq!(
            slack_titles(&transport),
            ["Restart of web on host-a succeeded", "Restart of db on host-a succeeded"]
        );
        let hooked: Vec<Value> = transport.bodies(HOOK).iter().map(|b| b["container_name"].clone()).collect();
        assert_eq!(hooked, [json!("web"), json!("db")]);
        assert_eq!((notifier.sent(), notifier.failed(), notifier.dropped()), (4, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn three_within_the_window_are_one_slack_message_and_three_webhook_posts() {
        let transport = Arc::new(ScriptedTransport::default());
        let notifier = start(config(), &transport);
        for (seq, name) in ["a", "b", "c"].into_iter().enumerate() {
            notifier.notify(stored(seq as u64), &complete(name, Outcome::Failed));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        run_for(10).await;
        assert_eq!(slack_titles(&transport), ["HemoStat: 3 notifications at once"]);
        assert_eq!(transport.bodies(HOOK).len(), 3, "the webhook gets each event");
        assert_eq!(notifier.sent(), 6, "counted per event and sink");
        // Later, alone: its own message again.
        notifier.notify(stored(3), &complete("d", Outcome::Failed));
        run_for(10).await;
        assert_eq!(slack_titles(&transport).last().unwrap(), "Restart of d on host-a FAILED");
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_are_deduplicated_but_storms_and_exhausted_budgets_always_notify() {
        let transport = Arc::new(ScriptedTransport::default());
        let notifier = start(AlertingConfig { webhook_url: None, ..config() }, &transport);
        notifier.notify(stored(0), &rejected("web", Rejection::CooldownActive));
        run_for(10).await;
        notifier.notify(stored(1), &rejected("web", Rejection::CooldownActive));
        notifier.notify(stored(2), &EventRecord::new(EventKind::HealthAlert, "host-a", "id", "web", "crashed"));
        run_for(10).await;
        assert_eq!(slack_titles(&transport).len(), 1, "the repeat within 60 s and the health alert are not sent");
        for seq in 3..5 {
            notifier.notify(stored(seq), &rejected("web", Rejection::CircuitOpen));
            notifier.notify(stored(seq + 10), &EventRecord::new(EventKind::Storm, "", "", "", "storm in fleet"));
            run_for(10).await;
        }
        assert_eq!(
            slack_titles(&transport)[1..],
            [
                "Restart of web on host-a not done: budget exhausted (circuit open)",
                "Storm: automatic actions stopped",
                "Restart of web on host-a not done: budget exhausted (circuit open)",
                "Storm: automatic actions stopped",
            ]
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        notifier.notify(stored(20), &rejected("web", Rejection::CooldownActive));
        run_for(10).await;
        assert_eq!(slack_titles(&transport).len(), 6, "after the TTL the same rejection is notified again");
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_success_sends_failures_only() {
        let transport = Arc::new(ScriptedTransport::default());
        let notifier = start(AlertingConfig { quiet_success: true, webhook_url: None, ..config() }, &transport);
        notifier.notify(stored(0), &complete("web", Outcome::Success));
        notifier.notify(stored(1), &complete("db", Outcome::Failed));
        run_for(10).await;
        assert_eq!(slack_titles(&transport), ["Restart of db on host-a FAILED"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_result_shows_the_decision_that_led_to_it() {
        let transport = Arc::new(ScriptedTransport::default());
        let notifier = start(config(), &transport);
        let decision = EventRecord {
            action: Some(Action::Restart),
            confidence: Some(0.9),
            analysis_method: Some("rules".into()),
            decided_by: Some("unexpected_exit".into()),
            command_id: Some("cmd-web".into()),
            ..EventRecord::new(EventKind::RemediationNeeded, "host-a", "id-web", "web", "crashed")
        };
        notifier.notify(stored(0), &decision);
        notifier.notify(stored(1), &complete("web", Outcome::Success));
        run_for(10).await;
        let hooked = transport.bodies(HOOK);
        assert_eq!(hooked.len(), 1, "the decision itself is not notified");
        assert_eq!(
            (hooked[0]["confidence"].as_f64(), hooked[0]["decided_by"].as_str()),
            (Some(0.9), Some("unexpected_exit"))
        );
        let fields = transport.bodies(SLACK)[0]["attachments"][0]["fields"].to_string();
        assert!(fields.contains("rules (unexpected_exit)") && fields.contains("0.90"), "{fields}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_slack_delays_slack_only_and_loses_nothing() {
        let transport = Arc::new(ScriptedTransport::answering(SLACK, [status(500, None), status(429, Some(1))]));
        let notifier = start(config(), &transport);
        let started = Instant::now();
        notifier.notify(stored(0), &complete("web", Outcome::Success));
        run_for(10).await;
        let calls: Vec<(String, u64)> = transport
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(url, _, at)| (url.clone(), at.duration_since(started).as_millis() as u64))
            .collect();
        // The webhook posts at once. Slack waits out its group window (2 s), gets a 500 and backs off a second,
        // gets the 429 and waits the one second it asks, then delivers.
        assert_eq!(
            calls,
            [(HOOK.to_owned(), 0), (SLACK.to_owned(), 2000), (SLACK.to_owned(), 3000), (SLACK.to_owned(), 4000)]
        );
        assert_eq!((notifier.sent(), notifier.failed()), (2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_receiver_that_keeps_failing_is_given_up_and_counted() {
        let transport = Arc::new(ScriptedTransport::answering(SLACK, (0..5).map(|_| status(503, None))));
        let notifier = start(AlertingConfig { webhook_url: None, ..config() }, &transport);
        notifier.notify(stored(0), &complete("web", Outcome::Failed));
        run_for(40).await;
        assert_eq!((notifier.sent(), notifier.failed()), (0, 1));
        notifier.notify(stored(1), &complete("db", Outcome::Failed));
        run_for(40).await;
        assert_eq!((notifier.sent(), notifier.failed()), (1, 1), "the next one goes through");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_the_oldest_and_counts_it() {
        // Slack answers 429 with a long Retry-After: the sink is busy while more arrive.
        let transport = Arc::new(ScriptedTransport::answering(SLACK, [status(429, Some(30))]));
        let config = AlertingConfig { webhook_url: None, queue_capacity: 2, ..config() };
        let notifier = start(config, &transport);
        notifier.notify(stored(0), &complete("first", Outcome::Failed));
        tokio::time::sleep(Duration::from_secs(3)).await;
        for (seq, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            notifier.notify(stored(seq as u64 + 1), &complete(name, Outcome::Failed));
        }
        assert_eq!((notifier.dropped(), notifier.queued()), (2, 2));
        run_for(40).await;
        let titles = slack_titles(&transport);
        assert_eq!(titles[..2], ["Restart of first on host-a FAILED", "Restart of first on host-a FAILED"]);
        assert_eq!(
            titles[2..],
            ["Restart of c on host-a FAILED", "Restart of d on host-a FAILED"],
            "a and b were dropped"
        );
        assert_eq!((notifier.sent(), notifier.dropped()), (3, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn off_or_without_a_url_it_notifies_nothing() {
        let transport = Arc::new(ScriptedTransport::default());
        for config in [AlertingConfig { enabled: false, ..config() }, AlertingConfig::default()] {
            let notifier = start(config, &transport);
            assert!(!notifier.is_enabled());
            notifier.notify(stored(0), &complete("web", Outcome::Failed));
        }
        run_for(10).await;
        assert!(transport.calls.lock().unwrap().is_empty());
    }
}
