//! `exec`: a diagnostic command inside the container, only one on the node's allow-list
//! (`RESPONDER_EXEC_ALLOWLIST`, matched as a whole argument vector, never as a prefix or a shell string),
//! within `RESPONDER_EXEC_TIMEOUT_SECONDS`; its output (stdout and stderr) capped at [`MAX_OUTPUT`] bytes
//! with a visible marker where it was cut, and secrets masked.

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt;
use hemostat_model::Action;
use hemostat_proto::v1 as pb;

use super::{ActionContext, ActionHandler, ActionOutcome, NodeAction, Target};
use crate::executor::ExecutionPolicy;

/// The most output an exec returns, in bytes; the rest is replaced by a `…[truncated 12.3 KB]` marker.
pub const MAX_OUTPUT: usize = 16 * 1024;

/// The diagnostic commands allowed by default: read-only, and none that prints secrets (so not `env`).
pub const DEFAULT_EXEC_ALLOWLIST: &str = "ps;top -b -n 1;df -h;free -m;uptime;uname -a";

/// Parses an allow-list: commands separated by `;`, each split on whitespace into its argument vector.
pub fn parse_allowlist(spec: &str) -> Vec<Vec<String>> {
    spec.split(';')
        .map(|command| command.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|argv| !argv.is_empty())
        .collect()
}

/// An exec of one argument vector.
pub struct Exec<'a> {
    /// The argument vector.
    pub argv: &'a [String],
}

/// The exec a wire command asks for, or why it cannot be run.
pub fn from_command(command: &pb::Command) -> Result<NodeAction, String> {
    if command.argv.is_empty() {
        return Err("exec without a command".to_owned());
    }
    Ok(NodeAction::Exec { argv: command.argv.clone() })
}

/// Why `argv` may not run under `policy`: it is not, word for word, on the allow-list.
pub fn refusal(argv: &[String], policy: &ExecutionPolicy) -> Option<String> {
    if policy.exec_allowlist.iter().any(|allowed| allowed == argv) {
        return None;
    }
    let shown: Vec<String> =
        argv.iter().take(8).map(|a| a.chars().take(64).collect::<String>().escape_debug().to_string()).collect();
    Some(format!("command {shown:?} is not on this node's exec allow-list (RESPONDER_EXEC_ALLOWLIST)"))
}

#[async_trait::async_trait]
impl ActionHandler for Exec<'_> {
    fn action(&self) -> Action {
        Action::Exec
    }

    fn refusal(&self, policy: &ExecutionPolicy) -> Option<String> {
        refusal(self.argv, policy)
    }

    async fn execute(&self, context: &ActionContext, target: &Target) -> ActionOutcome {
        run(&context.docker, &target.id, self.argv, &context.policy).await
    }
}

/// Runs `argv` in the container `container_id` if it is on `policy`'s allow-list (refused otherwise), within
/// its exec timeout: `success` when it exits 0, else `failed`; the output capped and masked. For node code
/// that runs diagnostics of its own (the dispatcher's watched-container check does not apply here: the
/// caller decides which container).
pub async fn run_allowed(
    docker: &Docker,
    container_id: &str,
    argv: &[String],
    policy: &ExecutionPolicy,
) -> ActionOutcome {
    match refusal(argv, policy) {
        Some(why) => ActionOutcome::refused(why),
        None => run(docker, container_id, argv, policy).await,
    }
}

async fn run(docker: &Docker, id: &str, argv: &[String], policy: &ExecutionPolicy) -> ActionOutcome {
    let options = CreateExecOptions {
        cmd: Some(argv.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let run = async {
        let exec = docker.create_exec(id, options).await?;
        let mut output = Vec::new();
        let mut total = 0usize;
        if let StartExecResults::Attached { output: mut stream, .. } = docker.start_exec(&exec.id, None).await? {
            while let Some(chunk) = stream.next().await {
                let bytes = chunk?.into_bytes();
                total += bytes.len();
                let room = MAX_OUTPUT.saturating_sub(output.len());
                output.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
        let code = docker.inspect_exec(&exec.id).await?.exit_code;
        Ok::<_, bollard::errors::Error>((code, output, total))
    };
    match tokio::time::timeout(policy.exec_timeout, run).await {
        Err(_) => {
            ActionOutcome::failed(format!("the command did not finish within {}s", policy.exec_timeout.as_secs()))
        }
        Ok(Err(error)) => ActionOutcome::failed(format!("exec failed: {error}")),
        Ok(Ok((code, output, total))) => {
            let dropped = total > output.len();
            let text = String::from_utf8_lossy(&output);
            let mut output = text.lines().map(crate::redact::mask).collect::<Vec<_>>().join("\n");
            if dropped || output.len() > MAX_OUTPUT {
                crate::bounds::cut_to(&mut output, MAX_OUTPUT);
                output.push_str(&crate::bounds::marker(total.saturating_sub(output.len())));
            }
            let outcome = if code == Some(0) { pb::Outcome::Success } else { pb::Outcome::Failed };
            ActionOutcome {
                outcome,
                detail: format!("exited with code {}", code.map_or("?".into(), |c| c.to_string())),
                output,
                dependents: Vec::new(),
            }
        }
    }
}
