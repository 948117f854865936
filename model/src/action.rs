//! The remediation actions: what the coordinator may decide and a node may execute.

use hemostat_proto::v1 as pb;

use crate::named::NoValue;

named_enum! {
    /// A remediation action.
    pub enum Action("action") {
        /// Graceful restart: stop with a timeout, then start.
        Restart => "restart",
        /// Run a diagnostic command from the node's allow-list inside the container.
        Exec => "exec",
        /// Remove exited containers of the same Compose service (else image) and dangling images.
        Cleanup => "cleanup",
        /// Start one more replica of the container's Compose or Swarm service.
        ScaleUp => "scale_up",
    }
}

impl From<Action> for pb::Action {
    fn from(action: Action) -> Self {
        match action {
            Action::Restart => pb::Action::Restart,
            Action::Exec => pb::Action::Exec,
            Action::Cleanup => pb::Action::Cleanup,
            Action::ScaleUp => pb::Action::ScaleUp,
        }
    }
}

impl TryFrom<pb::Action> for Action {
    type Error = NoValue;

    /// The action; an error for UNSPECIFIED and NONE (no action).
    fn try_from(action: pb::Action) -> Result<Self, Self::Error> {
        Ok(match action {
            pb::Action::Restart => Action::Restart,
            pb::Action::Exec => Action::Exec,
            pb::Action::Cleanup => Action::Cleanup,
            pb::Action::ScaleUp => Action::ScaleUp,
            other @ (pb::Action::Unspecified | pb::Action::None) => {
                return Err(NoValue { what: "an action", wire: other.as_str_name() });
            }
        })
    }
}
