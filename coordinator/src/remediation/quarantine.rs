//! Quarantine lifted by good behaviour: a container whose breaker opened (quarantined: no automatic action)
//! and which has since been running, and healthy (or without a health check), for
//! `RESPONDER_QUARANTINE_RELEASE_SECONDS` (an hour by default; 0: only `hemostat release` lifts it) is
//! released as `hemostat release` would: its budget starts over. Recorded as an `operator_action` event
//! decided by `policy:quarantine_release`, saying how long it ran.
//!
//! The dispatcher notes each container its breaker stops ([`Quarantines::note`], at most [`NOTED_KEPT`]:
//! keys come from what nodes report); [`release_recovered`] looks at those only, once a second, in this
//! coordinator's registry. A quarantine this coordinator did not see (it started after it, or the node was
//! on another coordinator) is lifted by hand, or by the breaker's own trial after its hour.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::Target;
use super::dispatch::Dispatcher;
use super::journal::Journal;
use super::node_commands::NodeCommands;
use crate::bounded::BoundedMap;
use crate::container::{ContainerFacts, Health, Status};
use crate::events::{EventKind, EventRecord, unix_ms};
use crate::store::StoreError;

/// Quarantined containers remembered at most; beyond it the oldest is forgotten (lifted by hand then).
pub const NOTED_KEPT: usize = 10_000;

/// Who `decided_by` names for a release by good behaviour.
pub const RELEASED_BY: &str = "policy:quarantine_release";

/// The containers this coordinator saw quarantined: budget key → (node, container id).
pub struct Quarantines {
    noted: Mutex<BoundedMap<String, (String, String)>>,
}

impl Default for Quarantines {
    fn default() -> Self {
        Quarantines { noted: Mutex::new(BoundedMap::new(NOTED_KEPT)) }
    }
}

impl Quarantines {
    /// Notes that the breaker stopped an action on `target`.
    pub fn note(&self, target: &Target) {
        let value = (target.node.clone(), target.container_id.clone());
        self.noted.lock().expect("quarantines lock").insert(target.key.clone(), value);
    }

    /// Forgets the container `key` (released).
    pub fn forget(&self, key: &str) {
        self.noted.lock().expect("quarantines lock").remove(key);
    }

    /// Every container noted: (budget key, node, container id).
    pub fn noted(&self) -> Vec<(String, String, String)> {
        let noted = self.noted.lock().expect("quarantines lock");
        noted.iter().map(|(key, (node, id))| (key.clone(), node.clone(), id.clone())).collect()
    }
}

/// How long `container` has been running and healthy (or without a health check) at `now`; `None` when it
/// is not, or its start time is unknown.
pub fn running_healthy_for(container: &ContainerFacts, now: SystemTime) -> Option<Duration> {
    let healthy = matches!(container.health, Health::Healthy | Health::None);
    if container.status != Status::Running || !healthy {
        return None;
    }
    now.duration_since(container.started_at?).ok()
}

/// Releases each noted container that has been running healthy for `after`; returns how many.
pub async fn release_recovered(
    dispatcher: &Dispatcher,
    commands: &NodeCommands,
    journal: &Journal,
    after: Duration,
    now: SystemTime,
) -> Result<usize, StoreError> {
    let mut released = 0;
    for (key, node, container_id) in dispatcher.quarantines().noted() {
        let Some(container) = commands.facts_of(&node, &container_id) else { continue };
        let Some(ran) = running_healthy_for(&container, now).filter(|ran| *ran >= after) else { continue };
        let budget = dispatcher.policy().effective(&container.labels).budget();
        let status = budget.status(&dispatcher.read_budget(&key).await?, unix_ms(now));
        if !status.quarantined() {
            // The breaker closed by itself (its hour passed, or someone released it elsewhere).
            dispatcher.quarantines().forget(&key);
            continue;
        }
        dispatcher.release(&key).await?;
        let reason = format!(
            "released from quarantine {node}/{}: running{} for {}s, at least RESPONDER_QUARANTINE_RELEASE_SECONDS \
             ({}s); its budget starts over ({} attempt(s) in the last hour, {} failed verification(s) in a row \
             before)",
            container.name,
            if container.health == Health::Healthy { " and healthy" } else { "" },
            ran.as_secs(),
            after.as_secs(),
            status.attempts_in_window,
            status.consecutive_failures,
        );
        tracing::warn!(node, container = ?container.name, ran_for = ran.as_secs(), "released from quarantine: running healthy");
        let mut record = EventRecord::new(EventKind::OperatorAction, &node, &container.id, &container.name, reason);
        record.decided_by = Some(RELEASED_BY.to_owned());
        journal.append(&record).await?;
        released += 1;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn container(status: Status, health: Health, started_at: Option<SystemTime>) -> ContainerFacts {
        ContainerFacts {
            id: "1".into(),
            name: "web".into(),
            image: "img".into(),
            status,
            health,
            exit_code: 0,
            restart_policy: "no".into(),
            labels: BTreeMap::new(),
            started_at,
            memory_limit: 0,
            cpu_limit: 0.0,
        }
    }

    #[test]
    fn only_a_running_healthy_container_counts_from_its_start() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let now = start + Duration::from_secs(90);
        let ran = |status, health| running_healthy_for(&container(status, health, Some(start)), now);
        assert_eq!(ran(Status::Running, Health::Healthy), Some(Duration::from_secs(90)));
        assert_eq!(ran(Status::Running, Health::None), Some(Duration::from_secs(90)), "no health check");
        assert_eq!(ran(Status::Running, Health::Unhealthy), None);
        assert_eq!(ran(Status::Running, Health::Starting), None);
        assert_eq!(ran(Status::Exited, Health::None), None);
        assert_eq!(running_healthy_for(&container(Status::Running, Health::None, None), now), None, "start unknown");
        let future = container(Status::Running, Health::None, Some(now + Duration::from_secs(5)));
        assert_eq!(running_healthy_for(&future, now), None, "a clock ahead of ours");
    }

    #[test]
    fn a_noted_quarantine_is_remembered_until_forgotten_and_bounded() {
        let quarantines = Quarantines::default();
        let target = |key: &str| Target {
            labels: BTreeMap::new(),
            node: "host-a".into(),
            container_id: format!("id-{key}"),
            container_name: key.into(),
            key: key.into(),
        };
        quarantines.note(&target("a"));
        quarantines.note(&target("b"));
        quarantines.forget("a");
        assert_eq!(quarantines.noted(), [("b".to_owned(), "host-a".to_owned(), "id-b".to_owned())]);
        for i in 0..NOTED_KEPT + 5 {
            quarantines.note(&target(&i.to_string()));
        }
        assert_eq!(quarantines.noted().len(), NOTED_KEPT);
    }
}
