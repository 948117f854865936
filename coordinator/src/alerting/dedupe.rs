//! Deduplication: one notification per (event type, node, container, result) within `ALERT_DEDUPE_TTL`.
//!
//! The original keyed on event type and minute, without the container, so a second container failing in the
//! same minute was never notified. Here the container is part of the key, and the window runs from the last
//! notification sent (not from the last one suppressed), so a container that keeps failing is reminded about
//! once per TTL instead of being silenced for good.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::events::{EventKind, EventRecord, Outcome};

/// Beyond this many remembered keys, expired ones are forgotten.
const PRUNE_ABOVE: usize = 1024;

/// What makes two notifications "the same".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DedupeKey {
    /// The event type.
    pub kind: EventKind,
    /// The node.
    pub node: String,
    /// The container's name (stable across restarts and re-creation, unlike its id).
    pub container: String,
    /// The outcome (`success`, ...) or rejection code (`cooldown_active`, ...), if any.
    pub result: Option<&'static str>,
}

impl DedupeKey {
    /// The key of `record`.
    pub fn of(record: &EventRecord) -> Self {
        DedupeKey {
            kind: record.kind,
            node: record.node.clone(),
            container: record.container_name.clone(),
            result: record.outcome.map(Outcome::name).or_else(|| record.rejection.map(|r| r.code())),
        }
    }
}

/// Remembers when each key was last notified.
pub struct Deduplicator {
    ttl: Duration,
    last_sent: HashMap<DedupeKey, Instant>,
}

impl Deduplicator {
    /// Suppresses repeats within `ttl` (zero suppresses nothing).
    pub fn new(ttl: Duration) -> Self {
        Deduplicator { ttl, last_sent: HashMap::new() }
    }

    /// Whether a notification with `key` at `now` should be sent (and, if so, remembers it as sent).
    pub fn admit(&mut self, key: DedupeKey, now: Instant) -> bool {
        if let Some(last) = self.last_sent.get(&key)
            && now.saturating_duration_since(*last) < self.ttl
        {
            return false;
        }
        if self.last_sent.len() >= PRUNE_ABOVE {
            let ttl = self.ttl;
            self.last_sent.retain(|_, last| now.saturating_duration_since(*last) < ttl);
        }
        self.last_sent.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Outcome, Rejection};

    fn record(node: &str, name: &str, outcome: Option<Outcome>, rejection: Option<Rejection>) -> EventRecord {
        let kind = if rejection.is_some() { EventKind::Rejected } else { EventKind::RemediationComplete };
        EventRecord { outcome, rejection, ..EventRecord::new(kind, node, "id-changes", name, "reason changes") }
    }

    #[test]
    fn the_key_is_type_node_container_and_result() {
        let key = DedupeKey::of(&record("host-a", "web", Some(Outcome::Success), None));
        assert_eq!(
            key,
            DedupeKey {
                kind: EventKind::RemediationComplete,
                node: "host-a".into(),
                container: "web".into(),
                result: Some("success")
            }
        );
        let other_id_and_reason = EventRecord {
            container_id: "new".into(),
            reason: "other".into(),
            ..record("host-a", "web", Some(Outcome::Success), None)
        };
        assert_eq!(DedupeKey::of(&other_id_and_reason), key, "a re-created container is the same one");
        for different in [
            record("host-a", "db", Some(Outcome::Success), None),
            record("host-b", "web", Some(Outcome::Success), None),
            record("host-a", "web", Some(Outcome::Failed), None),
        ] {
            assert_ne!(DedupeKey::of(&different), key, "{different:?}");
        }
        let cooldown = DedupeKey::of(&record("host-a", "web", None, Some(Rejection::CooldownActive)));
        assert_eq!((cooldown.kind, cooldown.result), (EventKind::Rejected, Some("cooldown_active")));
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_inside_the_ttl_are_suppressed_and_the_window_runs_from_the_last_sent() {
        let mut dedupe = Deduplicator::new(Duration::from_secs(60));
        let web = || DedupeKey::of(&record("host-a", "web", Some(Outcome::Success), None));
        let db = || DedupeKey::of(&record("host-a", "db", Some(Outcome::Success), None));
        let start = Instant::now();
        assert!(dedupe.admit(web(), start));
        assert!(dedupe.admit(db(), start), "another container in the same second is notified");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!dedupe.admit(web(), Instant::now()), "a repeat 59 s later is not");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(dedupe.admit(web(), Instant::now()), "60 s after the first, it is notified again");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!dedupe.admit(web(), Instant::now()));
        assert!(dedupe.admit(db(), Instant::now()), "db's window started 90 s ago");
        assert!(Deduplicator::new(Duration::ZERO).admit(web(), Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_keys_are_forgotten_when_many() {
        let mut dedupe = Deduplicator::new(Duration::from_secs(1));
        for i in 0..PRUNE_ABOVE {
            assert!(dedupe.admit(DedupeKey::of(&record("n", &format!("c{i}"), None, None)), Instant::now()));
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(dedupe.admit(DedupeKey::of(&record("n", "new", None, None)), Instant::now()));
        assert_eq!(dedupe.last_sent.len(), 1);
    }
}
