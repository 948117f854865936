//! `hemostat-node`: runs the node until SIGTERM or SIGINT.

use clap::Parser;
use hemostat_node::{NodeArgs, NodeConfig};

// One thread runs the node's tasks (a node waits on Docker and the network, and its per-sample work is a few
// microseconds): a runtime with a worker per core cost a malloc arena and a stack each, 2.8 MiB of its RSS
// at 100 containers on two cores. File reads and DNS go to tokio's blocking pool as before.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    hemostat_pki::install_crypto_provider();
    let args = NodeArgs::parse();
    hemostat_telemetry::init_from_env()?;
    let config = NodeConfig::resolve(args)?;
    hemostat_node::run(config, hemostat_telemetry::shutdown_signal()).await?;
    Ok(())
}
