//! Executing the coordinator's commands on this host, under the node's own rules. Whatever the coordinator
//! asks, the node acts only with the actions its configuration allows (`NODE_ALLOWED_ACTIONS`), runs only
//! commands on its exec allow-list (`RESPONDER_EXEC_ALLOWLIST`, matched as a whole argument vector, never
//! as a prefix or a shell string), acts only on containers it watches (never an opted-out one, never
//! itself), and runs each command id at most once (a command replayed after a reconnect is not run again).
//! A refused command is reported and logged. A compromised coordinator therefore cannot run arbitrary
//! commands on the host.
//!
//! Actions: `restart` (graceful, then verified), `exec` (a diagnostic command from the allow-list, its output
//! capped and masked), `cleanup` (exited containers of the same Compose service, else image, and dangling
//! images; never the target, a running container or a volume), `scale_up` (the next replica of a Compose
//! service, or one more replica of a replicated Swarm service; not applicable elsewhere, to a global
//! service, or on a node that is not a swarm manager).
//!
//! After a restart the node verifies: it watches the container for `RESPONDER_VERIFY_SECONDS` (30): still
//! running, and healthy if it has a health check → `success`; otherwise `failed` with what it saw. After
//! scaling up a Swarm service it waits, within the same window, for the new replica count of running tasks.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::RestartContainerOptions;
use futures::StreamExt;
use hemostat_model::Action;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;

use crate::inventory::{self, ContainerSelector};
use crate::outbox::Outbox;
use crate::swarm;

/// How many recent command ids are remembered for de-duplication.
const REMEMBERED_COMMANDS: usize = 4096;
/// The longest stop timeout the node accepts.
const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);
/// The most output an exec returns.
const MAX_OUTPUT: usize = 16 * 1024;

/// The diagnostic commands allowed by default: read-only, and none that prints secrets (so not `env`).
pub const DEFAULT_EXEC_ALLOWLIST: &str = "ps;top -b -n 1;df -h;free -m;uptime;uname -a";

/// An action the node knows how to execute, with what the node needs to execute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// Graceful restart.
    Restart {
        /// How long to wait for a graceful stop.
        stop_timeout: Duration,
    },
    /// A diagnostic command inside the container.
    Exec {
        /// The argument vector.
        argv: Vec<String>,
    },
    /// Remove exited containers of the same Compose service (else the same image) and dangling images.
    Cleanup,
    /// One more replica of the container's Compose or Swarm service.
    ScaleUp,
}

impl NodeAction {
    /// Which action it is.
    pub fn action(&self) -> Action {
        match self {
            NodeAction::Restart { .. } => Action::Restart,
            NodeAction::Exec { .. } => Action::Exec,
            NodeAction::Cleanup => Action::Cleanup,
            NodeAction::ScaleUp => Action::ScaleUp,
        }
    }

    /// The action's name, as in `NODE_ALLOWED_ACTIONS`.
    pub fn name(&self) -> &'static str {
        self.action().name()
    }
}

/// A command from the coordinator, checked and converted from the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRequest {
    /// Its id.
    pub id: String,
    /// The target container.
    pub container_id: String,
    /// What to do; `Err` holds why the command cannot be executed as sent.
    pub action: Result<NodeAction, String>,
}

impl From<pb::Command> for CommandRequest {
    fn from(command: pb::Command) -> Self {
        let action = match Action::try_from(command.action()) {
            Ok(Action::Restart) => {
                let stop_timeout = Duration::from_secs(u64::from(command.stop_timeout_seconds));
                if stop_timeout > MAX_STOP_TIMEOUT {
                    Err(format!("stop timeout {}s is above the node's limit of 3600s", command.stop_timeout_seconds))
                } else {
                    Ok(NodeAction::Restart { stop_timeout })
                }
            }
            Ok(Action::Exec) if command.argv.is_empty() => Err("exec without a command".to_owned()),
            Ok(Action::Exec) => Ok(NodeAction::Exec { argv: command.argv }),
            Ok(Action::Cleanup) => Ok(NodeAction::Cleanup),
            Ok(Action::ScaleUp) => Ok(NodeAction::ScaleUp),
            Err(_) => Err(format!("action {} is not one this node executes", command.action().as_str_name())),
        };
        CommandRequest { id: command.command_id, container_id: command.container_id, action }
    }
}

/// What the node allows, whatever the coordinator asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionPolicy {
    /// Action names allowed (`restart`, `exec`).
    pub allowed_actions: Vec<String>,
    /// Exec commands allowed, each a whole argument vector.
    pub exec_allowlist: Vec<Vec<String>>,
    /// Longest an exec may run.
    pub exec_timeout: Duration,
    /// How long a restarted container is watched before it counts as a success.
    pub verify_window: Duration,
}

impl Default for ExecutionPolicy {
    fn default() -> Self {
        ExecutionPolicy {
            allowed_actions: vec!["restart".into(), "exec".into(), "cleanup".into(), "scale_up".into()],
            exec_allowlist: parse_allowlist(DEFAULT_EXEC_ALLOWLIST),
            exec_timeout: Duration::from_secs(10),
            verify_window: Duration::from_secs(30),
        }
    }
}

/// Parses an allow-list: commands separated by `;`, each split on whitespace into its argument vector.
pub fn parse_allowlist(spec: &str) -> Vec<Vec<String>> {
    spec.split(';')
        .map(|command| command.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|argv| !argv.is_empty())
        .collect()
}

impl ExecutionPolicy {
    /// Why the node refuses `action`, if it does.
    pub fn refusal(&self, action: &NodeAction) -> Option<String> {
        if !self.allowed_actions.iter().any(|a| a == action.name()) {
            return Some(format!("action {} is not allowed on this node (NODE_ALLOWED_ACTIONS)", action.name()));
        }
        if let NodeAction::Exec { argv } = action
            && !self.exec_allowlist.iter().any(|allowed| allowed == argv)
        {
            let shown: Vec<String> = argv
                .iter()
                .take(8)
                .map(|a| a.chars().take(64).collect::<String>().escape_debug().to_string())
                .collect();
            return Some(format!("command {shown:?} is not on this node's exec allow-list (RESPONDER_EXEC_ALLOWLIST)"));
        }
        None
    }
}

/// The result of one command.
struct Done {
    outcome: pb::Outcome,
    detail: String,
    output: String,
}

impl Done {
    fn new(outcome: pb::Outcome, detail: impl Into<String>) -> Self {
        Done { outcome, detail: detail.into(), output: String::new() }
    }
}

/// Runs commands and reports their results through the outbox.
pub struct Executor {
    docker: Docker,
    selector: ContainerSelector,
    policy: ExecutionPolicy,
    outbox: Arc<Outbox>,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Executor {
    /// An executor acting on the containers `selector` picks, under `policy`.
    pub fn new(docker: Docker, selector: ContainerSelector, policy: ExecutionPolicy, outbox: Arc<Outbox>) -> Self {
        Executor { docker, selector, policy, outbox, seen: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    /// Starts executing `command` in the background, unless its id ran already.
    pub fn submit(self: &Arc<Self>, command: CommandRequest) {
        {
            let mut seen = self.seen.lock().expect("seen lock");
            if !seen.0.insert(command.id.clone()) {
                tracing::info!(command_id = %command.id, "ignored a command delivered again");
                return;
            }
            seen.1.push_back(command.id.clone());
            if seen.1.len() > REMEMBERED_COMMANDS
                && let Some(old) = seen.1.pop_front()
            {
                seen.0.remove(&old);
            }
        }
        let executor = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let done = executor.execute(&command).await;
            let duration_ms = started.elapsed().as_millis() as u64;
            match done.outcome {
                pb::Outcome::Success => {
                    tracing::info!(command_id = %command.id, detail = %done.detail, duration_ms, "command done")
                }
                pb::Outcome::Refused => {
                    tracing::warn!(command_id = %command.id, detail = %done.detail, "command refused")
                }
                outcome => {
                    tracing::warn!(command_id = %command.id, ?outcome, detail = %done.detail, "command did not succeed")
                }
            }
            crate::instruments::global().command_finished(command.action.as_ref().ok(), done.outcome);
            executor.outbox.push(Body::CommandResult(pb::CommandResult {
                command_id: command.id,
                container_id: command.container_id,
                outcome: done.outcome as i32,
                detail: done.detail,
                duration_ms,
                output: done.output,
            }));
        });
    }

    async fn execute(&self, command: &CommandRequest) -> Done {
        let action = match &command.action {
            Ok(action) => action,
            Err(why) => return Done::new(pb::Outcome::Refused, format!("refused: {why}")),
        };
        if let Some(why) = self.policy.refusal(action) {
            return Done::new(pb::Outcome::Refused, format!("refused: {why}"));
        }
        let inspect = match self.docker.inspect_container(&command.container_id, None).await {
            Ok(inspect) => inspect,
            Err(error) => return Done::new(pb::Outcome::Failed, format!("cannot inspect the container: {error}")),
        };
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let name = inspect.name.as_deref().unwrap_or_default();
        let id = inspect.id.clone().unwrap_or_default();
        if !self.selector.matches(&id, name, &labels) {
            return Done::new(
                pb::Outcome::Refused,
                "refused: the container is not watched by this node (opted out, blacklisted, outside its selector, or the node itself)",
            );
        }
        match action {
            NodeAction::Restart { stop_timeout } => self.restart(&id, *stop_timeout).await,
            NodeAction::Exec { argv } => self.exec(&id, argv).await,
            NodeAction::Cleanup => self.cleanup(&id, &inspect).await,
            NodeAction::ScaleUp => self.scale_up(&inspect).await,
        }
    }

    /// One more replica of the target's service: a Swarm task's replicated service gets its replica count
    /// raised and verified ([`swarm::scale_up`]); a Compose service gets its next replica started: the same
    /// configuration, labels, volumes and networks, the next replica number, and no host port bindings (the
    /// first replica holds them). Any other container is `not_applicable`.
    async fn scale_up(&self, inspect: &bollard::models::ContainerInspectResponse) -> Done {
        use bollard::models::{ContainerCreateBody, EndpointSettings, NetworkConnectRequest, NetworkingConfig};
        use bollard::query_parameters::{CreateContainerOptions, ListContainersOptions};
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        if let Some(service_id) = labels.get(swarm::SERVICE_ID_LABEL) {
            return match swarm::scale_up(&self.docker, service_id, self.policy.verify_window).await {
                Ok(scaled) => Done::new(
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
                Err(error) if error.is_not_applicable() => {
                    Done::new(pb::Outcome::NotApplicable, format!("not applicable: {error}"))
                }
                Err(error) => Done::new(pb::Outcome::Failed, error.to_string()),
            };
        }
        let (Some(project), Some(service)) =
            (labels.get("com.docker.compose.project").cloned(), labels.get("com.docker.compose.service").cloned())
        else {
            return Done::new(
                pb::Outcome::NotApplicable,
                "not applicable: the container is not part of a Compose service or a Swarm service",
            );
        };
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("com.docker.compose.project={project}"), format!("com.docker.compose.service={service}")],
        )]);
        let replicas = match self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
        {
            Ok(listed) => listed,
            Err(error) => {
                return Done::new(pb::Outcome::Failed, format!("cannot list the service's containers: {error}"));
            }
        };
        let next = replicas
            .iter()
            .filter_map(|c| c.labels.as_ref()?.get("com.docker.compose.container-number")?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        // The inspect document's config has the create body's field names.
        let mut body = match serde_json::to_value(inspect.config.clone().unwrap_or_default())
            .and_then(serde_json::from_value::<ContainerCreateBody>)
        {
            Ok(body) => body,
            Err(e) => return Done::new(pb::Outcome::Failed, format!("cannot copy the container's configuration: {e}")),
        };
        body.hostname = None;
        let mut labels = labels;
        labels.insert("com.docker.compose.container-number".into(), next.to_string());
        body.labels = Some(labels);
        let mut host_config = inspect.host_config.clone().unwrap_or_default();
        host_config.port_bindings = None;
        body.host_config = Some(host_config);
        let networks: Vec<String> = inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .map(|n| n.keys().cloned().collect())
            .unwrap_or_default();
        let endpoint = || EndpointSettings { aliases: Some(vec![service.clone()]), ..Default::default() };
        body.networking_config = networks.first().map(|first| NetworkingConfig {
            endpoints_config: Some(std::collections::HashMap::from([(first.clone(), endpoint())])),
        });
        let name = format!("{project}_{service}_{next}");
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(error) => return Done::new(pb::Outcome::Failed, format!("cannot create replica {next}: {error}")),
        };
        for network in networks.iter().skip(1) {
            let request = NetworkConnectRequest { container: created.id.clone(), endpoint_config: Some(endpoint()) };
            if let Err(error) = self.docker.connect_network(network, request).await {
                return Done::new(
                    pb::Outcome::Failed,
                    format!("created {name}, but cannot connect it to {network}: {error}"),
                );
            }
        }
        if let Err(error) = self.docker.start_container(&created.id, None).await {
            return Done::new(pb::Outcome::Failed, format!("created {name}, but it does not start: {error}"));
        }
        Done::new(pb::Outcome::Success, format!("started {name}, replica {next} of {project}/{service}"))
    }

    /// Removes the exited containers of the target's Compose service (without Compose labels: of its
    /// image) that this node watches, keeping their volumes, then prunes dangling images. Never the target,
    /// never a running container.
    async fn cleanup(&self, target: &str, inspect: &bollard::models::ContainerInspectResponse) -> Done {
        use bollard::query_parameters::{ListContainersOptions, PruneImagesOptions, RemoveContainerOptions};
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let compose = (labels.get("com.docker.compose.project"), labels.get("com.docker.compose.service"));
        let mut filters =
            std::collections::HashMap::from([("status".to_owned(), vec!["exited".to_owned(), "dead".to_owned()])]);
        let scope = match compose {
            (Some(project), Some(service)) => {
                filters.insert(
                    "label".to_owned(),
                    vec![
                        format!("com.docker.compose.project={project}"),
                        format!("com.docker.compose.service={service}"),
                    ],
                );
                format!("Compose service {project}/{service}")
            }
            _ => format!("image {}", inspect.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default()),
        };
        let image = inspect.image.clone().unwrap_or_default();
        let listed = match self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
        {
            Ok(listed) => listed,
            Err(error) => return Done::new(pb::Outcome::Failed, format!("cannot list containers: {error}")),
        };
        let mut removed = Vec::new();
        for summary in listed {
            let (Some(id), name) =
                (summary.id.clone(), summary.names.as_ref().and_then(|n| n.first()).cloned().unwrap_or_default())
            else {
                continue;
            };
            let same_image = compose.0.is_some() || summary.image_id.as_deref() == Some(image.as_str());
            let running = matches!(summary.state, Some(bollard::models::ContainerSummaryStateEnum::RUNNING));
            if id == target
                || running
                || !same_image
                || !self.selector.matches(&id, &name, &summary.labels.clone().unwrap_or_default())
            {
                continue;
            }
            // `v: false`: volumes, named or anonymous, are never removed.
            let options = RemoveContainerOptions { v: false, force: false, link: false };
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => removed.push(name.trim_start_matches('/').to_owned()),
                Err(error) => tracing::warn!(container = %name, %error, "cleanup could not remove a container"),
            }
        }
        let dangling = std::collections::HashMap::from([("dangling".to_owned(), vec!["true".to_owned()])]);
        let pruned = self.docker.prune_images(Some(PruneImagesOptions { filters: Some(dangling) })).await;
        let (images, bytes) = match pruned {
            Ok(r) => (r.images_deleted.map_or(0, |d| d.len()), r.space_reclaimed.unwrap_or(0)),
            Err(error) => {
                tracing::warn!(%error, "cleanup could not prune dangling images");
                (0, 0)
            }
        };
        let detail = format!(
            "removed {} exited containers of {scope}{}{}; pruned {images} dangling images ({} MiB)",
            removed.len(),
            if removed.is_empty() { "" } else { ": " },
            removed.join(", "),
            bytes / (1 << 20)
        );
        Done::new(
            if removed.is_empty() && images == 0 { pb::Outcome::NotApplicable } else { pb::Outcome::Success },
            detail,
        )
    }

    async fn restart(&self, id: &str, stop_timeout: Duration) -> Done {
        let options = RestartContainerOptions { t: Some(stop_timeout.as_secs() as i32), signal: None };
        if let Err(error) = self.docker.restart_container(id, Some(options)).await {
            return Done::new(pb::Outcome::Failed, format!("restart failed: {error}"));
        }
        self.verify(id).await
    }

    /// Watches a restarted container for the verification window.
    async fn verify(&self, id: &str) -> Done {
        let window = self.policy.verify_window;
        let started = Instant::now();
        // A health check may still be starting at the end of the window: give it one more window.
        let give_up = started + window * 2;
        loop {
            let state = match self.docker.inspect_container(id, None).await {
                Ok(inspect) => inventory::state_from_inspect(&inspect),
                Err(error) => {
                    return Done::new(pb::Outcome::Failed, format!("restarted, but cannot inspect it: {error}"));
                }
            };
            if state.status() != pb::ContainerStatus::Running {
                return Done::new(
                    pb::Outcome::Failed,
                    format!(
                        "restarted, but it is {} again (exit code {}) within {}s",
                        state.status().as_str_name().trim_start_matches("CONTAINER_STATUS_").to_ascii_lowercase(),
                        state.exit_code,
                        started.elapsed().as_secs()
                    ),
                );
            }
            if state.health() == pb::HealthStatus::Unhealthy {
                return Done::new(pb::Outcome::Failed, "restarted, but its health check still fails");
            }
            let settled = matches!(
                state.health(),
                pb::HealthStatus::None | pb::HealthStatus::Healthy | pb::HealthStatus::Unspecified
            );
            if started.elapsed() >= window && settled {
                let health = if state.health() == pb::HealthStatus::Healthy { " and healthy" } else { "" };
                return Done::new(
                    pb::Outcome::Success,
                    format!("restarted; running{health} for {}s", window.as_secs()),
                );
            }
            if Instant::now() >= give_up {
                return Done::new(
                    pb::Outcome::Failed,
                    format!("restarted, but not healthy after {}s", (window * 2).as_secs()),
                );
            }
            tokio::time::sleep(Duration::from_millis(250).min(window.max(Duration::from_millis(10)))).await;
        }
    }

    async fn exec(&self, id: &str, argv: &[String]) -> Done {
        let options = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let run = async {
            let exec = self.docker.create_exec(id, options).await?;
            let mut output = String::new();
            if let StartExecResults::Attached { output: mut stream, .. } =
                self.docker.start_exec(&exec.id, None).await?
            {
                while let Some(chunk) = stream.next().await {
                    if output.len() < MAX_OUTPUT {
                        output.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
                    }
                }
            }
            let code = self.docker.inspect_exec(&exec.id).await?.exit_code;
            Ok::<_, bollard::errors::Error>((code, output))
        };
        match tokio::time::timeout(self.policy.exec_timeout, run).await {
            Err(_) => Done::new(
                pb::Outcome::Failed,
                format!("the command did not finish within {}s", self.policy.exec_timeout.as_secs()),
            ),
            Ok(Err(error)) => Done::new(pb::Outcome::Failed, format!("exec failed: {error}")),
            Ok(Ok((code, output))) => {
                let capped: String = output.chars().take(MAX_OUTPUT).collect();
                let output = capped.lines().map(crate::redact::mask).collect::<Vec<_>>().join("\n");
                let outcome = if code == Some(0) { pb::Outcome::Success } else { pb::Outcome::Failed };
                Done {
                    outcome,
                    detail: format!("exited with code {}", code.map_or("?".into(), |c| c.to_string())),
                    output,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(action: pb::Action, stop_timeout_seconds: u32, argv: &[&str]) -> pb::Command {
        pb::Command {
            command_id: "c".into(),
            container_id: "x".into(),
            container_name: "web".into(),
            action: action as i32,
            stop_timeout_seconds,
            argv: argv.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn commands_the_node_cannot_execute_are_refused_with_a_reason() {
        assert_eq!(
            CommandRequest::from(command(pb::Action::Restart, 10, &[])).action,
            Ok(NodeAction::Restart { stop_timeout: Duration::from_secs(10) })
        );
        assert!(CommandRequest::from(command(pb::Action::Restart, 7200, &[])).action.is_err());
        assert!(CommandRequest::from(command(pb::Action::Unspecified, 10, &[])).action.is_err());
        assert!(CommandRequest::from(command(pb::Action::Exec, 0, &[])).action.is_err());
        let mut unknown = command(pb::Action::Restart, 10, &[]);
        unknown.action = 99;
        assert!(CommandRequest::from(unknown).action.is_err());
    }

    #[test]
    fn the_allow_list_matches_whole_argument_vectors_only() {
        let policy = ExecutionPolicy::default();
        let exec =
            |argv: &[&str]| policy.refusal(&NodeAction::Exec { argv: argv.iter().map(|a| a.to_string()).collect() });
        assert_eq!(exec(&["uname", "-a"]), None);
        assert_eq!(exec(&["top", "-b", "-n", "1"]), None);
        for refused in [
            &["uname"][..],
            &["uname", "-a", "-r"],
            &["uname -a"],
            &["sh", "-c", "uname -a"],
            &["uname", "-a;", "rm", "-rf", "/"],
            &["env"],
            &["/bin/uname", "-a"],
        ] {
            assert!(exec(refused).is_some(), "{refused:?} must be refused");
        }
        let restart_only = ExecutionPolicy { allowed_actions: vec!["restart".into()], ..ExecutionPolicy::default() };
        assert!(
            restart_only
                .refusal(&NodeAction::Exec { argv: vec!["ps".into()] })
                .unwrap()
                .contains("NODE_ALLOWED_ACTIONS")
        );
        assert_eq!(parse_allowlist(" ps ; df -h;;"), vec![vec!["ps".to_string()], vec!["df".into(), "-h".into()]]);
    }
}
