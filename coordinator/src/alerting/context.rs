//! Looking up what a stored record does not carry: the container's Compose project and service, from the
//! labels its node reported.

use crate::registry::Registry;

use super::notification::Compose;

/// Finds a container's Compose project and service.
pub trait ContainerLookup: Send + Sync {
    /// The Compose project and service of the container `container_id` on `node`, if known.
    fn compose(&self, node: &str, container_id: &str) -> Option<Compose>;
}

impl ContainerLookup for Registry {
    fn compose(&self, node: &str, container_id: &str) -> Option<Compose> {
        if container_id.is_empty() {
            return None;
        }
        let entry = self.container(node, container_id)?;
        Compose::from_labels(&entry.facts.labels)
    }
}
