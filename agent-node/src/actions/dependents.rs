//! The containers to restart after a healed one, for the coordinator to restart in order, each through its
//! own budget: the running watched containers that share its network namespace (`network_mode:
//! container:X`, Compose's `service:X`; after X restarts they are left in its old namespace), then those
//! whose `hemostat.depends_on` label names it (a comma-separated list of container names).
//!
//! A container left pointing at a namespace that no longer exists (its parent was recreated, so it has a new
//! id) cannot be mended by a restart; one in the healed container's Compose project is reported, with what
//! to do, in the restart's result.

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptions;

use super::compose::{ComposeService, PROJECT_LABEL};
use crate::inventory::ContainerSelector;

/// The label naming the containers (comma-separated names) a container must be restarted after.
pub const DEPENDS_ON_LABEL: &str = "hemostat.depends_on";

/// The container being healed.
#[derive(Clone, Debug)]
pub struct Parent<'a> {
    /// Its full id.
    pub id: &'a str,
    /// Its name, without Docker's leading slash.
    pub name: &'a str,
    /// Its labels.
    pub labels: &'a HashMap<String, String>,
}

/// What the healed container's dependents need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dependents {
    /// The ids of the containers to restart after it, in order.
    pub restart: Vec<String>,
    /// For each dependent a restart cannot mend, what is wrong and what to do.
    pub stale: Vec<String>,
}

/// The dependents of `parent` among the containers `selector` watches.
pub async fn of(docker: &Docker, selector: &ContainerSelector, parent: &Parent<'_>) -> Dependents {
    let options = ListContainersOptions { all: true, ..Default::default() };
    match docker.list_containers(Some(options)).await {
        Ok(containers) => among(&containers, selector, parent),
        Err(error) => {
            tracing::warn!(%error, container = %parent.name.escape_debug(), "cannot list containers to find its dependents");
            Dependents::default()
        }
    }
}

/// One listed container, as this module reads it.
struct Listed<'a> {
    id: &'a str,
    name: &'a str,
    labels: HashMap<String, String>,
    running: bool,
    /// The container named in `network_mode: container:<it>`.
    network_of: Option<&'a str>,
}

impl<'a> Listed<'a> {
    fn of(summary: &'a ContainerSummary) -> Self {
        let name = summary.names.as_ref().and_then(|n| n.first()).map_or("", |n| n.trim_start_matches('/'));
        let mode = summary.host_config.as_ref().and_then(|h| h.network_mode.as_deref()).unwrap_or("");
        Listed {
            id: summary.id.as_deref().unwrap_or(""),
            name,
            labels: summary.labels.clone().unwrap_or_default(),
            running: summary.state == Some(ContainerSummaryStateEnum::RUNNING),
            network_of: mode.strip_prefix("container:"),
        }
    }

    /// Whether `reference` (an id, a unique id prefix of 12 or more, or a name) names this container.
    fn is(&self, reference: &str) -> bool {
        reference == self.name || reference == self.id || (reference.len() >= 12 && self.id.starts_with(reference))
    }
}

/// The dependents of `parent` among the listed `containers`.
pub fn among(containers: &[ContainerSummary], selector: &ContainerSelector, parent: &Parent<'_>) -> Dependents {
    let listed: Vec<Listed> = containers.iter().map(Listed::of).collect();
    let me = Listed { id: parent.id, name: parent.name, labels: HashMap::new(), running: true, network_of: None };
    let mut candidates: Vec<&Listed> =
        listed.iter().filter(|c| c.id != parent.id && selector.decide(c.id, c.name, &c.labels).watched()).collect();
    candidates.sort_by_key(|c| c.name);
    let shares = candidates.iter().filter(|c| c.running && c.network_of.is_some_and(|r| me.is(r)));
    let depends = candidates.iter().filter(|c| {
        c.running && c.labels.get(DEPENDS_ON_LABEL).is_some_and(|v| v.split(',').any(|n| n.trim() == parent.name))
    });
    let mut seen = HashSet::new();
    let restart = shares.chain(depends).filter(|c| seen.insert(c.id)).map(|c| c.id.to_owned()).collect();
    let project = parent.labels.get(PROJECT_LABEL);
    let stale = candidates
        .iter()
        .filter(|c| project.is_some() && c.labels.get(PROJECT_LABEL) == project)
        .filter_map(|c| {
            let reference = c.network_of?;
            let exists = listed.iter().any(|other| other.is(reference));
            (!exists).then(|| stale_advice(c, reference, parent))
        })
        .collect();
    Dependents { restart, stale }
}

/// What is wrong with `dependent`, left in the namespace of the gone container `reference`, and what to do.
fn stale_advice(dependent: &Listed, reference: &str, parent: &Parent<'_>) -> String {
    let fix = match ComposeService::of(&dependent.labels) {
        Some(service) => {
            format!("recreate it (docker compose -p {} up -d --force-recreate {})", service.project, service.service)
        }
        None => format!("remove it and run it again with --network container:{}", parent.name),
    };
    let short: String = reference.chars().take(12).collect();
    format!(
        "{} shares the network namespace of container {short}, which no longer exists (its parent was \
         recreated): a restart cannot bring it back; {fix}",
        dependent.name
    )
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerSummaryHostConfig;

    use super::*;

    fn listed(id: &str, name: &str, mode: &str, labels: &[(&str, &str)], running: bool) -> ContainerSummary {
        ContainerSummary {
            id: Some(id.to_owned()),
            names: Some(vec![format!("/{name}")]),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            state: Some(if running { ContainerSummaryStateEnum::RUNNING } else { ContainerSummaryStateEnum::EXITED }),
            host_config: Some(ContainerSummaryHostConfig { network_mode: Some(mode.to_owned()), ..Default::default() }),
            ..Default::default()
        }
    }

    const APP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn namespace_sharers_first_then_depends_on_running_and_watched_only() {
        let compose = [(PROJECT_LABEL, "shop"), ("com.docker.compose.service", "sidecar")];
        let containers = vec![
            listed(APP, "app", "bridge", &compose[..1], true),
            listed("b1", "z-sidecar", &format!("container:{APP}"), &compose, true),
            listed("b2", "a-sidecar", "container:app", &[], true),
            listed("b3", "short-ref", &format!("container:{}", &APP[..12]), &[], true),
            listed("c1", "worker", "bridge", &[(DEPENDS_ON_LABEL, "db, app")], true),
            listed("c2", "both", "container:app", &[(DEPENDS_ON_LABEL, "app")], true),
            listed("d1", "stopped", "container:app", &[], false),
            listed("d2", "optout", "container:app", &[("hemostat.enable", "false")], true),
            listed("d3", "other", "bridge", &[(DEPENDS_ON_LABEL, "application")], true),
        ];
        let labels: HashMap<String, String> =
            compose[..1].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let parent = Parent { id: APP, name: "app", labels: &labels };
        let found = among(&containers, &ContainerSelector::all(), &parent);
        assert_eq!(found.restart, ["b2", "c2", "b3", "b1", "c1"], "sharers by name, then depends_on");
        assert_eq!(found.stale, Vec::<String>::new());
    }

    #[test]
    fn a_dependent_left_in_a_gone_namespace_is_reported_with_what_to_do() {
        let compose = |service| [(PROJECT_LABEL, "shop"), ("com.docker.compose.service", service)];
        let gone = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
        let containers = vec![
            listed(APP, "shop-app-1", "shop_default", &compose("app"), true),
            listed("b1", "shop-sidecar-1", &format!("container:{gone}"), &compose("sidecar"), true),
            listed("b2", "elsewhere", &format!("container:{gone}"), &[(PROJECT_LABEL, "other")], true),
        ];
        let labels: HashMap<String, String> =
            compose("app").iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let parent = Parent { id: APP, name: "shop-app-1", labels: &labels };
        let found = among(&containers, &ContainerSelector::all(), &parent);
        assert_eq!(found.restart, Vec::<String>::new());
        assert_eq!(
            found.stale,
            ["shop-sidecar-1 shares the network namespace of container dddddddddddd, which no longer exists (its \
              parent was recreated): a restart cannot bring it back; recreate it (docker compose -p shop up -d \
              --force-recreate sidecar)"]
        );
    }
}
