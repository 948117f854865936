//! `scale_up`: one more replica of the target's service, never past its replica cap. A Swarm task's
//! replicated service gets its replica count raised and verified ([`swarm`]); a Compose service gets its
//! next replica started ([`compose_replica`]). Any other container is `not_applicable`.
//!
//! The cap: the label `hemostat.scale_up.max=<replicas>` on the container (or, for Swarm, on the service),
//! else the node's `NODE_SCALE_UP_MAX_REPLICAS` (10). A service already at its cap is `refused`, with the
//! cap and where it comes from; a label that is not a positive whole number is refused too.

pub mod compose_replica;
pub mod swarm;

use hemostat_model::Action;
use std::collections::HashMap;

use hemostat_proto::v1 as pb;

use super::compose::ComposeService;
use super::{ActionContext, ActionHandler, ActionOutcome, Target};

/// The label with which a container (or a Swarm service) caps its replicas.
pub use hemostat_model::SCALE_UP_MAX_LABEL as MAX_REPLICAS_LABEL;

/// The node-wide cap when no label says otherwise.
pub const DEFAULT_MAX_REPLICAS: u64 = 10;

/// One more replica of the target's service.
pub struct ScaleUp;

#[async_trait::async_trait]
impl ActionHandler for ScaleUp {
    fn action(&self) -> Action {
        Action::ScaleUp
    }

    async fn execute(&self, context: &ActionContext, target: &Target) -> ActionOutcome {
        let labels = target.labels();
        if let Some(service_id) = labels.get(swarm::SERVICE_ID_LABEL) {
            let window = context.policy.verify_window;
            let default = context.policy.scale_up_max_replicas;
            return match swarm::scale_up(&context.docker, service_id, &labels, default, window).await {
                Ok(scaled) => ActionOutcome::new(
                    pb::Outcome::Success,
                    format!(
                        "scaled Swarm service {} from {} to {} replicas; {} tasks running after {:.1}s",
                        scaled.service,
                        scaled.from,
                        scaled.to,
                        scaled.to,
                        scaled.waited.as_secs_f64()
                    ),
                ),
                Err(error) if error.is_refused() => ActionOutcome::refused(error),
                Err(error) if error.is_not_applicable() => ActionOutcome::not_applicable(error),
                Err(error) => ActionOutcome::failed(error.to_string()),
            };
        }
        let Some(service) = ComposeService::of(&labels) else {
            return ActionOutcome::not_applicable("the container is not part of a Compose service or a Swarm service");
        };
        compose_replica::start_next(context, target, &service).await
    }
}

/// The most replicas a service may have, and what says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaCap {
    /// The most replicas.
    pub max: u64,
    /// Where the cap comes from, for people.
    pub source: &'static str,
}

impl std::fmt::Display for ReplicaCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.max, self.source)
    }
}

impl ReplicaCap {
    /// The cap from the container's labels, else the service's (Swarm), else the node's `default`; an
    /// unreadable label is an error that says what is wrong with it.
    pub fn from_labels(
        container: &HashMap<String, String>,
        service: Option<&HashMap<String, String>>,
        default: u64,
    ) -> Result<Self, String> {
        let labelled = [(container, "label hemostat.scale_up.max on the container")]
            .into_iter()
            .chain(service.map(|s| (s, "label hemostat.scale_up.max on the service")))
            .find_map(|(labels, source)| labels.get(MAX_REPLICAS_LABEL).map(|value| (value, source)));
        match labelled {
            None => Ok(ReplicaCap { max: default, source: "the node's NODE_SCALE_UP_MAX_REPLICAS" }),
            Some((value, source)) => match value.trim().parse::<u64>() {
                Ok(max) if max > 0 => Ok(ReplicaCap { max, source }),
                _ => Err(format!(
                    "the {source} is {:?}, not a positive whole number of replicas",
                    value.chars().take(32).collect::<String>()
                )),
            },
        }
    }

    /// Why one more replica than `replicas` is refused, if it is.
    pub fn refusal(&self, service: &str, replicas: u64) -> Option<String> {
        (replicas >= self.max)
            .then(|| format!("{service} has {replicas} replicas, at its cap of {self}; scale_up never goes past it"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(value: Option<&str>) -> HashMap<String, String> {
        value.map(|v| HashMap::from([(MAX_REPLICAS_LABEL.to_owned(), v.to_owned())])).unwrap_or_default()
    }

    #[test]
    fn the_cap_comes_from_the_container_then_the_service_then_the_node() {
        let cap = |c, s: Option<&str>| ReplicaCap::from_labels(&labels(c), s.map(|s| labels(Some(s))).as_ref(), 10);
        assert_eq!(cap(None, None).unwrap().max, 10);
        assert!(cap(None, None).unwrap().source.contains("NODE_SCALE_UP_MAX_REPLICAS"));
        assert_eq!(
            cap(Some("3"), Some("5")).unwrap(),
            ReplicaCap { max: 3, source: "label hemostat.scale_up.max on the container" }
        );
        assert_eq!(cap(None, Some("5")).unwrap().max, 5);
        for bad in ["0", "-1", "many", "", "1e3"] {
            let error = cap(Some(bad), None).unwrap_err();
            assert!(error.contains("not a positive whole number"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_service_at_its_cap_gets_no_more_replicas() {
        let cap = ReplicaCap { max: 2, source: "test" };
        assert_eq!(cap.refusal("shop/api", 1), None);
        let refused = cap.refusal("shop/api", 2).unwrap();
        assert!(refused.contains("shop/api has 2 replicas, at its cap of 2 (test)"), "{refused}");
        assert!(cap.refusal("shop/api", 7).is_some());
    }
}
