//! The node's local policy: when cut off from every coordinator for longer than
//! `NODE_LOCAL_POLICY_AFTER_SECONDS` (60), the node restarts a container that crashed unexpectedly on its
//! own, at most once per `RESPONDER_COOLDOWN_SECONDS` (3600) per container, unless Docker's restart policy
//! already restarts it. On by default; `NODE_LOCAL_POLICY=false` turns it off. The alert it sends says what
//! it did, so when the node reconnects the coordinator records it and counts it in the container's budget.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hemostat_proto::v1 as pb;

use crate::actions::compose;

/// The local policy's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalPolicyConfig {
    /// Whether the node may act on its own at all.
    pub enabled: bool,
    /// How long it must have been cut off first.
    pub after: Duration,
    /// At most one local action per container within this time.
    pub cooldown: Duration,
}

impl Default for LocalPolicyConfig {
    fn default() -> Self {
        LocalPolicyConfig { enabled: true, after: Duration::from_secs(60), cooldown: Duration::from_secs(3600) }
    }
}

/// Whether the node has a coordinator session, and since when it has not.
#[derive(Debug)]
pub struct Connectivity {
    disconnected_since: Mutex<Option<Instant>>,
}

impl Default for Connectivity {
    fn default() -> Self {
        Connectivity { disconnected_since: Mutex::new(Some(Instant::now())) }
    }
}

impl Connectivity {
    /// A session opened.
    pub fn connected(&self) {
        *self.disconnected_since.lock().expect("connectivity lock") = None;
    }

    /// The session ended (keeps the earlier time if already disconnected).
    pub fn disconnected(&self) {
        self.disconnected_at(Instant::now());
    }

    /// The session ended, the coordinator having last been heard from at `since` (keeps an earlier time).
    pub fn disconnected_at(&self, since: Instant) {
        self.disconnected_since.lock().expect("connectivity lock").get_or_insert(since);
    }

    /// How long the node has been cut off at `now`; `None` while connected.
    pub fn cut_off_for(&self, now: Instant) -> Option<Duration> {
        self.disconnected_since.lock().expect("connectivity lock").map(|since| now.saturating_duration_since(since))
    }
}

/// The local policy's state.
#[derive(Debug)]
pub struct LocalPolicy {
    config: LocalPolicyConfig,
    last_action: HashMap<String, Instant>,
}

impl LocalPolicy {
    /// A policy with `config`.
    pub fn new(config: LocalPolicyConfig) -> Self {
        LocalPolicy { config, last_action: HashMap::new() }
    }

    /// Whether to restart `container`, which just crashed unexpectedly, when the node has been cut off for
    /// `cut_off` (`None`: connected). Records the action when it says yes.
    pub fn restart_on_crash(
        &mut self,
        container: &pb::ContainerState,
        cut_off: Option<Duration>,
        now: Instant,
    ) -> bool {
        let Some(cut_off) = cut_off else { return false };
        let docker_restarts_it =
            matches!(container.restart_policy.as_str(), "always" | "unless-stopped" | "on-failure");
        if !self.config.enabled || cut_off < self.config.after || docker_restarts_it {
            return false;
        }
        let key = identity(container);
        if self.last_action.get(&key).is_some_and(|at| now.saturating_duration_since(*at) < self.config.cooldown) {
            return false;
        }
        self.last_action.insert(key, now);
        true
    }
}

/// The container's stable identity, as the coordinator's budgets use it: Compose project, service and
/// replica, else the name.
fn identity(container: &pb::ContainerState) -> String {
    let label = |k: &str| container.labels.get(k);
    match (label(compose::PROJECT_LABEL), label(compose::SERVICE_LABEL), label(compose::NUMBER_LABEL)) {
        (Some(p), Some(s), Some(n)) => format!("compose/{p}/{s}/{n}"),
        _ => format!("name/{}", container.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(policy: &str) -> pb::ContainerState {
        pb::ContainerState { name: "web".into(), restart_policy: policy.into(), ..Default::default() }
    }

    #[test]
    fn acts_only_when_cut_off_long_enough_once_per_cooldown_and_never_when_docker_restarts_it() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut policy = LocalPolicy::new(LocalPolicyConfig::default());
        assert!(!policy.restart_on_crash(&container("no"), None, t0), "connected: the coordinator decides");
        assert!(!policy.restart_on_crash(&container("no"), Some(minute / 2), t0), "not cut off long enough");
        assert!(!policy.restart_on_crash(&container("always"), Some(minute * 2), t0), "Docker restarts it");
        assert!(policy.restart_on_crash(&container("no"), Some(minute * 2), t0));
        assert!(!policy.restart_on_crash(&container("no"), Some(minute * 3), t0 + minute), "once per cooldown");
        assert!(policy.restart_on_crash(&container("no"), Some(minute * 70), t0 + minute * 61));
        let mut off = LocalPolicy::new(LocalPolicyConfig { enabled: false, ..LocalPolicyConfig::default() });
        assert!(!off.restart_on_crash(&container("no"), Some(minute * 2), t0));
    }

    #[test]
    fn connectivity_tracks_since_when_the_node_is_cut_off() {
        let connectivity = Connectivity::default();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(connectivity.cut_off_for(later).unwrap() >= Duration::from_secs(5), "cut off from the start");
        connectivity.connected();
        assert_eq!(connectivity.cut_off_for(later), None);
        connectivity.disconnected();
        assert!(connectivity.cut_off_for(later).is_some());
    }
}
