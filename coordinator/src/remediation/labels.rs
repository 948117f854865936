//! Bad policy labels, told once: a container whose `hemostat.cooldown` (or another policy label, see
//! [`hemostat_model::policy`]) has a value that is not acceptable gets a warning log line and an
//! `input_refused` event naming the container, the label, its value and what applies instead, once per
//! (node, container, label, value) while this coordinator runs. What it remembers is bounded
//! ([`LABELS_KEPT`]): container names and values come from what nodes report.

use std::sync::{Arc, Mutex};

use super::journal::Journal;
use crate::bounded::BoundedMap;
use crate::container::ContainerFacts;
use crate::container_policy::PolicyDefaults;
use crate::events::{EventKind, EventRecord};
use crate::store::StoreError;
use hemostat_model::policy::PolicyLabel;

/// Bad labels remembered as told at most; beyond it the oldest is forgotten (and told again if seen again).
pub const LABELS_KEPT: usize = 10_000;

/// The bad policy labels already told, by node, container name, label and value.
pub struct LabelWarnings {
    journal: Arc<Journal>,
    policy: PolicyDefaults,
    told: Mutex<BoundedMap<(String, String, PolicyLabel, String), ()>>,
}

impl LabelWarnings {
    /// Warnings recorded in `journal`, saying what of `policy` applies instead.
    pub fn new(journal: Arc<Journal>, policy: PolicyDefaults) -> Self {
        LabelWarnings { journal, policy, told: Mutex::new(BoundedMap::new(LABELS_KEPT)) }
    }

    /// Tells of each bad policy label of `containers` (reported by `node`) not told before.
    pub async fn check(&self, node: &str, containers: &[ContainerFacts]) -> Result<(), StoreError> {
        for container in containers {
            let policy = self.policy.effective(&container.labels);
            for bad in &policy.invalid {
                let key = (node.to_owned(), container.name.clone(), bad.label, bad.value.clone());
                if self.told.lock().expect("label warnings lock").get(&key).is_some() {
                    continue;
                }
                let applies = policy
                    .values()
                    .into_iter()
                    .find(|v| v.name == bad.label.value_name())
                    .map(|v| match v.value.as_str() {
                        "" => format!("the {} applies", v.origin),
                        value => format!("{value} ({}) applies", v.origin),
                    })
                    .unwrap_or_default();
                let name = container.name.escape_debug().to_string();
                tracing::warn!(
                    node,
                    container = %name,
                    label = bad.label.name(),
                    value = %bad.value.escape_debug(),
                    %applies,
                    "a policy label's value is not valid; the default applies"
                );
                let reason = format!("container {name} on node {node}: {bad}: {applies}");
                let record = EventRecord::new(EventKind::InputRefused, node, &container.id, &container.name, reason);
                self.journal.append(&record).await?;
                self.told.lock().expect("label warnings lock").insert(key, ());
            }
        }
        Ok(())
    }
}
