//! `restart`: a graceful restart (stop with the command's timeout, then start), verified: the node watches
//! the container for `RESPONDER_VERIFY_SECONDS` (30): still running the run the restart began (the same
//! start time: a crash and a start by someone else in between, even between two looks, is not a run that
//! held), and healthy if it has a health check → `success`; otherwise `failed` with what it saw. A
//! verified restart names its dependents, for the coordinator to restart after it ([`super::dependents`]),
//! and says in its detail what to do with a dependent a restart cannot mend.
//!
//! Diagnostics at the failure edge: with `RESPONDER_DIAGNOSTICS` set (commands from the exec allow-list,
//! none by default), the node first runs each of them in the container while it is still in its failing
//! state, if it is running (a crashed container has nothing left to ask), and the result carries their
//! masked output, capped at [`MAX_OUTPUT`] in all, whatever the restart's outcome.

use hemostat_model::Action;
use std::time::{Duration, Instant};

use bollard::query_parameters::RestartContainerOptions;
use hemostat_proto::v1 as pb;

use super::dependents::{self, Parent};
use super::exec::{MAX_OUTPUT, run_allowed};
use super::{ActionContext, ActionHandler, ActionOutcome, NodeAction, Target};
use crate::inventory;

/// The longest stop timeout the node accepts.
const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);

/// A restart with its graceful stop timeout.
pub struct Restart {
    /// How long to wait for a graceful stop.
    pub stop_timeout: Duration,
}

/// The restart a wire command asks for, or why its timeout is refused.
pub fn from_command(command: &pb::Command) -> Result<NodeAction, String> {
    let stop_timeout = Duration::from_secs(u64::from(command.stop_timeout_seconds));
    if stop_timeout > MAX_STOP_TIMEOUT {
        return Err(format!("stop timeout {}s is above the node's limit of 3600s", command.stop_timeout_seconds));
    }
    Ok(NodeAction::Restart { stop_timeout })
}

#[async_trait::async_trait]
impl ActionHandler for Restart {
    fn action(&self) -> Action {
        Action::Restart
    }

    async fn execute(&self, context: &ActionContext, target: &Target) -> ActionOutcome {
        let diagnostics = diagnose(context, target).await;
        let options = RestartContainerOptions { t: Some(self.stop_timeout.as_secs() as i32), signal: None };
        let mut outcome = match context.docker.restart_container(&target.id, Some(options)).await {
            Err(error) => ActionOutcome::failed(format!("restart failed: {error}")),
            Ok(()) => verify(context, &target.id).await,
        };
        outcome.output = diagnostics;
        if outcome.outcome == pb::Outcome::Success {
            let labels = target.labels();
            let name = target.inspect.name.as_deref().unwrap_or_default().trim_start_matches('/');
            let parent = Parent { id: &target.id, name, labels: &labels };
            let found = dependents::of(&context.docker, &context.selector, &parent).await;
            for stale in &found.stale {
                tracing::warn!(container = %name.escape_debug(), "dependent left behind: {}", stale.escape_debug());
                outcome.detail.push_str("; ");
                outcome.detail.push_str(stale);
            }
            if !found.restart.is_empty() {
                tracing::info!(container = %name.escape_debug(), dependents = found.restart.len(), "its dependents are to be restarted after it");
            }
            outcome.dependents = found.restart;
        }
        outcome
    }
}

/// Runs the node's diagnostic commands in `target` before it is restarted: each one's command line, exit,
/// and masked output, in order, the whole capped at [`MAX_OUTPUT`]. Empty when none are configured.
async fn diagnose(context: &ActionContext, target: &Target) -> String {
    let commands = &context.policy.diagnostics;
    if commands.is_empty() {
        return String::new();
    }
    let running = target.inspect.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    if !running {
        return "diagnostics not run: the container was not running".to_owned();
    }
    let mut report = String::new();
    for argv in commands {
        let ran = run_allowed(&context.docker, &target.id, argv, &context.policy).await;
        let section = format!("$ {} ({})\n{}\n", argv.join(" "), ran.detail, ran.output.trim_end());
        if report.len() + section.len() > MAX_OUTPUT {
            report.push_str(&crate::bounds::marker(section.len()));
            break;
        }
        report.push_str(&section);
    }
    report
}

/// Watches a restarted container for the verification window.
async fn verify(context: &ActionContext, id: &str) -> ActionOutcome {
    let window = context.policy.verify_window;
    let started = Instant::now();
    // A health check may still be starting at the end of the window: give it one more window.
    let give_up = started + window * 2;
    // The run the restart began, by its start time.
    let mut run = None;
    loop {
        let state = match context.docker.inspect_container(id, None).await {
            Ok(inspect) => inventory::state_from_inspect(&inspect),
            Err(error) => return ActionOutcome::failed(format!("restarted, but cannot inspect it: {error}")),
        };
        let this_run = state.started_at;
        if run.is_none() {
            run = Some(this_run);
        } else if run != Some(this_run) {
            return ActionOutcome::failed(format!(
                "restarted, but it stopped and was started again within {}s",
                started.elapsed().as_secs()
            ));
        }
        if state.status() != pb::ContainerStatus::Running {
            return ActionOutcome::failed(format!(
                "restarted, but it is {} again (exit code {}) within {}s",
                state.status().as_str_name().trim_start_matches("CONTAINER_STATUS_").to_ascii_lowercase(),
                state.exit_code,
                started.elapsed().as_secs()
            ));
        }
        // Docker's health check, else the node's probe of the container (`hemostat.probe`) for this run.
        let started_at = this_run.as_ref().map(hemostat_proto::timestamp::from_proto);
        let probed = context.probes.of(id, started_at);
        let health = match (state.health(), probed) {
            (pb::HealthStatus::None | pb::HealthStatus::Unspecified, Some(probed)) => probed,
            (docker, _) => docker,
        };
        if health == pb::HealthStatus::Unhealthy {
            let what = if probed.is_some() { "its probe" } else { "its health check" };
            return ActionOutcome::failed(format!("restarted, but {what} still fails"));
        }
        let settled =
            matches!(health, pb::HealthStatus::None | pb::HealthStatus::Healthy | pb::HealthStatus::Unspecified);
        if started.elapsed() >= window && settled {
            let health = if health == pb::HealthStatus::Healthy { " and healthy" } else { "" };
            return ActionOutcome::new(
                pb::Outcome::Success,
                format!("restarted; running{health} for {}s", window.as_secs()),
            );
        }
        if Instant::now() >= give_up {
            return ActionOutcome::failed(format!("restarted, but not healthy after {}s", (window * 2).as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(250).min(window.max(Duration::from_millis(10)))).await;
    }
}
