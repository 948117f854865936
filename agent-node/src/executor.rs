//! Executing the coordinator's commands on this host, under the node's own rules: the dispatcher in front
//! of the actions ([`crate::actions`]). Whatever the coordinator asks, the node acts only with the actions
//! its configuration allows (`NODE_ALLOWED_ACTIONS`), runs only commands on its exec allow-list
//! (`RESPONDER_EXEC_ALLOWLIST`, matched as a whole argument vector, never as a prefix or a shell string),
//! acts only on containers it watches (never an opted-out one, never itself), runs each command id at most
//! once (a command replayed after a reconnect is not run again), and no more commands than its limits
//! allow ([`crate::command_limits`]). A refused command is reported and logged. A compromised coordinator
//! therefore cannot run arbitrary commands on the host, nor flood it with actions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use hemostat_model::Action;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;

pub use crate::actions::NodeAction;
pub use crate::actions::exec::{DEFAULT_EXEC_ALLOWLIST, parse_allowlist};
use crate::actions::{ACTION_NAMES, ActionContext, ActionOutcome, Target};
use crate::command_limits::{CommandGate, DEFAULT_CONCURRENCY, DEFAULT_PER_MINUTE};
use crate::inventory::ContainerSelector;
use crate::outbox::Outbox;
use crate::probe::ProbeHealth;
use crate::recent::RecentSet;

/// How many recent command ids are remembered for de-duplication.
const REMEMBERED_COMMANDS: usize = 4096;

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
        let action = NodeAction::from_command(&command);
        CommandRequest { id: command.command_id, container_id: command.container_id, action }
    }
}

/// What the node allows, whatever the coordinator asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionPolicy {
    /// Action names allowed (`restart`, `exec`, ...).
    pub allowed_actions: Vec<String>,
    /// Exec commands allowed, each a whole argument vector.
    pub exec_allowlist: Vec<Vec<String>>,
    /// Diagnostic commands (each on the allow-list) run before a restart of a running container
    /// (`RESPONDER_DIAGNOSTICS`); none by default.
    pub diagnostics: Vec<Vec<String>>,
    /// Longest an exec may run.
    pub exec_timeout: Duration,
    /// How long a restarted container is watched before it counts as a success.
    pub verify_window: Duration,
    /// Most commands accepted in any rolling minute (`NODE_COMMANDS_PER_MINUTE`).
    pub commands_per_minute: u32,
    /// Most commands running at once (`NODE_COMMAND_CONCURRENCY`).
    pub command_concurrency: u32,
    /// Most replicas scale_up makes of a service without a `hemostat.scale_up.max` label
    /// (`NODE_SCALE_UP_MAX_REPLICAS`).
    pub scale_up_max_replicas: u64,
}

impl Default for ExecutionPolicy {
    fn default() -> Self {
        ExecutionPolicy {
            allowed_actions: ACTION_NAMES.iter().map(|name| name.to_string()).collect(),
            exec_allowlist: parse_allowlist(DEFAULT_EXEC_ALLOWLIST),
            diagnostics: Vec::new(),
            exec_timeout: Duration::from_secs(10),
            verify_window: Duration::from_secs(30),
            commands_per_minute: DEFAULT_PER_MINUTE,
            command_concurrency: DEFAULT_CONCURRENCY,
            scale_up_max_replicas: crate::actions::scale_up::DEFAULT_MAX_REPLICAS,
        }
    }
}

impl ExecutionPolicy {
    /// Why the node refuses `action`, if it does: not an allowed action, or refused by the action's own
    /// checks (the exec allow-list).
    pub fn refusal(&self, action: &NodeAction) -> Option<String> {
        let handler = action.handler();
        if !self.allowed_actions.iter().any(|a| a == handler.name()) {
            return Some(format!("action {} is not allowed on this node (NODE_ALLOWED_ACTIONS)", handler.name()));
        }
        handler.refusal(self)
    }

    /// What the node tells the coordinator in its Hello: the actions it executes and the exec allow-list
    /// (each argument vector joined by spaces), so that analysis decides only what it would run.
    pub fn advertised(&self) -> (Vec<i32>, Vec<String>) {
        let actions = self
            .allowed_actions
            .iter()
            .filter_map(|name| name.parse::<Action>().ok())
            .map(|action| pb::Action::from(action) as i32)
            .collect();
        (actions, self.exec_allowlist.iter().map(|argv| argv.join(" ")).collect())
    }
}

/// Runs commands and reports their results through the outbox.
pub struct Executor {
    context: ActionContext,
    outbox: Arc<Outbox>,
    seen: Mutex<RecentSet<String>>,
    gate: CommandGate,
}

impl Executor {
    /// An executor acting on the containers `selector` picks, under `policy`.
    pub fn new(
        docker: Docker,
        selector: ContainerSelector,
        policy: ExecutionPolicy,
        outbox: Arc<Outbox>,
        probes: ProbeHealth,
    ) -> Self {
        let gate = CommandGate::new(policy.commands_per_minute, policy.command_concurrency);
        Executor {
            context: ActionContext { docker, selector, policy, probes },
            outbox,
            seen: Mutex::new(RecentSet::new(REMEMBERED_COMMANDS)),
            gate,
        }
    }

    /// What the node tells the coordinator it executes ([`ExecutionPolicy::advertised`]).
    pub fn advertised(&self) -> (Vec<i32>, Vec<String>) {
        self.context.policy.advertised()
    }

    /// Starts executing `command` in the background, unless its id ran already; refuses it at once when
    /// a command limit says so.
    pub fn submit(self: &Arc<Self>, command: CommandRequest) {
        if !self.seen.lock().expect("seen lock").insert(command.id.clone()) {
            tracing::info!(command_id = %command.id, "ignored a command delivered again");
            return;
        }
        let permit = match self.gate.admit(Instant::now()) {
            Ok(permit) => permit,
            Err(refusal) => {
                crate::instruments::global().command_limited(refusal.limit());
                self.report(&command, ActionOutcome::refused(refusal), 0);
                return;
            }
        };
        let executor = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let done = executor.execute(&command).await;
            drop(permit);
            executor.report(&command, done, started.elapsed().as_millis() as u64);
        });
    }

    /// Logs, counts and queues the result of `command`.
    fn report(&self, command: &CommandRequest, done: ActionOutcome, duration_ms: u64) {
        match done.outcome {
            pb::Outcome::Success => {
                tracing::info!(command_id = ?command.id, detail = ?done.detail, duration_ms, "command done")
            }
            pb::Outcome::Refused => {
                tracing::warn!(command_id = ?command.id, detail = ?done.detail, "command refused")
            }
            outcome => {
                tracing::warn!(command_id = ?command.id, ?outcome, detail = ?done.detail, "command did not succeed")
            }
        }
        crate::instruments::global().command_finished(command.action.as_ref().ok(), done.outcome);
        self.outbox.push(Body::CommandResult(pb::CommandResult {
            command_id: command.id.clone(),
            container_id: command.container_id.clone(),
            outcome: done.outcome as i32,
            detail: done.detail,
            duration_ms,
            output: done.output,
            dependents: done.dependents,
        }));
    }

    async fn execute(&self, command: &CommandRequest) -> ActionOutcome {
        let action = match &command.action {
            Ok(action) => action,
            Err(why) => return ActionOutcome::refused(why),
        };
        if let Some(why) = self.context.policy.refusal(action) {
            return ActionOutcome::refused(why);
        }
        if command.container_id.is_empty() {
            return match action {
                NodeAction::Cleanup => crate::actions::cleanup::host_cleanup(&self.context).await,
                other => ActionOutcome::refused(format!(
                    "{} needs a container; only cleanup can be for the host itself",
                    other.action().name()
                )),
            };
        }
        let inspect = match self.context.docker.inspect_container(&command.container_id, None).await {
            Ok(inspect) => inspect,
            Err(error) => return ActionOutcome::failed(format!("cannot inspect the container: {error}")),
        };
        let target = Target { id: inspect.id.clone().unwrap_or_default(), inspect };
        let name = target.inspect.name.as_deref().unwrap_or_default();
        if !self.context.selector.matches(&target.id, name, &target.labels()) {
            return ActionOutcome::refused(
                "the container is not watched by this node (opted out, blacklisted, outside its selector, or the node itself)",
            );
        }
        action.handler().execute(&self.context, &target).await
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
        let refusal = CommandRequest::from(unknown).action.unwrap_err();
        assert!(refusal.starts_with("this node does not know the action 99; upgrade the node"), "{refusal}");
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
