//! What admins make happen: `hemostat action` (a manual action on a container, through the same policy
//! unless forced), `hemostat approve` (a decision waiting for approval goes ahead) and `hemostat end-storm`
//! (automatic actions resume before the rate falls).

use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Args;
use hemostat_model::Action;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use tonic::transport::Channel;

use crate::commands::{named, resolve, show};
use crate::connection::ClientArgs;
use crate::model::{Accepted, ActionReport, ContainerRef, Event, StormEnd};
use crate::render;
use crate::rpc_error::rpc;
use crate::terminal::printable;

/// Arguments of `hemostat action`.
#[derive(Debug, Args)]
pub struct ActionArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// What to do.
    #[arg(value_parser = named::<Action>(true))]
    kind: Action,
    /// The container: <node>/<name> (or <node>/<id>), or only its name when one node has it.
    target: ContainerRef,
    /// Act even if the cooldown, circuit breaker, storm breaker, a silence or dry-run would stop it (the
    /// node's own checks still apply; the attempt still counts in the container's budget).
    #[arg(long)]
    force: bool,
    /// Why (recorded with the action).
    #[arg(long)]
    reason: Option<String>,
    /// Wait for the result (the remediation_complete event of this command) and print it; exit non-zero
    /// unless it succeeded.
    #[arg(long)]
    wait: bool,
    /// With --wait: how long to wait for the result.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, requires = "wait")]
    timeout: Duration,
    /// For exec: the command's argument vector, after `--` (e.g. `-- df -h`).
    #[arg(last = true, value_name = "ARGV")]
    argv: Vec<String>,
}

/// Sends an admin's action to a container, and with `--wait` reports how it ended.
pub async fn action(args: ActionArgs) -> anyhow::Result<()> {
    match (args.kind, args.argv.is_empty()) {
        (Action::Exec, true) => {
            bail!("exec needs the command after `--`, e.g. `hemostat action exec node/web -- ps`")
        }
        (kind, false) if kind != Action::Exec => bail!("only exec takes a command after `--`"),
        _ => {}
    }
    let mut client = args.client.connection.settings()?.client().await?;
    let target = resolve(&mut client, &args.target).await?;
    let request = pb::TriggerActionRequest {
        node: target.node.clone(),
        container: target.container.clone(),
        action: pb::Action::from(args.kind) as i32,
        argv: args.argv.clone(),
        force: args.force,
        reason: args.reason.clone().unwrap_or_default(),
    };
    let accepted = Accepted::from(client.trigger_action(request).await.map_err(rpc("TriggerAction"))?.into_inner());
    let mut report = ActionReport { command_id: accepted.command_id, detail: accepted.detail, result: None };
    if args.wait {
        match report.command_id.clone() {
            Some(id) => {
                let result = tokio::time::timeout(args.timeout, result_of(&mut client, &target.node, &id)).await;
                match result {
                    Ok(event) => report.result = Some(event?),
                    Err(_) => {
                        show(args.client.output, &report, render::action_report)?;
                        bail!(
                            "no result for command {id} within {}; see `hemostat events --node {}`",
                            humantime::format_duration(args.timeout),
                            target.node
                        );
                    }
                }
            }
            None => eprintln!("hemostat: the coordinator gave no command id: nothing to wait for"),
        }
    }
    show(args.client.output, &report, render::action_report)?;
    match &report.result {
        Some(event)
            if event.kind.as_deref() == Some("remediation_complete") && event.outcome.as_deref() == Some("success") =>
        {
            Ok(())
        }
        Some(event) => Err(anyhow!(
            "{} of {}: {}",
            args.kind.name(),
            printable(&target.to_string()),
            printable(&render::event_detail(event))
        )),
        None => Ok(()),
    }
}

/// The event that ends command `id` on `node`: its `remediation_complete`, or a `rejected` that is not
/// a wait for approval. Reads the node's results from the start of the log, so it cannot miss one that
/// was recorded before the stream opened.
async fn result_of(client: &mut FleetServiceClient<Channel>, node: &str, id: &str) -> anyhow::Result<Event> {
    let request = pb::WatchEventsRequest {
        after_id: String::new(),
        types: vec![pb::EventType::RemediationComplete as i32, pb::EventType::Rejected as i32],
        node: node.to_owned(),
        container: String::new(),
    };
    let mut stream = client.watch_events(request).await.map_err(rpc("WatchEvents"))?.into_inner();
    let mut awaiting_reported = false;
    while let Some(message) = stream.message().await.map_err(rpc("WatchEvents"))? {
        let Some(event) = message.event else { continue };
        let event = Event::from(event);
        if event.command_id.as_deref() != Some(id) {
            continue;
        }
        if event.rejection.as_deref() == Some("awaiting_approval") {
            if !awaiting_reported {
                eprintln!("hemostat: command {id} waits for an admin's approval: hemostat approve {id}");
                awaiting_reported = true;
            }
            continue;
        }
        return Ok(event);
    }
    bail!("the coordinator ended the event stream before command {id} had a result")
}

/// Arguments of `hemostat approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The approval's id (the command id of the `awaiting_approval` event).
    id: String,
}

/// Lets a decision that waits for approval go ahead.
pub async fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let request = pb::ApproveActionRequest { approval_id: args.id };
    let response = client.approve_action(request).await.map_err(rpc("ApproveAction"))?.into_inner();
    show(args.client.output, &Accepted::from(response), render::accepted)
}

/// Arguments of `hemostat end-storm`.
#[derive(Debug, Args)]
pub struct EndStormArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// Resumes automatic actions after a storm, before the rate has fallen.
pub async fn end_storm(args: EndStormArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let response = client.end_storm(pb::EndStormRequest {}).await.map_err(rpc("EndStorm"))?.into_inner();
    show(args.client.output, &StormEnd::from(response), render::storm_end)
}
