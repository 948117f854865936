//! `hemostat standalone`: a coordinator and a node for this host in one process, with the embedded state
//! store and development certificates made on first run. The quickest way to have HemoStat watch one host.
//! Every setting of the two programs is read from the environment as they read it (`AGENT_POLL_INTERVAL`,
//! `THRESHOLD_CPU_PERCENT`, `AI_MODEL`, ...); the flags here are the few a first run needs.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser};
use hemostat_coordinator::{Coordinator, CoordinatorArgs, CoordinatorConfig};
use hemostat_node::{NodeArgs, NodeConfig};

/// Arguments of `hemostat standalone`.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Folder for state (state.redb) and certificates (certs/).
    #[arg(long, env = "HEMOSTAT_DATA_DIR", default_value = crate::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Address the coordinator listens on.
    #[arg(long, env = "HEMOSTAT_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Seconds between two actions on one container.
    #[arg(long, env = "RESPONDER_COOLDOWN_SECONDS")]
    cooldown_seconds: Option<u64>,
    /// Most actions on one container in any rolling hour.
    #[arg(long, env = "RESPONDER_MAX_RETRIES_PER_HOUR")]
    max_retries_per_hour: Option<u32>,
    /// Watch only containers with this label, `key=value`.
    #[arg(long, env = "NODE_CONTAINER_SELECTOR")]
    select_label: Option<String>,
}

/// Runs the coordinator and the node until SIGINT or SIGTERM.
pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    hemostat_telemetry::init_from_env()?;
    let certs = args.data_dir.join("certs");
    let node_name = crate::certs::dev_bundle(&certs, None).context("cannot make development certificates")?;
    // Everything else comes from the environment, as for the separate programs.
    let defaults = CoordinatorArgs::parse_from(["hemostat-coordinator"]);
    let coordinator = CoordinatorConfig::resolve(CoordinatorArgs {
        listen: Some(args.listen),
        certs_dir: Some(certs.clone()),
        data_dir: Some(args.data_dir.clone()),
        cooldown_seconds: args.cooldown_seconds.or(defaults.cooldown_seconds),
        max_retries_per_hour: args.max_retries_per_hour.or(defaults.max_retries_per_hour),
        ..defaults
    })?;
    let coordinator = Coordinator::bind(coordinator).await.context("cannot start the coordinator")?;
    let addr = coordinator.local_addr();
    let defaults = NodeArgs::parse_from(["hemostat-node"]);
    let node = NodeConfig::resolve(NodeArgs {
        coordinator: Some(format!("localhost:{}", addr.port())),
        certs_dir: Some(certs.clone()),
        select_label: args.select_label.or(defaults.select_label.clone()),
        spool_dir: Some(args.data_dir.join("spool")),
        ..defaults
    })?;
    eprintln!(
        "HemoStat is watching this host as node {node_name:?} (coordinator on {addr}, state in {}).\n\
         Try:   docker run -d --name web busybox sh -c 'sleep 5; exit 1'\n\
         Then:  hemostat events          (certificates in {})",
        args.data_dir.display(),
        certs.display()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let coordinator_task = tokio::spawn(coordinator.run(stopped(stop_rx.clone())));
    let node_task = tokio::spawn(hemostat_node::run(node, stopped(stop_rx)));
    hemostat_telemetry::shutdown_signal().await;
    let _ = stop_tx.send(true);
    node_task.await??;
    coordinator_task.await??;
    Ok(())
}
