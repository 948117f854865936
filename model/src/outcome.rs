//! How an executed command ended.

use hemostat_proto::v1 as pb;

named_enum! {
    /// How an executed command ended.
    pub enum Outcome("outcome") {
        /// Done and verified.
        Success => "success",
        /// Attempted and did not work (or its verification failed).
        Failed => "failed",
        /// The node refused it under its own configuration.
        Refused => "refused",
        /// The action does not apply to this container.
        NotApplicable => "not_applicable",
    }
}

impl From<Outcome> for pb::Outcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => pb::Outcome::Success,
            Outcome::Failed => pb::Outcome::Failed,
            Outcome::Refused => pb::Outcome::Refused,
            Outcome::NotApplicable => pb::Outcome::NotApplicable,
        }
    }
}

impl From<pb::Outcome> for Outcome {
    /// The outcome; an unspecified one counts as a failure.
    fn from(outcome: pb::Outcome) -> Self {
        match outcome {
            pb::Outcome::Success => Outcome::Success,
            pb::Outcome::Refused => Outcome::Refused,
            pb::Outcome::NotApplicable => Outcome::NotApplicable,
            pb::Outcome::Failed | pb::Outcome::Unspecified => Outcome::Failed,
        }
    }
}
