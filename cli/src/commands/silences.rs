//! `hemostat silence add|list|rm`: no actions on, and no notifications about, a container or a whole node
//! until the silence expires.

use std::time::Duration;

use clap::{Args, Subcommand};
use hemostat_proto::v1 as pb;

use crate::commands::show;
use crate::connection::ClientArgs;
use crate::model::{Silence, Target};
use crate::render;
use crate::rpc_error::rpc;

/// Arguments of `hemostat silence`.
#[derive(Debug, Args)]
pub struct SilenceArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: SilenceCommand,
}

#[derive(Debug, Subcommand)]
enum SilenceCommand {
    /// Silence a container (<node>/<container>) or a whole node (<node>) for a while (admins).
    Add {
        /// What to silence: <node>/<container>, or <node> for all its containers.
        target: Target,
        /// How long: 30m, 2h, 1day (at most 30 days).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Why (recorded, shown to everyone).
        #[arg(long)]
        reason: String,
    },
    /// List the silences in force, soonest to expire first.
    #[command(alias = "ls")]
    List,
    /// End a silence before it expires (admins).
    #[command(alias = "remove", alias = "delete")]
    Rm {
        /// The silence's id (from `hemostat silence list`).
        id: String,
    },
}

/// Runs `hemostat silence ...`.
pub async fn silence(args: SilenceArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let output = args.client.output;
    match args.command {
        SilenceCommand::Add { target, duration, reason } => {
            let request = pb::CreateSilenceRequest {
                node: target.node,
                container: target.container.unwrap_or_default(),
                // Rounded up: `--for 500ms` silences for a second rather than asking for none.
                duration_seconds: duration.as_secs() + u64::from(duration.subsec_nanos() > 0),
                reason,
            };
            let response = client.create_silence(request).await.map_err(rpc("CreateSilence"))?.into_inner();
            let silence = Silence::from(response.silence.unwrap_or_default());
            show(output, &silence, render::silence_created)
        }
        SilenceCommand::List => {
            let response = client.list_silences(pb::ListSilencesRequest {}).await.map_err(rpc("ListSilences"))?;
            let silences: Vec<Silence> = response.into_inner().silences.into_iter().map(Silence::from).collect();
            show(output, &silences, |s| render::silences_table(s))
        }
        SilenceCommand::Rm { id } => {
            let response =
                client.delete_silence(pb::DeleteSilenceRequest { id }).await.map_err(rpc("DeleteSilence"))?;
            let silence = Silence::from(response.into_inner().silence.unwrap_or_default());
            show(output, &silence, render::silence_removed)
        }
    }
}
