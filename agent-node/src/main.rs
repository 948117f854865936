//! `hemostat-node`: runs the node until SIGTERM or SIGINT.

use clap::Parser;
use hemostat_node::{NodeArgs, NodeConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hemostat_pki::install_crypto_provider();
    let args = NodeArgs::parse();
    hemostat_telemetry::init_from_env()?;
    let config = NodeConfig::resolve(args)?;
    hemostat_node::run(config, hemostat_telemetry::shutdown_signal()).await?;
    Ok(())
}
