//! `hemostat`: the operator's command. Certificates (`certs`), the single-host all-in-one mode
//! (`standalone`), and the commands that ask a running coordinator something or change it: `nodes`,
//! `containers`, `container`, `events`, `audit`, `silence`, `dry-run`, `action`, `approve`, `end-storm`.
//! Errors are printed as one line on standard error, with a non-zero exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hemostat_cli::commands::{actions, dry_run, events, fleet, health, notify, silences};
use hemostat_cli::{certs, standalone, terminal};

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
    /// List the nodes the coordinator knows, connected or not.
    Nodes(fleet::NodesArgs),
    /// List the containers the nodes reported.
    Containers(fleet::ContainersArgs),
    /// Tell everything about one container: state, metrics, anomalies, cooldown and breaker, silence,
    /// recent events.
    Container(fleet::ContainerArgs),
    /// Read the event log, or follow it live.
    Events(events::EventsArgs),
    /// Read the audit log: decisions, actions, rejections, approvals and results.
    Audit(events::AuditArgs),
    /// Silence a container or a node (no actions, no notifications) for a while; list and end silences.
    Silence(silences::SilenceArgs),
    /// Show whether the fleet is in dry-run, or switch it on or off (admins).
    DryRun(dry_run::DryRunArgs),
    /// Send an action to a container now (admins): restart, exec, cleanup, scale_up.
    Action(actions::ActionArgs),
    /// Let a decision that waits for approval go ahead (admins; the id is in the `awaiting_approval` event).
    Approve(actions::ApproveArgs),
    /// Resume automatic actions after a storm, before the rate falls (admins).
    EndStorm(actions::EndStormArgs),
    /// Lift a container's quarantine (its breaker opened): its budget starts over (admins).
    Release(actions::ReleaseArgs),
    /// Send a test notification through each configured sink and print what each answered (admins).
    Notify(notify::NotifyArgs),
    /// Ask the coordinator's gRPC health service whether it serves (exit 0) or not (exit 1): for health checks.
    Health(health::HealthArgs),
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Certs(args) => certs::run(args),
        Command::Standalone(args) => standalone::run(args).await,
        Command::Nodes(args) => fleet::nodes(args).await,
        Command::Containers(args) => fleet::containers(args).await,
        Command::Container(args) => fleet::container(args).await,
        Command::Events(args) => events::events(args).await,
        Command::Audit(args) => events::audit(args).await,
        Command::Silence(args) => silences::silence(args).await,
        Command::DryRun(args) => dry_run::dry_run(args).await,
        Command::Action(args) => actions::action(args).await,
        Command::Approve(args) => actions::approve(args).await,
        Command::EndStorm(args) => actions::end_storm(args).await,
        Command::Release(args) => actions::release(args).await,
        Command::Notify(args) => notify::notify(args).await,
        Command::Health(args) => health::health(args).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    hemostat_pki::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        // `hemostat events | head`: the reader has what it wanted.
        Err(error)
            if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            let message = format!("{error:#}").replace(['\r', '\n'], " ");
            eprintln!("hemostat: {}", terminal::printable(&message));
            ExitCode::FAILURE
        }
    }
}
