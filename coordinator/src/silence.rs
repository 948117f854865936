//! Silences: an operator's "leave this alone for now". A silence covers one container (by name, on one node)
//! or a whole node, until it expires; while it holds, the covered containers are neither acted on nor
//! notified about (the event log still records what happens, marked as silenced).

use std::time::{Duration, UNIX_EPOCH};

use hemostat_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// The longest silence an operator can set: thirty days.
pub const MAX_SILENCE: Duration = Duration::from_secs(30 * 24 * 3600);

/// One silence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id (random, hex).
    pub id: String,
    /// The node silenced, or the node of the container silenced.
    pub node: String,
    /// The container's name; `None` silences the whole node.
    pub container: Option<String>,
    /// Why, in the operator's words.
    pub reason: String,
    /// Who created it: `operator:<name>`.
    pub created_by: String,
    /// When it was created, Unix milliseconds.
    pub created_ms: u64,
    /// When it ends, Unix milliseconds.
    pub expires_ms: u64,
}

impl Silence {
    /// Whether it covers the container `container_name` on `node` at `now_ms`.
    pub fn covers(&self, node: &str, container_name: &str, now_ms: u64) -> bool {
        now_ms < self.expires_ms
            && self.node == node
            && self.container.as_deref().is_none_or(|silenced| silenced == container_name)
    }

    /// What it silences, for people: `node/container` or `node (whole node)`.
    pub fn target(&self) -> String {
        match &self.container {
            Some(container) => format!("{}/{container}", self.node),
            None => format!("{} (whole node)", self.node),
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::Silence {
        let at = |ms: u64| Some(hemostat_proto::timestamp::to_proto(UNIX_EPOCH + Duration::from_millis(ms)));
        pb::Silence {
            id: self.id.clone(),
            node: self.node.clone(),
            container: self.container.clone().unwrap_or_default(),
            reason: self.reason.clone(),
            created_by: self.created_by.clone(),
            created_at: at(self.created_ms),
            expires_at: at(self.expires_ms),
        }
    }
}

/// A new silence id (64 random bits, hex).
pub fn new_silence_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(container: Option<&str>) -> Silence {
        Silence {
            id: "s".into(),
            node: "host-a".into(),
            container: container.map(str::to_owned),
            reason: "maintenance".into(),
            created_by: "operator:alice".into(),
            created_ms: 0,
            expires_ms: 1000,
        }
    }

    #[test]
    fn a_silence_covers_its_container_or_its_whole_node_until_it_expires() {
        let one = silence(Some("web"));
        assert!(one.covers("host-a", "web", 999));
        assert!(!one.covers("host-a", "web", 1000), "expired");
        assert!(!one.covers("host-a", "db", 0));
        assert!(!one.covers("host-b", "web", 0));
        let node = silence(None);
        assert!(node.covers("host-a", "anything", 0));
        assert!(!node.covers("host-b", "anything", 0));
        assert_eq!(node.target(), "host-a (whole node)");
    }
}
