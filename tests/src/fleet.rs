//! A coordinator and nodes in the test process, each on its own Tokio runtime and thread, so that a test
//! can kill one abruptly (its runtime is shut down: every task and connection of it dies at once, as in a
//! crash) and start it again.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hemostat_coordinator::alerting::AlertingConfig;
use hemostat_coordinator::analysis::AnalyzerConfig;
use hemostat_coordinator::intake::IntakeLimits;
use hemostat_coordinator::remediation::RemediationConfig;
use hemostat_coordinator::store::StoreConfig;
use hemostat_coordinator::{Coordinator, CoordinatorConfig};
use hemostat_node::NodeConfig;
use hemostat_node::config::CoordinatorAddress;
use hemostat_node::detection::DetectionConfig;
use hemostat_node::disk::DiskConfig;
use hemostat_node::engine::EngineConfig;
use hemostat_node::executor::ExecutionPolicy;
use hemostat_node::inventory::ContainerSelector;
use hemostat_node::local_policy::LocalPolicyConfig;
use hemostat_node::poller::StatsSource;
use hemostat_pki::{OperatorRole, TlsFiles};
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::docker::Scope;
use crate::pki::TestPki;

/// A future running on a runtime of its own, on a thread of its own.
struct Isolated {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Isolated {
    /// Runs `start` on a new runtime; `start` returns a value for the caller and the future to keep running.
    fn spawn<T, F, Fut>(name: &str, start: F) -> Result<(T, Isolated), String>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(T, futures::future::BoxFuture<'static, ()>), String>>,
    {
        Self::spawn_in(name, None, start)
    }

    /// [`Isolated::spawn`] with every thread of the runtime in the network namespace `netns`.
    fn spawn_in<T, F, Fut>(name: &str, netns: Option<String>, start: F) -> Result<(T, Isolated), String>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(T, futures::future::BoxFuture<'static, ()>), String>>,
    {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Some(netns) = netns {
                    crate::netlab::enter(&netns)
                        .unwrap_or_else(|e| panic!("cannot enter network namespace {netns}: {e}"));
                }
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    match start().await {
                        Ok((value, running)) => {
                            let _ = ready_tx.send(Ok(value));
                            tokio::select! {
                                _ = running => {}
                                _ = kill_rx => {}
                            }
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                        }
                    }
                });
                // Every task still on this runtime (connections, sessions, store work) dies here.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("thread");
        let value = ready_rx.recv().map_err(|_| "the runtime thread died".to_owned())??;
        Ok((value, Isolated { kill: Some(kill_tx), thread: Some(thread) }))
    }

    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A coordinator configuration for tests: localhost, a free port, the test CA, and `store`.
pub fn coordinator_config(pki: &TestPki, store: StoreConfig) -> CoordinatorConfig {
    CoordinatorConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_listen: None,
        dashboard: None,
        tls: pki.coordinator(),
        store,
        remediation: RemediationConfig::default(),
        analyzer: AnalyzerConfig::default(),
        alerting: AlertingConfig::default(),
        node_lost_after: Duration::from_secs(30),
        intake: IntakeLimits::default(),
        allow_volatile_store: false,
    }
}

/// A coordinator in the test process.
pub struct TestCoordinator {
    config: CoordinatorConfig,
    addr: SocketAddr,
    running: Isolated,
}

impl TestCoordinator {
    /// Starts a coordinator; panics if it cannot.
    pub fn start(config: CoordinatorConfig) -> Self {
        let (addr, running) = Self::launch(config.clone()).unwrap_or_else(|e| panic!("coordinator: {e}"));
        TestCoordinator { config: CoordinatorConfig { listen: addr, ..config }, addr, running }
    }

    fn launch(config: CoordinatorConfig) -> Result<(SocketAddr, Isolated), String> {
        Isolated::spawn("coordinator", move || async move {
            let coordinator = Coordinator::bind(config).await.map_err(|e| e.to_string())?;
            let addr = coordinator.local_addr();
            let running: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                if let Err(error) = coordinator.run(std::future::pending()).await {
                    tracing::error!(%error, "test coordinator failed");
                }
            });
            Ok((addr, running))
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its address as nodes and the CLI name it (the certificate is for localhost).
    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    /// Kills it abruptly: every connection and task dies at once.
    pub fn kill(&mut self) {
        self.running.kill();
    }

    /// Starts it again on the same address and store (retrying while the old one's port or store file is
    /// still being released).
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            match Self::launch(self.config.clone()) {
                Ok((_, running)) => {
                    self.running = running;
                    return;
                }
                Err(error) if started.elapsed() > Duration::from_secs(10) => panic!("coordinator restart: {error}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// A node configuration for tests: `name`'s certificate, watching only `selector`'s containers, sampling
/// every second, verifying restarts for one second, with its spool in memory.
pub fn node_config(pki: &TestPki, name: &str, coordinator: &str, selector: &str) -> NodeConfig {
    NodeConfig {
        coordinators: vec![CoordinatorAddress::parse(coordinator).expect("endpoint")],
        tls: pki.node(name),
        metrics_listen: None,
        engine: EngineConfig { host: std::env::var("DOCKER_HOST").ok(), ..EngineConfig::default() },
        selector: ContainerSelector::parse(selector).expect("selector"),
        heartbeat: Duration::from_secs(1),
        reconnect_max: Duration::from_secs(1),
        spool_capacity: 10_000,
        spool_dir: None,
        poll_interval: Duration::from_secs(1),
        stats_source: StatsSource::Auto,
        detection: DetectionConfig::default(),
        log_lines: 50,
        execution: ExecutionPolicy { verify_window: Duration::from_secs(1), ..ExecutionPolicy::default() },
        local_policy: LocalPolicyConfig::default(),
        disk: DiskConfig::default(),
    }
}

/// A node in the test process.
pub struct TestNode {
    running: Isolated,
}

impl TestNode {
    /// Starts a node; panics if it cannot start (certificates, Docker).
    pub fn start(config: NodeConfig) -> Self {
        Self::start_in(config, None)
    }

    /// Starts a node on a host of a [`Lab`](crate::netlab::Lab): its connections come from the host's
    /// address and stall when the host is cut off.
    pub fn start_on(config: NodeConfig, host: &crate::netlab::Host) -> Self {
        Self::start_in(config, Some(host.netns.clone()))
    }

    fn start_in(config: NodeConfig, netns: Option<String>) -> Self {
        let (_, running) = Isolated::spawn_in("node", netns, move || async move {
            let running: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                if let Err(error) = hemostat_node::run(config, std::future::pending()).await {
                    panic!("test node failed: {error}");
                }
            });
            Ok(((), running))
        })
        .unwrap_or_else(|e| panic!("node: {e}"));
        TestNode { running }
    }

    /// Stops it abruptly.
    pub fn kill(&mut self) {
        self.running.kill();
    }
}

/// The operator client the tests use.
pub type FleetClient = FleetServiceClient<Channel>;

/// A FleetService client with the given TLS files.
pub async fn fleet_client_with(
    files: &TlsFiles,
    coordinator: SocketAddr,
) -> Result<FleetServiceClient<Channel>, String> {
    let tls = files.load().map_err(|e| e.to_string())?;
    let channel = Endpoint::from_shared(format!("https://localhost:{}", coordinator.port()))
        .map_err(|e| e.to_string())?
        .tls_config(tls.client_config("localhost"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(FleetServiceClient::new(channel))
}

/// A FleetService client with an operator certificate of `role`.
pub async fn operator(pki: &TestPki, role: OperatorRole, coordinator: SocketAddr) -> FleetServiceClient<Channel> {
    fleet_client_with(&pki.operator(role), coordinator).await.expect("operator client")
}

/// Every event of the container named `container`, oldest first.
pub async fn events_of(client: &FleetClient, container: &str) -> Result<Vec<pb::Event>, String> {
    let request = pb::ListEventsRequest { container: container.to_owned(), page_size: 1000, ..Default::default() };
    client.clone().list_events(request).await.map(|r| r.into_inner().events).map_err(|s| s.to_string())
}

/// One page of `ListContainers`, with when it was asked for and how long it took.
#[derive(Clone, Debug)]
pub struct ContainerPage {
    /// When the request left.
    pub asked_at: SystemTime,
    /// From the request to the answer.
    pub latency: Duration,
    /// The page's containers.
    pub containers: Vec<pb::Container>,
}

/// Every page of `ListContainers` (the coordinator's own page size), following `next_page_token` from the
/// first page to the last.
pub async fn container_pages(client: &FleetClient) -> Result<Vec<ContainerPage>, String> {
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let asked_at = SystemTime::now();
        let asked = Instant::now();
        let request = pb::ListContainersRequest { page_token, ..Default::default() };
        let response = client
            .clone()
            .list_containers(request)
            .await
            .map_err(|s| format!("ListContainers, page {}: {s}", pages.len() + 1))?
            .into_inner();
        let latency = asked.elapsed();
        if response.containers.is_empty() && !response.next_page_token.is_empty() {
            return Err(format!("ListContainers, page {}: empty, yet with a next page", pages.len() + 1));
        }
        pages.push(ContainerPage { asked_at, latency, containers: response.containers });
        page_token = response.next_page_token;
        if page_token.is_empty() {
            return Ok(pages);
        }
    }
}

/// Every node `ListNodes` lists, following `next_page_token` from the first page to the last.
pub async fn all_nodes(client: &FleetClient) -> Result<Vec<pb::Node>, String> {
    let mut nodes = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListNodesRequest { page_size: 0, page_token };
        let response = client.clone().list_nodes(request).await.map_err(|s| format!("ListNodes: {s}"))?.into_inner();
        if response.nodes.is_empty() && !response.next_page_token.is_empty() {
            return Err("ListNodes: an empty page, yet with a next page".to_owned());
        }
        nodes.extend(response.nodes);
        page_token = response.next_page_token;
        if page_token.is_empty() {
            return Ok(nodes);
        }
    }
}

/// The event types, as short names (`health_alert`, ...), of a list of events.
pub fn kinds(events: &[pb::Event]) -> Vec<String> {
    events.iter().map(|e| e.r#type().as_str_name().trim_start_matches("EVENT_TYPE_").to_ascii_lowercase()).collect()
}

/// Whether the node `name` has a session open with the coordinator.
pub async fn node_connected(client: &FleetClient, name: &str) -> Result<(), String> {
    let nodes =
        client.clone().list_nodes(pb::ListNodesRequest::default()).await.map_err(|s| s.to_string())?.into_inner().nodes;
    match nodes.iter().find(|n| n.name == name) {
        Some(node) if node.connected => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// The coordinator's view of the container named `name`.
pub async fn container(client: &FleetClient, name: &str) -> Result<pb::Container, String> {
    let containers = client
        .clone()
        .list_containers(pb::ListContainersRequest::default())
        .await
        .map_err(|s| s.to_string())?
        .into_inner()
        .containers;
    containers
        .into_iter()
        .find(|c| c.state.as_ref().is_some_and(|s| s.name == name))
        .ok_or_else(|| format!("{name} not listed"))
}

/// The anomalies of the `health_alert` events among `events`, as (type, severity) names, alert by alert.
pub fn alerted(events: &[pb::Event]) -> Vec<Vec<(String, String)>> {
    events
        .iter()
        .filter(|e| e.r#type() == pb::EventType::HealthAlert)
        .map(|e| {
            e.anomalies
                .iter()
                .map(|a| {
                    (
                        a.r#type().as_str_name().trim_start_matches("ANOMALY_TYPE_").to_ascii_lowercase(),
                        a.severity().as_str_name().trim_start_matches("SEVERITY_").to_ascii_lowercase(),
                    )
                })
                .collect()
        })
        .collect()
}

/// What most tests start with: a coordinator (embedded store in a temporary folder), one node `host-a`
/// watching exactly this test's containers, connected, and a viewer's client.
pub struct TestFleet {
    /// The test CA.
    pub pki: TestPki,
    /// This test's containers.
    pub scope: Scope,
    /// The coordinator.
    pub coordinator: TestCoordinator,
    /// The node `host-a`.
    pub node: TestNode,
    /// A viewer's FleetService client.
    pub client: FleetClient,
    /// The coordinator's data folder.
    pub dir: tempfile::TempDir,
}

impl TestFleet {
    /// Starts it with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}, |_| {}).await
    }

    /// Starts it after letting the test adjust the coordinator's and the node's configuration.
    pub async fn start_with(
        coordinator: impl FnOnce(&mut CoordinatorConfig),
        node: impl FnOnce(&mut NodeConfig),
    ) -> Self {
        crate::init();
        let pki = TestPki::new();
        let scope = Scope::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut coordinator_config =
            coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") });
        coordinator(&mut coordinator_config);
        let running = TestCoordinator::start(coordinator_config);
        let mut config = self::node_config(&pki, "host-a", &running.endpoint(), &scope.selector());
        node(&mut config);
        let node = TestNode::start(config);
        let client = operator(&pki, OperatorRole::Viewer, running.addr()).await;
        crate::eventually("node host-a connected", Duration::from_secs(10), || node_connected(&client, "host-a")).await;
        TestFleet { pki, scope, coordinator: running, node, client, dir }
    }

    /// A node configuration for `host-a` pointing at this fleet's coordinator (for restarting the node).
    pub fn node_config(&self) -> NodeConfig {
        self::node_config(&self.pki, "host-a", &self.coordinator.endpoint(), &self.scope.selector())
    }

    /// A new viewer's client (after the coordinator restarted).
    pub async fn reconnect(&mut self) {
        self.client = operator(&self.pki, OperatorRole::Viewer, self.coordinator.addr()).await;
    }
}

/// Waits until the container's remediation is complete (a `remediation_complete` event) and returns all
/// its events.
pub async fn remediated(client: &FleetClient, name: &str, deadline: Duration) -> Vec<pb::Event> {
    crate::eventually(&format!("{name} remediated"), deadline, || async {
        let events = events_of(client, name).await?;
        if kinds(&events).contains(&"remediation_complete".to_owned()) {
            Ok(events)
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await
}

/// Waits until the container has an event with this rejection code and returns it.
pub async fn rejection(client: &FleetClient, name: &str, code: &str, deadline: Duration) -> pb::Event {
    crate::eventually(&format!("a {code} rejection of {name}"), deadline, || async {
        let events = events_of(client, name).await?;
        events.into_iter().find(|e| e.rejection == code).ok_or_else(|| "not yet".to_owned())
    })
    .await
}

/// A free loopback address for a metrics listener (`metrics_listen`), which the test gives the program and
/// then scrapes. Its port is below Linux's ephemeral range (32768–60999), which the kernel never hands out
/// by itself: a port from `bind(0)` could be taken by another test's listener or connection between this
/// check and the program's bind ("Address already in use" once in a CI run). Each test process takes its
/// own block of 20 ports, by process id, and moves on past a port someone holds.
pub fn free_metrics_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 10_000;
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let block = (std::process::id() % (PORTS / 20)) * 20;
    for _ in 0..PORTS {
        let port = (FIRST + (block + TAKEN.fetch_add(1, Ordering::Relaxed)) % PORTS) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + PORTS)
}

/// The Prometheus text a metrics listener serves at `/metrics` now (one plain HTTP/1.1 GET).
pub async fn scrape(addr: SocketAddr) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.map_err(|e| e.to_string())?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(format!("unexpected answer: {response}")),
    }
}

/// The value of the series written exactly `series` (name and labels) in Prometheus text, if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
