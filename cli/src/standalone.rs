//! `hemostat standalone`: a coordinator and a node for this host in one process, with the embedded state
//! store and development certificates made on first run. The quickest way to have HemoStat watch one host.
//! Every setting of the two programs is read as they read it, from the environment (`AGENT_POLL_INTERVAL`,
//! `THRESHOLD_CPU_PERCENT`, `AI_MODEL`, ...) and the configuration file (`--config` or `HEMOSTAT_CONFIG`,
//! with the keys of either program); the flags here are the few a first run needs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hemostat_coordinator::alerting::AlertingSettings;
use hemostat_coordinator::config::CoordinatorSettings;
use hemostat_coordinator::{Coordinator, CoordinatorArgs, CoordinatorConfig};
use hemostat_node::config::NodeSettings;
use hemostat_node::{NodeArgs, NodeConfig};
use hemostat_settings::{Layers, Setting, Sourced, config_path};

use crate::config_file::{self, Recorded};

/// The coordinator's address in standalone mode, unless configured: this host only.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50051);
/// The dashboard's address in standalone mode, unless configured (`HEMOSTAT_DASHBOARD_LISTEN`) or turned
/// off (`--no-dashboard`): this host only, so it needs no token.
pub const DEFAULT_DASHBOARD: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// Arguments of `hemostat standalone`.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// A TOML configuration file with settings of the coordinator and of the node (keys as their long
    /// flags, with underscores) [env: HEMOSTAT_CONFIG].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder for state (state.redb) and certificates (certs/) [env: HEMOSTAT_DATA_DIR] [default:
    /// hemostat-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address the coordinator listens on [env: HEMOSTAT_LISTEN] [default: 127.0.0.1:50051].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Seconds between two actions on one container [env: RESPONDER_COOLDOWN_SECONDS] [default: 3600].
    #[arg(long)]
    cooldown_seconds: Option<u64>,
    /// Most actions on one container in any rolling hour [env: RESPONDER_MAX_RETRIES_PER_HOUR] [default: 3].
    #[arg(long)]
    max_retries_per_hour: Option<u32>,
    /// Watch only containers with this label, `key=value` [env: NODE_CONTAINER_SELECTOR].
    #[arg(long)]
    select_label: Option<String>,
    /// Serve no dashboard (by default it is on http://127.0.0.1:8080, or HEMOSTAT_DASHBOARD_LISTEN).
    #[arg(long)]
    no_dashboard: bool,
}

/// Records the coordinator's address and the certificates folder in the CLI's configuration file when
/// the user has none, so that `hemostat events` works from any folder; says what it did, for the banner.
fn record_for_the_cli(coordinator: &str, certs: &Path) -> String {
    let Some(path) = config_file::default_path(&hemostat_settings::process_env) else {
        return format!("from this folder, or with --certs-dir {}", certs.display());
    };
    match config_file::record_standalone(&path, coordinator, certs) {
        Ok(Recorded::Written(path)) => format!("from any folder: {} says where the certificates are", path.display()),
        Ok(Recorded::Kept(path)) => format!(
            "your {} is kept as it is; if it points elsewhere, pass --coordinator {coordinator} --certs-dir {}",
            path.display(),
            certs.display()
        ),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "cannot record where standalone's certificates are");
            format!("cannot write {} ({error}): pass --certs-dir {}", path.display(), certs.display())
        }
    }
}

/// Runs the coordinator and the node until SIGINT or SIGTERM.
pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    hemostat_telemetry::init_from_env()?;
    let env = &hemostat_settings::process_env;
    let file = config_path(args.config.as_deref(), env);
    let layers =
        Layers::read(env, file.as_deref(), &[CoordinatorSettings::KEYS, AlertingSettings::KEYS, NodeSettings::KEYS])?;
    let flags = CoordinatorArgs {
        listen: args.listen,
        data_dir: args.data_dir,
        cooldown_seconds: args.cooldown_seconds,
        max_retries_per_hour: args.max_retries_per_hour,
        ..Default::default()
    };
    let mut settings = CoordinatorSettings::resolve(&flags, &layers)?;
    if settings.listen.is_default() {
        settings.listen.value = DEFAULT_LISTEN;
    }
    if args.no_dashboard {
        settings.dashboard_listen = None;
    } else if settings.dashboard_listen.is_none() {
        let setting = Setting { key: "dashboard_listen", env: &["HEMOSTAT_DASHBOARD_LISTEN"] };
        settings.dashboard_listen = Some(Sourced::default_of(setting, DEFAULT_DASHBOARD));
    }
    // The development certificates live in the data folder, whatever HEMOSTAT_CERTS_DIR says.
    let data_dir = settings.data_dir.value.clone();
    let certs = data_dir.join("certs");
    settings.certs_dir = Sourced { value: certs.clone(), ..settings.certs_dir };
    let node_name = crate::certs::dev_bundle(&certs, None).context("cannot make development certificates")?;
    let alerting = AlertingSettings::resolve(&flags.alerting, &layers)?;
    let coordinator = CoordinatorConfig::from_settings(settings, alerting)?;
    let dashboard = coordinator.dashboard.as_ref().map(|d| d.listen);
    let coordinator = Coordinator::bind(coordinator).await.with_context(|| match dashboard {
        Some(listen) => format!(
            "cannot start the coordinator (its dashboard on {listen}: another address with \
             HEMOSTAT_DASHBOARD_LISTEN, or none with --no-dashboard)"
        ),
        None => "cannot start the coordinator".to_owned(),
    })?;
    let addr = coordinator.local_addr();
    let flags = NodeArgs {
        coordinator: Some(format!("localhost:{}", addr.port())),
        certs_dir: Some(certs.clone()),
        select_label: args.select_label,
        spool_dir: Some(data_dir.join("spool")),
        ..Default::default()
    };
    let node = NodeConfig::from_settings(NodeSettings::resolve(&flags, &layers)?)?;
    let recorded = record_for_the_cli(&format!("localhost:{}", addr.port()), &certs);
    let dashboard = match coordinator.dashboard_addr() {
        Some(dashboard) => format!("Dashboard: http://{dashboard}/\n"),
        None => String::new(),
    };
    eprintln!(
        "HemoStat is watching this host as node {node_name:?} (coordinator on {addr}, state in {}).\n\
         {dashboard}\
         Try:   docker run -d --name web busybox sh -c 'sleep 5; exit 1'\n\
         Then:  hemostat events          ({recorded})",
        data_dir.display(),
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
