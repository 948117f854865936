//! Executing the coordinator's commands on this host, under the node's own rules: whatever the coordinator
//! asks, the node only acts on containers it watches (never an opted-out one), only with actions it knows,
//! and runs each command id at most once (a command replayed after a reconnect is not run again).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::RestartContainerOptions;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;

use crate::inventory::{self, ContainerSelector};
use crate::outbox::Outbox;

/// How many recent command ids are remembered for de-duplication.
const REMEMBERED_COMMANDS: usize = 4096;
/// The longest stop timeout the node accepts.
const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);

/// An action the node knows how to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// Graceful restart.
    Restart {
        /// How long to wait for a graceful stop.
        stop_timeout: Duration,
    },
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

impl CommandRequest {
    /// From the wire.
    pub fn from_proto(command: pb::Command) -> Self {
        let action = match command.action() {
            pb::Action::Restart => {
                let stop_timeout = Duration::from_secs(u64::from(command.stop_timeout_seconds));
                if stop_timeout > MAX_STOP_TIMEOUT {
                    Err(format!("stop timeout {}s is above the node's limit of 3600s", command.stop_timeout_seconds))
                } else {
                    Ok(NodeAction::Restart { stop_timeout })
                }
            }
            other => Err(format!("action {} is not one this node executes", other.as_str_name())),
        };
        CommandRequest { id: command.command_id, container_id: command.container_id, action }
    }
}

/// Runs commands and reports their results through the outbox.
pub struct Executor {
    docker: Docker,
    selector: ContainerSelector,
    outbox: Arc<Outbox>,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Executor {
    /// An executor acting on the containers `selector` picks.
    pub fn new(docker: Docker, selector: ContainerSelector, outbox: Arc<Outbox>) -> Self {
        Executor { docker, selector, outbox, seen: Mutex::new((HashSet::new(), VecDeque::new())) }
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
            let (outcome, detail) = executor.execute(&command).await;
            let duration_ms = started.elapsed().as_millis() as u64;
            match outcome {
                pb::Outcome::Success => tracing::info!(command_id = %command.id, detail, duration_ms, "command done"),
                _ => tracing::warn!(command_id = %command.id, ?outcome, detail, "command did not succeed"),
            }
            executor.outbox.push(Body::CommandResult(pb::CommandResult {
                command_id: command.id,
                container_id: command.container_id,
                outcome: outcome as i32,
                detail,
                duration_ms,
            }));
        });
    }

    async fn execute(&self, command: &CommandRequest) -> (pb::Outcome, String) {
        let action = match &command.action {
            Ok(action) => *action,
            Err(why) => return (pb::Outcome::Refused, format!("refused: {why}")),
        };
        let inspect = match self.docker.inspect_container(&command.container_id, None).await {
            Ok(inspect) => inspect,
            Err(error) => return (pb::Outcome::Failed, format!("cannot inspect the container: {error}")),
        };
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let name = inspect.name.as_deref().unwrap_or_default();
        if !self.selector.matches(inspect.id.as_deref().unwrap_or_default(), name, &labels) {
            return (
                pb::Outcome::Refused,
                "refused: the container is not watched by this node (opted out, blacklisted, outside its selector, or the node itself)".into(),
            );
        }
        match action {
            NodeAction::Restart { stop_timeout } => self.restart(&command.container_id, stop_timeout).await,
        }
    }

    async fn restart(&self, container_id: &str, stop_timeout: Duration) -> (pb::Outcome, String) {
        let options = RestartContainerOptions { t: Some(stop_timeout.as_secs() as i32), signal: None };
        if let Err(error) = self.docker.restart_container(container_id, Some(options)).await {
            return (pb::Outcome::Failed, format!("restart failed: {error}"));
        }
        match self.docker.inspect_container(container_id, None).await {
            Ok(inspect) => {
                let state = inventory::state_from_inspect(&inspect);
                if state.status() == pb::ContainerStatus::Running {
                    (pb::Outcome::Success, "restarted; the container is running".into())
                } else {
                    (pb::Outcome::Failed, format!("restarted, but the container is {}", state.status().as_str_name()))
                }
            }
            Err(error) => (pb::Outcome::Failed, format!("restarted, but cannot inspect it: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_the_node_cannot_execute_are_refused_with_a_reason() {
        let command = |action: pb::Action, stop_timeout_seconds| pb::Command {
            command_id: "c".into(),
            container_id: "x".into(),
            container_name: "web".into(),
            action: action as i32,
            stop_timeout_seconds,
        };
        assert_eq!(
            CommandRequest::from_proto(command(pb::Action::Restart, 10)).action,
            Ok(NodeAction::Restart { stop_timeout: Duration::from_secs(10) })
        );
        assert!(CommandRequest::from_proto(command(pb::Action::Restart, 7200)).action.is_err());
        assert!(CommandRequest::from_proto(command(pb::Action::Unspecified, 10)).action.is_err());
        let mut unknown = command(pb::Action::Restart, 10);
        unknown.action = 99;
        assert!(CommandRequest::from_proto(unknown).action.is_err());
    }
}
