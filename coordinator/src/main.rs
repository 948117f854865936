//! `hemostat-coordinator`: runs the coordinator until SIGTERM or SIGINT.

use anyhow::Context;
use clap::Parser;
use hemostat_coordinator::{Coordinator, CoordinatorArgs, CoordinatorConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hemostat_pki::install_crypto_provider();
    let args = CoordinatorArgs::parse();
    hemostat_telemetry::init_from_env()?;
    let config = CoordinatorConfig::resolve(args)?;
    let coordinator = Coordinator::bind(config).await.context("cannot start the coordinator")?;
    coordinator.run(hemostat_telemetry::shutdown_signal()).await?;
    Ok(())
}
