//! The coordinator assembled: TLS listener, state store, registry, and the gRPC services on one port
//! (`hemostat.v1.AgentService`, `hemostat.v1.FleetService`, `grpc.health.v1.Health`, reflection v1 and
//! v1alpha).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hemostat_pki::Role;
use hemostat_pki::files::FilesError;
use hemostat_proto::v1::agent_service_server::AgentServiceServer;
use hemostat_proto::v1::fleet_service_server::FleetServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::alerting::Notifier;
use crate::analysis::Analyzer;
use crate::api::FleetApi;
use crate::auth;
use crate::config::CoordinatorConfig;
use crate::directory::Directory;
use crate::events::{EventKind, EventRecord};
use crate::fleet::Fleet;
use crate::instruments::{CoordinatorInstruments, NotificationCounts};
use crate::registry::Registry;
use crate::remediation::Remediator;
use crate::session::AgentSessions;
use crate::store::{self, StateStore, StoreError};
use crate::tls::{self, TlsSetupError};

/// How long shutdown waits for open calls to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the coordinator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// Certificate files are missing or broken.
    #[error("TLS files: {0}")]
    TlsFiles(#[from] FilesError),
    /// The certificate is not a coordinator's.
    #[error(
        "{path} is a certificate for {found}; the coordinator needs a coordinator certificate (`hemostat certs issue coordinator`)"
    )]
    WrongRole {
        /// The certificate file.
        path: String,
        /// Whom it names.
        found: String,
    },
    /// The TLS configuration was refused.
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    /// The state store could not be opened.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// The state store would forget cooldowns, budgets and the event log when its servers restart.
    #[error(
        "state store: {0}: a restart of Redis would forget every cooldown, budget and event, and containers \
         would be restarted again inside their cooldown. Turn on append-only persistence (redis-server \
         --appendonly yes, or CONFIG SET appendonly yes then CONFIG REWRITE), or start with \
         REDIS_ALLOW_VOLATILE=true to accept that"
    )]
    VolatileStore(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error(transparent)]
    Metrics(#[from] hemostat_telemetry::exposition::ExpositionError),
    /// The dashboard could not start.
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::DashboardError),
    /// Notifications are configured but cannot be sent from this host.
    #[error(transparent)]
    Notifications(#[from] crate::alerting::NotifierError),
    /// Reflection could not be set up.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A coordinator bound to its address, ready to run.
pub struct Coordinator {
    listener: TcpListener,
    tls: rustls::ServerConfig,
    store: Arc<dyn StateStore>,
    config: CoordinatorConfig,
    /// Where Prometheus metrics are served, when configured.
    metrics: Option<TcpListener>,
    /// Where the dashboard is served, when configured.
    dashboard: Option<crate::dashboard::DashboardListener>,
}

impl Coordinator {
    /// Loads and checks the certificates, opens the state store, and binds the listen address.
    pub async fn bind(config: CoordinatorConfig) -> Result<Self, CoordinatorError> {
        hemostat_pki::install_crypto_provider();
        let material = config.tls.load()?;
        if material.identity.role != Role::Coordinator {
            return Err(CoordinatorError::WrongRole {
                path: config.tls.cert.display().to_string(),
                found: material.identity.to_string(),
            });
        }
        let tls = tls::server_config(&material)?;
        let store = store::open(&config.store).await?;
        match store.volatility() {
            Some(why) if !config.allow_volatile_store => return Err(CoordinatorError::VolatileStore(why)),
            Some(why) => {
                tracing::warn!(store = store.backend(), %why, "the state store is volatile (REDIS_ALLOW_VOLATILE)")
            }
            None => {}
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| CoordinatorError::Bind { addr: config.listen, source })?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(hemostat_telemetry::exposition::bind(addr).await?),
            None => None,
        };
        let dashboard = match config.dashboard.clone() {
            Some(dashboard) => Some(crate::dashboard::bind(dashboard).await?),
            None => None,
        };
        tracing::info!(
            name = %material.identity.name,
            store = store.backend(),
            analysis = config.analyzer.llm.as_ref().map_or("rules", |l| l.model.as_str()),
            "coordinator ready"
        );
        Ok(Coordinator { listener, tls, store, config, metrics, dashboard })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The address Prometheus metrics are served on, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// The address the dashboard is served on, when configured.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard.as_ref().and_then(|dashboard| dashboard.local_addr())
    }

    /// Serves until `shutdown` completes, then closes node sessions and stops.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), CoordinatorError> {
        let addr = self.local_addr();
        let registry = Arc::new(Registry::new(self.config.intake));
        let analyzer = Analyzer::new(self.config.analyzer.clone());
        let notifier = Notifier::new(&self.config.alerting)?.with_containers(registry.clone());
        let instance = format!("{:016x}", rand::random::<u64>());
        let directory = Arc::new(Directory::new(self.store.clone(), registry.clone(), instance.clone()));
        let instruments = Arc::new(CoordinatorInstruments::new());
        let remediator = Arc::new(
            Remediator::builder(self.store.clone(), registry.clone(), analyzer, self.config.remediation)
                .notifier(notifier.clone())
                .directory(directory.clone())
                .instruments(instruments.clone())
                .build(),
        );
        let fleet = Arc::new(Fleet::new(registry.clone(), directory.clone(), self.store.clone(), remediator.clone()));
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(listener) = self.metrics {
            let notifications: Arc<dyn NotificationCounts> = Arc::new(notifier.clone());
            let metrics = instruments.registry(registry.clone(), Some(notifications));
            let mut stopped = stop_rx.clone();
            hemostat_telemetry::exposition::spawn(listener, metrics, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
        }

        tokio::spawn(directory.run(stop_rx.clone()));
        tokio::spawn(remediator.commands().clone().serve_routed(instance, stop_rx.clone()));
        tokio::spawn(remediator.clone().release_recovered(stop_rx.clone()));
        tokio::spawn(crate::liveness::watch_nodes(
            registry.clone(),
            remediator.journal().clone(),
            self.config.node_lost_after,
            stop_rx.clone(),
        ));
        if let Some(dashboard) = self.dashboard {
            dashboard.spawn(fleet.clone(), instruments.clone(), stop_rx.clone());
        }
        let sessions = AgentSessions::new(registry.clone(), remediator.clone(), self.store.clone(), stop_rx);
        let fleet = FleetApi::new(fleet);
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<AgentServiceServer<AgentSessions>>().await;
        health_reporter.set_serving::<FleetServiceServer<FleetApi>>().await;
        if let Some(why) = self.store.volatility() {
            // Said once in the event log, and to `hemostat health` by a service that does not serve.
            health_reporter
                .set_service_status(
                    hemostat_proto::DURABLE_STATE_HEALTH_SERVICE,
                    tonic_health::ServingStatus::NotServing,
                )
                .await;
            let reason = format!(
                "REDIS_ALLOW_VOLATILE=true: the state store is volatile ({why}); a Redis restart forgets cooldowns, budgets and events"
            );
            if let Err(e) = remediator.record(EventRecord::new(EventKind::OperatorAction, "", "", "", &reason)).await {
                tracing::warn!(error = %e, "cannot record that the state store is volatile");
            }
        }
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(hemostat_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let incoming = tls::accept(self.listener, self.tls);
        tracing::info!(%addr, "serving gRPC with mutual TLS");
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: closing node sessions");
            let _ = stop_tx.send(true);
            registry.close_all_sessions();
            let _ = drained_tx.send(());
        };
        let serve = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(AgentServiceServer::with_interceptor(sessions, auth::require_node))
            .add_service(FleetServiceServer::with_interceptor(fleet, auth::require_operator))
            .serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result?,
            _ = async {
                let _ = drained_rx.await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => tracing::warn!("open calls did not finish within {}s; stopping anyway", SHUTDOWN_GRACE.as_secs()),
        }
        tracing::info!("coordinator stopped");
        Ok(())
    }
}
