//! What the node reports about containers: Docker's inspect data turned into `hemostat.v1.ContainerState`,
//! and which containers the node watches at all.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, RestartPolicyNameEnum};
use bollard::query_parameters::ListContainersOptions;
use futures::{StreamExt, TryStreamExt};
use hemostat_proto::v1 as pb;

/// The label with which a container opts out of HemoStat (`hemostat.enable=false`, any case).
pub const OPT_OUT_LABEL: &str = "hemostat.enable";
/// docker-autoheal's label, read as an opt-out when `false` (any case), for users moving from it; `true`
/// changes nothing (HemoStat watches every container not opted out).
pub const AUTOHEAL_LABEL: &str = "autoheal";

/// Whether a container is watched, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// Watched: the selector's label matched (or there is no selector) and nothing excluded it.
    Watched,
    /// It opted out with this label (`hemostat.enable` or `autoheal`) and value.
    OptedOut {
        /// The label.
        label: &'static str,
        /// Its value.
        value: String,
    },
    /// Its name matches this `MONITOR_CONTAINER_BLACKLIST` glob.
    Blacklisted(String),
    /// It does not carry the selector's label and value.
    NotSelected(String),
    /// It is the node's own container.
    Itself,
}

impl Watch {
    /// Whether the container is watched.
    pub fn watched(&self) -> bool {
        *self == Watch::Watched
    }
}

impl std::fmt::Display for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watch::Watched => write!(f, "watched: selected, not opted out, not blacklisted"),
            Watch::OptedOut { label, value } => write!(f, "not watched: opted out by label {label}={value}"),
            Watch::Blacklisted(glob) => write!(f, "not watched: its name matches the blacklist glob {glob:?}"),
            Watch::NotSelected(selector) => write!(f, "not watched: it lacks the selector label {selector}"),
            Watch::Itself => write!(f, "not watched: it is this node's own container"),
        }
    }
}

/// Which containers this node watches: all of them, except those that opted out
/// (`hemostat.enable=false`), those whose name matches a `MONITOR_CONTAINER_BLACKLIST` glob, and the node's
/// own container; narrowed to those carrying one label when a selector is configured (several nodes sharing
/// one Docker engine, or a node for part of a host). Nothing is excluded silently by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSelector {
    label: Option<(String, String)>,
    blacklist: Vec<String>,
    own_id: Option<String>,
}

/// A selector that is not `key=value`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid container selector {0:?}: expected label=value, e.g. com.example.team=payments")]
pub struct InvalidSelector(pub String);

impl ContainerSelector {
    /// Every container that did not opt out.
    pub fn all() -> Self {
        ContainerSelector::default()
    }

    /// Parses `key=value`.
    pub fn parse(spec: &str) -> Result<Self, InvalidSelector> {
        match spec.split_once('=') {
            Some((key, value)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                Ok(ContainerSelector { label: Some((key.to_owned(), value.to_owned())), ..Default::default() })
            }
            _ => Err(InvalidSelector(spec.to_owned())),
        }
    }

    /// Also excludes containers whose name matches one of these globs (`*` and `?`).
    pub fn with_blacklist(mut self, globs: Vec<String>) -> Self {
        self.blacklist = globs;
        self
    }

    /// Also excludes the node's own container.
    pub fn with_own_container(mut self, id: Option<String>) -> Self {
        self.own_id = id;
        self
    }

    /// Whether the container with this id, name (with or without Docker's leading slash) and labels is
    /// watched.
    pub fn matches(&self, id: &str, name: &str, labels: &HashMap<String, String>) -> bool {
        self.decide(id, name, labels).watched()
    }

    /// Whether the container with this id, name and labels is watched, and why.
    pub fn decide(&self, id: &str, name: &str, labels: &HashMap<String, String>) -> Watch {
        let name = name.trim_start_matches('/');
        if self.own_id.as_deref().is_some_and(|own| own == id) {
            return Watch::Itself;
        }
        if let Some((k, v)) = &self.label
            && labels.get(k) != Some(v)
        {
            return Watch::NotSelected(format!("{k}={v}"));
        }
        for label in [OPT_OUT_LABEL, AUTOHEAL_LABEL] {
            if let Some(value) = labels.get(label).filter(|v| v.trim().eq_ignore_ascii_case("false")) {
                return Watch::OptedOut { label, value: value.clone() };
            }
        }
        match self.blacklist.iter().find(|glob| glob_matches(glob, name)) {
            Some(glob) => Watch::Blacklisted(glob.clone()),
            None => Watch::Watched,
        }
    }

    /// The Docker API `label` filter for this selector, if any.
    pub fn docker_filter(&self) -> Option<String> {
        self.label.as_ref().map(|(k, v)| format!("{k}={v}"))
    }
}

/// Whether `text` matches `glob`, where `*` is any run of characters and `?` any one character.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let (glob, text): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut g, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if g < glob.len() && (glob[g] == '?' || glob[g] == text[t]) {
            g += 1;
            t += 1;
        } else if g < glob.len() && glob[g] == '*' {
            star = Some(g);
            mark = t;
            g += 1;
        } else if let Some(s) = star {
            g = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

/// The id of the container this process runs in, if it runs in one (from /proc/self/mountinfo, where
/// Docker mounts the container's hosts and resolv.conf files from `/containers/<id>/`).
pub fn own_container_id() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (_, rest) = line.split_once("/containers/")?;
        let id: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        (id.len() == 64).then_some(id)
    })
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
        memory_limit_bytes: inspect.host_config.as_ref().and_then(|h| h.memory).unwrap_or(0).max(0) as u64,
        cpu_limit: inspect.host_config.as_ref().and_then(|h| h.nano_cpus).unwrap_or(0).max(0) as f64 / 1e9,
    }
}

/// The last health check outputs recorded in inspect data, secrets masked.
pub fn health_outputs(inspect: &ContainerInspectResponse) -> Vec<String> {
    let log = inspect.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.log.as_deref()).unwrap_or(&[]);
    log[log.len().saturating_sub(5)..]
        .iter()
        .map(|entry| {
            let output = entry.output.as_deref().unwrap_or("").trim();
            crate::redact::mask(&format!("exit {}: {}", entry.exit_code.unwrap_or(-1), truncate(output, 1024)))
        })
        .collect()
}

/// The last `lines` lines of the container's log (stdout and stderr), secrets masked, each at most 1 KiB.
pub async fn log_tail(docker: &Docker, id: &str, lines: usize) -> Vec<String> {
    use bollard::query_parameters::LogsOptions;
    let options = LogsOptions { stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
    let mut stream = docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        if text.len() > 256 * 1024 {
            break;
        }
    }
    text.lines()
        .rev()
        .take(lines)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|l| crate::redact::mask(truncate(l, 1024)))
        .collect()
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Whether the container was killed by the OOM killer, per inspect.
pub fn oom_killed(inspect: &ContainerInspectResponse) -> bool {
    inspect.state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false)
}

/// The signal `docker stop` sends the container (its image's or its own `StopSignal`), as a number, if it
/// names one.
pub fn stop_signal(inspect: &ContainerInspectResponse) -> Option<i32> {
    inspect.config.as_ref().and_then(|c| c.stop_signal.as_deref()).and_then(crate::detection::signal_number)
}

/// Inspects every watched container: the snapshot sent after each (re)connect.
pub async fn snapshot(
    docker: &Docker,
    selector: &ContainerSelector,
) -> Result<Vec<pb::ContainerState>, bollard::errors::Error> {
    snapshot_explained(docker, selector, |_, _, _, _| {}).await
}

/// [`snapshot`], telling `explain` about every container listed: its id, name, labels and whether it is
/// watched.
pub async fn snapshot_explained(
    docker: &Docker,
    selector: &ContainerSelector,
    mut explain: impl FnMut(&str, &str, &HashMap<String, String>, &Watch),
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
        .filter(|s| {
            let name = s.names.as_ref().and_then(|n| n.first()).map_or("", String::as_str);
            let (id, labels) = (s.id.as_deref().unwrap_or(""), s.labels.clone().unwrap_or_default());
            let watch = selector.decide(id, name, &labels);
            explain(id, name, &labels, &watch);
            watch.watched()
        })
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
        .buffer_unordered(crate::engine::REQUESTS_IN_FLIGHT)
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
    fn selectors_match_the_label_and_never_an_opted_out_blacklisted_or_own_container() {
        let all = ContainerSelector::all();
        assert!(all.matches("1", "/web", &labels(&[])));
        assert!(!all.matches("1", "web", &labels(&[("hemostat.enable", "false")])));
        assert!(all.matches("1", "web", &labels(&[("hemostat.enable", "true")])));
        let team = ContainerSelector::parse("team=a").unwrap();
        assert!(team.matches("1", "web", &labels(&[("team", "a")])));
        assert!(!team.matches("1", "web", &labels(&[("team", "b")])));
        assert!(!team.matches("1", "web", &labels(&[("team", "a"), ("hemostat.enable", "FALSE")])));
        assert_eq!(team.docker_filter().as_deref(), Some("team=a"));
        for bad in ["", "team", "=a", "my team=a"] {
            assert!(ContainerSelector::parse(bad).is_err(), "{bad}");
        }
        let listed = ContainerSelector::all()
            .with_blacklist(vec!["hemostat-*".into(), "db?".into()])
            .with_own_container(Some("me".into()));
        assert!(!listed.matches("1", "/hemostat-redis", &labels(&[])));
        assert!(!listed.matches("1", "db1", &labels(&[])));
        assert!(listed.matches("1", "db12", &labels(&[])));
        assert!(!listed.matches("me", "anything", &labels(&[])), "the node never watches itself");
    }

    #[test]
    fn autoheal_false_opts_out_in_any_case_and_each_decision_says_why() {
        let all = ContainerSelector::all();
        for value in ["false", "False", "FALSE"] {
            assert_eq!(
                all.decide("1", "web", &labels(&[("autoheal", value)])),
                Watch::OptedOut { label: AUTOHEAL_LABEL, value: value.into() }
            );
            assert!(!all.matches("1", "web", &labels(&[("hemostat.enable", value)])), "{value}");
        }
        assert!(all.matches("1", "web", &labels(&[("autoheal", "true")])));
        let listed = ContainerSelector::parse("team=a").unwrap().with_blacklist(vec!["db*".into()]);
        assert_eq!(listed.decide("1", "web", &labels(&[])), Watch::NotSelected("team=a".into()));
        assert_eq!(listed.decide("1", "/db1", &labels(&[("team", "a")])), Watch::Blacklisted("db*".into()));
        let opted = listed.decide("1", "web", &labels(&[("team", "a"), ("hemostat.enable", "False")]));
        assert_eq!(opted.to_string(), "not watched: opted out by label hemostat.enable=False");
    }

    #[test]
    fn globs() {
        for (glob, text, expected) in [
            ("*", "", true),
            ("a*c", "abbc", true),
            ("a*c", "abcd", false),
            ("?b", "ab", true),
            ("a**", "a", true),
            ("x", "y", false),
        ] {
            assert_eq!(glob_matches(glob, text), expected, "{glob} {text}");
        }
    }
}
