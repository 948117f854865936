//! What the node reports about containers: Docker's inspect data turned into `hemostat.v1.ContainerState`,
//! and which containers the node watches at all.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, RestartPolicyNameEnum};
use bollard::query_parameters::ListContainersOptions;
use futures::{StreamExt, TryStreamExt};
use hemostat_proto::v1 as pb;

/// The label with which a container opts out of HemoStat.
pub const OPT_OUT_LABEL: &str = "hemostat.enable";

/// Which containers this node watches: all but the opted-out ones, narrowed to those carrying one label
/// when a selector is configured (several nodes sharing one Docker engine, or a node for part of a host).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSelector {
    label: Option<(String, String)>,
}

/// A selector that is not `key=value`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid container selector {0:?}: expected label=value, e.g. com.example.team=payments")]
pub struct InvalidSelector(pub String);

impl ContainerSelector {
    /// Every container that did not opt out.
    pub fn all() -> Self {
        ContainerSelector { label: None }
    }

    /// Parses `key=value`.
    pub fn parse(spec: &str) -> Result<Self, InvalidSelector> {
        match spec.split_once('=') {
            Some((key, value)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                Ok(ContainerSelector { label: Some((key.to_owned(), value.to_owned())) })
            }
            _ => Err(InvalidSelector(spec.to_owned())),
        }
    }

    /// Whether a container with these labels is watched.
    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        let opted_out = labels.get(OPT_OUT_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let selected = self.label.as_ref().is_none_or(|(k, v)| labels.get(k) == Some(v));
        selected && !opted_out
    }

    /// The Docker API `label` filter for this selector, if any.
    pub fn docker_filter(&self) -> Option<String> {
        self.label.as_ref().map(|(k, v)| format!("{k}={v}"))
    }
}

/// The report of one inspected container.
pub fn state_from_inspect(inspect: &ContainerInspectResponse) -> pb::ContainerState {
    let state = inspect.state.as_ref();
    let status = match state.and_then(|s| s.status) {
        Some(ContainerStateStatusEnum::CREATED) => pb::ContainerStatus::Created,
        Some(ContainerStateStatusEnum::RUNNING) => pb::ContainerStatus::Running,
        Some(ContainerStateStatusEnum::PAUSED) => pb::ContainerStatus::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => pb::ContainerStatus::Restarting,
        Some(ContainerStateStatusEnum::EXITED) => pb::ContainerStatus::Exited,
        Some(ContainerStateStatusEnum::DEAD) => pb::ContainerStatus::Dead,
        Some(ContainerStateStatusEnum::REMOVING) => pb::ContainerStatus::Removing,
        Some(ContainerStateStatusEnum::STOPPING) => pb::ContainerStatus::Running,
        Some(ContainerStateStatusEnum::EMPTY) | None => pb::ContainerStatus::Unspecified,
    };
    let health = match state.and_then(|s| s.health.as_ref()).and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => pb::HealthStatus::Starting,
        Some(HealthStatusEnum::HEALTHY) => pb::HealthStatus::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => pb::HealthStatus::Unhealthy,
        Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) | None => pb::HealthStatus::None,
    };
    let restart_policy = inspect
        .host_config
        .as_ref()
        .and_then(|h| h.restart_policy.as_ref())
        .and_then(|p| p.name)
        .map(|name| match name {
            RestartPolicyNameEnum::ALWAYS => "always",
            RestartPolicyNameEnum::UNLESS_STOPPED => "unless-stopped",
            RestartPolicyNameEnum::ON_FAILURE => "on-failure",
            RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY => "no",
        })
        .unwrap_or("no");
    let config = inspect.config.as_ref();
    pb::ContainerState {
        id: inspect.id.clone().unwrap_or_default(),
        name: inspect.name.as_deref().unwrap_or_default().trim_start_matches('/').to_owned(),
        image: config.and_then(|c| c.image.clone()).or_else(|| inspect.image.clone()).unwrap_or_default(),
        status: status as i32,
        health: health as i32,
        exit_code: state.and_then(|s| s.exit_code).unwrap_or_default(),
        restart_policy: restart_policy.to_owned(),
        labels: config.and_then(|c| c.labels.clone()).unwrap_or_default(),
        started_at: state
            .and_then(|s| s.started_at.as_deref())
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .map(hemostat_proto::timestamp::to_proto),
    }
}

/// Whether the container was killed by the OOM killer, per inspect.
pub fn oom_killed(inspect: &ContainerInspectResponse) -> bool {
    inspect.state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false)
}

/// Inspects every watched container: the snapshot sent after each (re)connect.
pub async fn snapshot(
    docker: &Docker,
    selector: &ContainerSelector,
) -> Result<Vec<pb::ContainerState>, bollard::errors::Error> {
    let mut filters = HashMap::new();
    if let Some(label) = selector.docker_filter() {
        filters.insert("label".to_owned(), vec![label]);
    }
    let summaries = docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await?;
    let ids: Vec<String> = summaries
        .into_iter()
        .filter(|s| selector.matches(&s.labels.clone().unwrap_or_default()))
        .filter_map(|s| s.id)
        .collect();
    let inspected: Vec<Option<pb::ContainerState>> = futures::stream::iter(ids)
        .map(|id| async move {
            match docker.inspect_container(&id, None).await {
                Ok(inspect) => Ok(Some(state_from_inspect(&inspect))),
                // Removed between the list and the inspect: simply gone.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
                Err(error) => Err(error),
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let mut containers: Vec<pb::ContainerState> = inspected.into_iter().flatten().collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(containers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selectors_match_the_label_and_never_an_opted_out_container() {
        let all = ContainerSelector::all();
        assert!(all.matches(&labels(&[])));
        assert!(!all.matches(&labels(&[("hemostat.enable", "false")])));
        assert!(all.matches(&labels(&[("hemostat.enable", "true")])));
        let team = ContainerSelector::parse("team=a").unwrap();
        assert!(team.matches(&labels(&[("team", "a")])));
        assert!(!team.matches(&labels(&[("team", "b")])));
        assert!(!team.matches(&labels(&[("team", "a"), ("hemostat.enable", "FALSE")])));
        assert_eq!(team.docker_filter().as_deref(), Some("team=a"));
        for bad in ["", "team", "=a", "my team=a"] {
            assert!(ContainerSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
