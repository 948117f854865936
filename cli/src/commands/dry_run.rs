//! `hemostat dry-run [on|off]`: whether the fleet only records what it would do, and switching it at
//! runtime (admins). It lasts until changed, across coordinator restarts.

use clap::{Args, ValueEnum};
use hemostat_proto::v1 as pb;

use crate::commands::show;
use crate::connection::ClientArgs;
use crate::model::{DryRun, DryRunChange};
use crate::render;
use crate::rpc_error::rpc;

/// The argument of `hemostat dry-run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Record decisions, execute nothing.
    On,
    /// Execute decisions.
    Off,
}

/// Arguments of `hemostat dry-run`.
#[derive(Debug, Args)]
pub struct DryRunArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// on or off; without it, show whether the fleet is in dry-run.
    switch: Option<Switch>,
}

/// Shows or switches dry-run.
pub async fn dry_run(args: DryRunArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    match args.switch {
        None => {
            let response = client.get_dry_run(pb::GetDryRunRequest {}).await.map_err(rpc("GetDryRun"))?;
            show(args.client.output, &DryRun::from(response.into_inner()), render::dry_run)
        }
        Some(switch) => {
            let request = pb::SetDryRunRequest { enabled: switch == Switch::On };
            let response = client.set_dry_run(request).await.map_err(rpc("SetDryRun"))?;
            show(args.client.output, &DryRunChange::from(response.into_inner()), render::dry_run_change)
        }
    }
}
