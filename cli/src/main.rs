//! `hemostat`: the operator's command. Certificates (`certs`), the single-host all-in-one mode
//! (`standalone`), queries of a running coordinator (`nodes`, `containers`, `events`), and approvals
//! (`approve`).

mod certs;
mod output;
mod query;
mod standalone;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Where the single-host mode keeps its state and certificates, and where the other commands look for them.
const DEFAULT_DATA_DIR: &str = "hemostat-data";

#[derive(Debug, Parser)]
#[command(name = "hemostat", version, about = "HemoStat: self-healing for Docker fleets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make the CA and issue certificates.
    Certs(certs::CertsArgs),
    /// Run a coordinator and a node for this host in one process, with embedded state and development
    /// certificates created on first run.
    Standalone(standalone::StandaloneArgs),
    /// List the nodes the coordinator knows.
    Nodes(query::Connection),
    /// List the containers the nodes reported.
    Containers(query::ContainersArgs),
    /// Read the event log.
    Events(query::EventsArgs),
    /// Let a decision that waits for approval go ahead (admins; the id is in the `awaiting_approval` event).
    Approve(query::ApproveArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hemostat_pki::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Certs(args) => certs::run(args),
        Command::Standalone(args) => standalone::run(args).await,
        Command::Nodes(connection) => query::nodes(connection).await,
        Command::Containers(args) => query::containers(args).await,
        Command::Events(args) => query::events(args).await,
        Command::Approve(args) => query::approve(args).await,
    }
}

/// The default certificates folder: the one `hemostat standalone` creates.
fn default_certs_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR).join("certs")
}
