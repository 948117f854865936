//! The HemoStat node: one per Docker host. It watches the host's containers ([`watcher`], [`inventory`]),
//! reports to the coordinator over one mutually authenticated session ([`session`]) without losing anything
//! on the way ([`outbox`]), and executes the coordinator's commands under its own rules ([`executor`], [`actions`]).

pub mod actions;
pub mod backoff;
pub mod bounds;
pub mod cgroup;
pub mod command_limits;
pub mod config;
pub mod detection;
pub mod disk;
pub mod engine;
pub mod executor;
pub mod grace;
pub mod instruments;
pub mod inventory;
pub mod local_policy;
pub mod metrics;
pub mod monitor;
pub mod outbox;
pub mod poller;
pub mod probe;
pub mod recent;
pub mod redact;
pub mod session;
pub mod spool;
pub mod watcher;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hemostat_pki::Role;
use hemostat_pki::files::FilesError;

pub use config::{NodeArgs, NodeConfig};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Certificate files are missing or broken.
    #[error("TLS files: {0}")]
    TlsFiles(#[from] FilesError),
    /// The certificate is not a node's.
    #[error(
        "{path} is a certificate for {found}; a node needs a node certificate (`hemostat certs issue node <name>`)"
    )]
    WrongRole {
        /// The certificate file.
        path: String,
        /// Whom it names.
        found: String,
    },
    /// The spool folder cannot be used.
    #[error(transparent)]
    Spool(#[from] outbox::SpoolError),
    /// The metrics address cannot be bound.
    #[error(transparent)]
    Metrics(#[from] hemostat_telemetry::exposition::ExpositionError),
    /// The container engine cannot be found or reached.
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// `NODE_STATS_SOURCE=cgroup` and this host's cgroup mounts cannot be read.
    #[error("NODE_STATS_SOURCE=cgroup: {0}")]
    Cgroup(#[from] cgroup::CgroupError),
}

/// The host's disk check, on `NODE_DISK_PATH` or the engine's data root; `None` (said in the log) when
/// neither can be measured.
async fn disk_watch(
    config: &NodeConfig,
    engine: &engine::Engine,
    outbox: Arc<outbox::Outbox>,
) -> Option<disk::DiskWatch> {
    let path = match &config.disk.path {
        Some(path) => path.clone(),
        None => match engine.docker.info().await.map(|info| info.docker_root_dir) {
            Ok(Some(root)) => root.into(),
            Ok(None) => {
                tracing::warn!(
                    "the disk check is off: the engine does not say where its data root is; set NODE_DISK_PATH"
                );
                return None;
            }
            Err(error) => {
                tracing::warn!(%error, "the disk check is off: cannot ask the engine for its data root; set NODE_DISK_PATH");
                return None;
            }
        },
    };
    let reassert = config.detection.reassert_every;
    disk::DiskWatch::new(&config.disk, path, config.poll_interval, reassert, outbox)
}

/// Runs the node until `shutdown` completes.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    hemostat_pki::install_crypto_provider();
    let tls = config.tls.load()?;
    if tls.identity.role != Role::Node {
        return Err(NodeError::WrongRole {
            path: config.tls.cert.display().to_string(),
            found: tls.identity.to_string(),
        });
    }
    let metrics = match config.metrics_listen {
        Some(addr) => Some(hemostat_telemetry::exposition::bind(addr).await?),
        None => None,
    };
    let engine = engine::Engine::connect(&config.engine).await?;
    for limitation in engine.limitations() {
        tracing::warn!(engine = %engine.describe(), "{limitation}");
    }
    let docker = engine.docker.clone();
    tracing::info!(
        node = %tls.identity.name,
        engine = %engine.describe(),
        endpoint = %engine.endpoint,
        coordinators = ?config.coordinators.iter().map(|c| c.url.as_str()).collect::<Vec<_>>(),
        "node starting"
    );
    let outbox = Arc::new(match &config.spool_dir {
        Some(dir) => outbox::Outbox::open(dir, config.spool_capacity)?,
        None => outbox::Outbox::new(config.spool_capacity),
    });
    let connectivity = Arc::new(local_policy::Connectivity::default());
    let exposition = metrics.map(|listener| {
        let registry = instruments::global().registry(outbox.clone(), connectivity.clone());
        hemostat_telemetry::exposition::spawn(listener, registry, std::future::pending())
    });
    let selector = config.selector.clone().with_own_container(inventory::own_container_id());
    let probes = probe::ProbeHealth::default();
    let executor = Arc::new(executor::Executor::new(
        docker.clone(),
        selector.clone(),
        config.execution.clone(),
        outbox.clone(),
        probes.clone(),
    ));
    let (observations, observed) = tokio::sync::mpsc::channel(4096);
    let poller = poller::Poller::new(
        docker.clone(),
        selector.clone(),
        config.poll_interval,
        config.stats_source,
        observations.clone(),
    )?;
    let resync = Arc::new(tokio::sync::Notify::new());
    let local = config.local_policy.enabled.then(|| monitor::LocalAction {
        policy: local_policy::LocalPolicy::new(config.local_policy),
        connectivity: connectivity.clone(),
        executor: executor.clone(),
    });
    let monitor = monitor::Monitor::new(config.detection, outbox.clone(), resync.clone(), local);
    let monitor = tokio::spawn(monitor.run(observed));
    let watcher = watcher::Watcher::new(docker, selector, observations, config.log_lines, resync.clone(), probes)
        .for_podman(engine.kind == engine::EngineKind::Podman);
    let watcher = match &config.spool_dir {
        Some(dir) => watcher.with_position_file(dir.join("events-position")),
        None => watcher,
    };
    let watcher = tokio::spawn(watcher.run());
    let poller = tokio::spawn(poller.run());
    let disk = match config.disk.enabled() {
        true => disk_watch(&config, &engine, outbox.clone()).await.map(|watch| tokio::spawn(watch.run())),
        false => None,
    };
    let settings = session::SessionSettings {
        coordinators: config.coordinators.clone(),
        tls,
        heartbeat: config.heartbeat,
        reconnect_initial: Duration::from_millis(100),
        reconnect_max: config.reconnect_max,
    };
    let session = tokio::spawn(session::run(settings, outbox, executor, resync, connectivity));
    shutdown.await;
    tracing::info!("node stopping");
    for task in [watcher, poller, monitor, session].into_iter().chain(exposition).chain(disk) {
        task.abort();
    }
    Ok(())
}
