//! Load on a coordinator, for the ingest benchmark: [`LoadGenerator`] opens N real node sessions
//! (`hemostat.v1.AgentService/Session`, mutual TLS with a node certificate each, one HTTP/2 connection
//! each, as real nodes do) and speaks on each as `hemostat-node` with M containers does: a Hello, a snapshot
//! of its containers, then every interval one metrics report carrying one sample of every container (the
//! node's poller samples every container once per interval and its monitor queues them as one
//! `MetricsReport`), heartbeats, and reading the coordinator's acknowledgements.
//!
//! [`CoordinatorProcess`] runs the real `hemostat-coordinator` binary as a child process, so its CPU time
//! and memory can be read from /proc with [`process_usage`]; [`FirstPageProbe`] times `ListContainers`'
//! first page.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use hemostat_coordinator::fleet::paging::MAX_PAGE_SIZE;
use hemostat_pki::TlsMaterial;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::agent_service_client::AgentServiceClient;
use pb::session_request::Body;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::fleet::FleetClient;
use crate::pki::TestPki;

/// The shape of a load.
#[derive(Clone, Debug)]
pub struct LoadSettings {
    /// Node sessions to open.
    pub sessions: usize,
    /// Containers each node reports.
    pub containers: usize,
    /// Time between two metrics reports of one node (the node's `AGENT_POLL_INTERVAL`).
    pub report_interval: Duration,
    /// Time between two heartbeats of one node (the node's default is 5 s).
    pub heartbeat_interval: Duration,
    /// Sessions being set up (TLS handshake, Hello, snapshot) at once.
    pub setup_concurrency: usize,
}

impl LoadSettings {
    /// `sessions` nodes of `containers` containers each, one report a second, a heartbeat every 5 s.
    pub fn new(sessions: usize, containers: usize) -> Self {
        LoadSettings {
            sessions,
            containers,
            report_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            setup_concurrency: 32,
        }
    }

    /// Samples per second the load offers when every report leaves on time.
    pub fn offered_samples_per_second(&self) -> f64 {
        (self.sessions * self.containers) as f64 / self.report_interval.as_secs_f64()
    }
}

/// Counters shared by every session of a load, counted since it started.
#[derive(Debug, Default)]
struct Counters {
    snapshots_acked: AtomicU64,
    reports_due: AtomicU64,
    reports_sent: AtomicU64,
    reports_acked: AtomicU64,
    heartbeats_sent: AtomicU64,
    sessions_ended: AtomicU64,
}

/// The counters of a load at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadTotals {
    /// Sessions whose snapshot the coordinator acknowledged.
    pub snapshots_acked: u64,
    /// Metrics reports whose time had come.
    pub reports_due: u64,
    /// Metrics reports handed to the connection.
    pub reports_sent: u64,
    /// Metrics reports the coordinator acknowledged.
    pub reports_acked: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Sessions that ended (broke, or were closed by the coordinator) before the load stopped.
    pub sessions_ended: u64,
}

/// N node sessions streaming metrics to a coordinator.
pub struct LoadGenerator {
    settings: Arc<LoadSettings>,
    counters: Arc<Counters>,
    start: watch::Sender<Option<Instant>>,
    first_error: Arc<Mutex<Option<String>>>,
    tasks: JoinSet<()>,
}

impl LoadGenerator {
    /// Opens one session per node certificate in `nodes`, session `i` with the coordinator at
    /// `urls[i % urls.len()]` (so the sessions split evenly over the coordinators; their certificates name
    /// `localhost`), each sending its Hello and a snapshot of its containers; returns once every snapshot
    /// was acknowledged. Metrics reports begin with [`LoadGenerator::start_reports`].
    pub async fn connect(urls: &[String], nodes: Vec<TlsMaterial>, settings: LoadSettings) -> Result<Self, String> {
        if nodes.len() != settings.sessions {
            return Err(format!("{} node certificates for {} sessions", nodes.len(), settings.sessions));
        }
        if urls.is_empty() {
            return Err("no coordinator to connect to".to_owned());
        }
        let settings = Arc::new(settings);
        let counters = Arc::new(Counters::default());
        let (start, start_rx) = watch::channel(None);
        let first_error = Arc::new(Mutex::new(None));
        let setup = Arc::new(Semaphore::new(settings.setup_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (index, node) in nodes.into_iter().enumerate() {
            let session = NodeSession {
                index,
                node,
                url: urls[index % urls.len()].clone(),
                settings: settings.clone(),
                counters: counters.clone(),
            };
            let (start_rx, setup, first_error) = (start_rx.clone(), setup.clone(), first_error.clone());
            tasks.spawn(async move {
                let name = session.node.identity.name.clone();
                let counters = session.counters.clone();
                if let Err(error) = session.run(setup, start_rx).await {
                    counters.sessions_ended.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().expect("error lock").get_or_insert_with(|| format!("node {name}: {error}"));
                }
            });
        }
        let deadline =
            std::time::Instant::now() + Duration::from_secs(60) + Duration::from_millis(50) * settings.sessions as u32;
        let generator = LoadGenerator { settings, counters, start, first_error, tasks };
        loop {
            if let Some(error) = generator.first_error() {
                return Err(error);
            }
            if generator.totals().snapshots_acked == generator.settings.sessions as u64 {
                return Ok(generator);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "only {} of {} sessions had their snapshot acknowledged in time",
                    generator.totals().snapshots_acked,
                    generator.settings.sessions
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts every session's metrics reports and heartbeats, spread evenly over one report interval
    /// (real nodes are not in step with each other).
    pub fn start_reports(&self) {
        let _ = self.start.send(Some(Instant::now()));
    }

    /// The counters now.
    pub fn totals(&self) -> LoadTotals {
        let c = &self.counters;
        LoadTotals {
            snapshots_acked: c.snapshots_acked.load(Ordering::Relaxed),
            reports_due: c.reports_due.load(Ordering::Relaxed),
            reports_sent: c.reports_sent.load(Ordering::Relaxed),
            reports_acked: c.reports_acked.load(Ordering::Relaxed),
            heartbeats_sent: c.heartbeats_sent.load(Ordering::Relaxed),
            sessions_ended: c.sessions_ended.load(Ordering::Relaxed),
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &LoadSettings {
        &self.settings
    }

    /// The first session error, if a session ended.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().expect("error lock").clone()
    }

    /// Closes every session.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

/// One node's session.
struct NodeSession {
    index: usize,
    node: TlsMaterial,
    url: String,
    settings: Arc<LoadSettings>,
    counters: Arc<Counters>,
}

impl NodeSession {
    async fn run(self, setup: Arc<Semaphore>, mut start: watch::Receiver<Option<Instant>>) -> Result<(), String> {
        let permit = setup.acquire_owned().await.map_err(|e| e.to_string())?;
        let channel = Endpoint::from_shared(self.url.clone())
            .map_err(|e| e.to_string())?
            .tls_config(self.node.client_config("localhost"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (tx, rx) = mpsc::channel::<pb::SessionRequest>(64);
        let closed = |_| "the session's stream closed".to_owned();
        let hello = pb::Hello {
            node_name: self.node.identity.name.clone(),
            version: "loadgen".to_owned(),
            stream_id: format!("{:016x}", rand::random::<u64>()),
            hostname: format!("load-host-{}", self.index),
            ..Default::default()
        };
        tx.send(pb::SessionRequest { seq: 0, body: Some(Body::Hello(hello)) }).await.map_err(closed)?;
        let mut inbound = AgentServiceClient::new(channel)
            .session(ReceiverStream::new(rx))
            .await
            .map_err(|s| format!("session refused: {s}"))?
            .into_inner();
        let containers = containers(self.index, self.settings.containers);
        let ids: Vec<String> = containers.iter().map(|c| c.id.clone()).collect();
        // In parts, as the node sends it (at most `MessageBounds::part_bytes` each).
        let snapshot = Body::Snapshot(pb::ContainerSnapshot { containers, ..Default::default() });
        let parts = hemostat_node::bounds::split(snapshot, hemostat_node::bounds::MessageBounds::default().part_bytes);
        let last_part = parts.len() as u64;
        for (seq, part) in (1..).zip(parts) {
            tx.send(pb::SessionRequest { seq, body: Some(part) }).await.map_err(closed)?;
        }
        loop {
            match inbound.message().await.map_err(|s| format!("waiting for the snapshot's ack: {s}"))? {
                Some(pb::SessionResponse { body: Some(pb::session_response::Body::Ack(ack)) })
                    if ack.seq >= last_part =>
                {
                    break;
                }
                Some(_) => continue,
                None => return Err("the coordinator closed the session before acknowledging the snapshot".into()),
            }
        }
        self.counters.snapshots_acked.fetch_add(1, Ordering::Relaxed);
        drop(permit);

        let acked = Arc::new(AtomicU64::new(last_part));
        let mut reader = tokio::spawn(read_acks(inbound, acked.clone(), self.counters.clone()));
        // Heartbeats from the start of the session, as a node sends them; reports once the load starts.
        let heartbeat = self.settings.heartbeat_interval;
        let mut heartbeats = tokio::time::interval_at(Instant::now() + heartbeat.mul_f64(rand::random()), heartbeat);
        let mut reports: Option<tokio::time::Interval> = None;
        let interval = self.settings.report_interval;
        let phase = interval.mul_f64(self.index as f64 / self.settings.sessions.max(1) as f64);
        let mut seq = last_part;
        loop {
            tokio::select! {
                started = async { start.wait_for(Option::is_some).await.map(|at| *at) }, if reports.is_none() => {
                    let started = started.map_err(|e| e.to_string())?.expect("waited for a start");
                    reports = Some(tokio::time::interval_at(started + phase, interval));
                }
                _ = next_tick(&mut reports) => {
                    self.counters.reports_due.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                    let report = pb::MetricsReport { samples: samples(&ids, seq) };
                    tx.send(pb::SessionRequest { seq, body: Some(Body::Metrics(report)) }).await.map_err(closed)?;
                    self.counters.reports_sent.fetch_add(1, Ordering::Relaxed);
                }
                _ = heartbeats.tick() => {
                    let beat = pb::Heartbeat {
                        sent_at: Some(hemostat_proto::timestamp::to_proto(SystemTime::now())),
                        spool_depth: seq.saturating_sub(acked.load(Ordering::Relaxed)),
                        spool_dropped: 0,
                    };
                    tx.send(pb::SessionRequest { seq: 0, body: Some(Body::Heartbeat(beat)) }).await.map_err(closed)?;
                    self.counters.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                }
                ended = &mut reader => {
                    return Err(ended.map_err(|e| e.to_string())?);
                }
            }
        }
    }
}

/// The next tick of `interval`; never, without one.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Reads acknowledgements until the stream ends; returns why it ended.
async fn read_acks(
    mut inbound: tonic::Streaming<pb::SessionResponse>,
    acked: Arc<AtomicU64>,
    counters: Arc<Counters>,
) -> String {
    loop {
        match inbound.message().await {
            Ok(Some(pb::SessionResponse { body: Some(pb::session_response::Body::Ack(ack)) })) => {
                let before = acked.fetch_max(ack.seq, Ordering::Relaxed);
                // Sequence 1 is the snapshot; every later sequenced message is a metrics report.
                let newly = ack.seq.saturating_sub(before.max(1));
                counters.reports_acked.fetch_add(newly, Ordering::Relaxed);
            }
            Ok(Some(_)) => {}
            Ok(None) => return "the coordinator closed the session".to_owned(),
            Err(status) => return format!("the session broke: {status}"),
        }
    }
}

/// The containers of node `index`: running, with a Docker-like 64-character id, a few labels.
fn containers(index: usize, count: usize) -> Vec<pb::ContainerState> {
    let started_at = Some(hemostat_proto::timestamp::to_proto(SystemTime::now() - Duration::from_secs(3600)));
    (0..count)
        .map(|i| pb::ContainerState {
            id: format!("{:016x}{:016x}{:016x}{:016x}", index, i, rand::random::<u64>(), rand::random::<u64>()),
            name: format!("load-{index}-app-{i}"),
            image: "registry.example/team/app:1.4.2".to_owned(),
            status: pb::ContainerStatus::Running as i32,
            health: pb::HealthStatus::Healthy as i32,
            exit_code: 0,
            restart_policy: "no".to_owned(),
            labels: [
                ("com.docker.compose.project".to_owned(), format!("load-{index}")),
                ("com.docker.compose.service".to_owned(), format!("app-{i}")),
            ]
            .into(),
            started_at,
            memory_limit_bytes: 512 << 20,
            cpu_limit: 1.0,
        })
        .collect()
}

/// One sample of every container, as the node's monitor builds them, with values that move from report
/// to report.
fn samples(ids: &[String], seq: u64) -> Vec<pb::ContainerMetrics> {
    let sampled_at = Some(hemostat_proto::timestamp::to_proto(SystemTime::now()));
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let wobble = (seq.wrapping_mul(7919).wrapping_add(i as u64 * 104_729)) % 1000;
            let memory_used = (100 << 20) + wobble * 4096;
            pb::ContainerMetrics {
                container_id: id.clone(),
                sampled_at,
                cpu_percent: Some(wobble as f64 / 100.0),
                memory_used_bytes: memory_used,
                memory_limit_bytes: 512 << 20,
                memory_percent: memory_used as f64 / (512u64 << 20) as f64 * 100.0,
                network_rx_bytes: seq * 10_000 + wobble,
                network_tx_bytes: seq * 8_000 + wobble,
                block_read_bytes: 1 << 20,
                block_write_bytes: seq * 4096,
                pids: 4 + wobble % 3,
                restarts_in_window: 0,
                status: pb::ContainerStatus::Running as i32,
                health: pb::HealthStatus::Healthy as i32,
                exit_code: 0,
            }
        })
        .collect()
}

/// Goal: the latency of `ListContainers`' first page.
pub const FIRST_PAGE_GOAL: Duration = Duration::from_millis(100);

/// `ListContainers`' first page (`page_size` 0: the coordinator's largest page) asked for a number of times
/// in a row, and the page after it once, with the first page's `next_page_token`.
#[derive(Clone, Debug)]
pub struct FirstPageProbe {
    /// How long each first page took, shortest first.
    pub latencies: Vec<Duration>,
    /// The fewest containers a first page held.
    pub fewest: usize,
    /// The containers of the second page; `None` when the first page said it was the last.
    pub second_page: Option<usize>,
}

impl FirstPageProbe {
    /// Asks `client`'s coordinator for the first page `times` times, then for the second page once.
    pub async fn run(client: &FleetClient, times: usize) -> Result<Self, String> {
        let mut latencies = Vec::with_capacity(times);
        let mut fewest = usize::MAX;
        let mut next_token = String::new();
        for _ in 0..times.max(1) {
            let asked = Instant::now();
            let request = pb::ListContainersRequest { page_size: 0, ..Default::default() };
            let page = client.clone().list_containers(request).await.map_err(|s| format!("ListContainers: {s}"))?;
            latencies.push(asked.elapsed());
            let page = page.into_inner();
            fewest = fewest.min(page.containers.len());
            next_token = page.next_page_token;
        }
        latencies.sort();
        let second_page = match next_token.as_str() {
            "" => None,
            token => {
                let request = pb::ListContainersRequest { page_token: token.to_owned(), ..Default::default() };
                let page = client
                    .clone()
                    .list_containers(request)
                    .await
                    .map_err(|s| format!("ListContainers with the first page's next token: {s}"))?;
                Some(page.into_inner().containers.len())
            }
        };
        Ok(FirstPageProbe { latencies, fewest, second_page })
    }

    /// The median latency.
    pub fn median(&self) -> Duration {
        self.latencies[self.latencies.len() / 2]
    }

    /// The longest latency.
    pub fn max(&self) -> Duration {
        self.latencies[self.latencies.len() - 1]
    }

    /// Whether the pages were what a coordinator listing `listed` containers owes: a full first page
    /// ([`MAX_PAGE_SIZE`], or all of them if fewer) and, past one page, a token that gives the next
    /// page; `Err` says what was wrong.
    pub fn check(&self, listed: usize) -> Result<(), String> {
        let first = listed.min(MAX_PAGE_SIZE);
        if self.fewest != first {
            return Err(format!("a first page held {} containers, not {first}", self.fewest));
        }
        match (listed > MAX_PAGE_SIZE, self.second_page) {
            (false, None) => Ok(()),
            (false, Some(n)) => Err(format!("the first page of {listed} had a next page ({n} containers)")),
            (true, None) => Err(format!("the first page of {listed} had no next page token")),
            (true, Some(n)) if n == (listed - MAX_PAGE_SIZE).min(MAX_PAGE_SIZE) => Ok(()),
            (true, Some(n)) => Err(format!("the second page held {n} containers")),
        }
    }

    /// The row of a report's markdown table (`| measure | value | goal |`) for coordinator `index`, whose
    /// fleet has `listed` containers: p50 and max against [`FIRST_PAGE_GOAL`], and [`FirstPageProbe::check`].
    pub fn table_row(&self, index: usize, listed: usize) -> String {
        let pages = match self.check(listed) {
            Ok(()) => "full, next token works".to_owned(),
            Err(problem) => format!("WRONG: {problem}"),
        };
        let verdict = match (self.median() <= FIRST_PAGE_GOAL, self.max() <= FIRST_PAGE_GOAL) {
            (true, true) => "met",
            (true, false) => "met at p50, missed at max",
            (false, _) => "missed",
        };
        format!(
            "| coordinator {index}: ListContainers first page ({}×) | p50 {:.1?}, max {:.1?}; {} containers, second \
             page {}: {pages} | ≤ {FIRST_PAGE_GOAL:?}: {verdict} |",
            self.latencies.len(),
            self.median(),
            self.max(),
            self.fewest,
            self.second_page.map_or("none".to_owned(), |n| format!("{n} containers")),
        )
    }
}

/// `count` node certificates from the test CA, named `<prefix>-0000`, `<prefix>-0001`, ..., loaded.
pub fn node_certificates(pki: &TestPki, prefix: &str, count: usize) -> Vec<TlsMaterial> {
    (0..count).map(|i| pki.node(&format!("{prefix}-{i:04}")).load().expect("a freshly issued certificate")).collect()
}

/// A process's CPU time and memory, from /proc.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessUsage {
    /// User plus system CPU time since it started, seconds.
    pub cpu_seconds: f64,
    /// Resident memory now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Threads.
    pub threads: u64,
}

/// The CPU time and memory of process `pid`, from /proc/<pid>/stat and /proc/<pid>/status.
pub fn process_usage(pid: u32) -> Result<ProcessUsage, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("process {pid}: {e}"))?;
    let fields: Vec<&str> = stat.rsplit_once(") ").ok_or("unexpected /proc/<pid>/stat")?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or("unexpected /proc/<pid>/stat");
    // Fields 14 and 15 of stat (utime, stime), counted after the command's closing parenthesis.
    let cpu_ticks = ticks(11)? + ticks(12)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("process {pid}: {e}"))?;
    let value = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
    };
    Ok(ProcessUsage {
        cpu_seconds: cpu_ticks as f64 / clock_ticks_per_second() as f64,
        rss_kib: value("VmRSS:")?,
        peak_rss_kib: value("VmHWM:")?,
        threads: value("Threads:")?,
    })
}

/// The kernel's clock ticks per second for /proc CPU times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The 1-minute load average of this machine (from /proc/loadavg).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// A workspace binary built next to the running bench or test binary (`cargo build --release -p ...` puts
/// it in `target/release`, where `cargo bench` runs from `target/release/deps`).
pub fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().and_then(Path::parent).ok_or("no parent folder")?;
    let binary = dir.join(name);
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!("{} is missing: build it first (cargo build --release -p {name})", binary.display()))
    }
}

/// The real coordinator binary running as a child process on a free loopback port, with the test CA's
/// coordinator certificate and a data folder of its own (the embedded store, unless its environment names a
/// Redis; [`crate::bench_store::BenchStore`] starts them on either) in a temporary folder; killed on drop.
pub struct CoordinatorProcess {
    child: Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl CoordinatorProcess {
    /// Starts `binary` with these environment variables (after the defaults: `LOG_LEVEL` warn, no Redis,
    /// no configuration file), its standard error written to `stderr` when given (else to this process's),
    /// and returns once it accepts connections.
    pub fn start_with(
        binary: &Path,
        pki: &TestPki,
        env: &[(&str, &str)],
        stderr: Option<&Path>,
    ) -> Result<Self, String> {
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::redis::free_port()));
        let stderr = match stderr {
            Some(path) => Stdio::from(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?),
            None => Stdio::inherit(),
        };
        let child = Command::new(binary)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--certs-dir")
            .arg(pki.dir())
            .arg("--data-dir")
            .arg(data.path())
            .env("LOG_LEVEL", "warn")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_HOST")
            .env_remove("REDIS_CLUSTER")
            .env_remove("REDIS_WAIT_REPLICAS")
            .env_remove("HEMOSTAT_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut process = CoordinatorProcess { child, addr, _data: data };
        let started = std::time::Instant::now();
        while !listening(addr.port()) {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(format!("the coordinator exited at start-up: {status}"));
            }
            if started.elapsed() > Duration::from_secs(15) {
                return Err(format!("the coordinator does not listen on {addr} after 15s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(process)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL nodes connect to (the certificate names localhost).
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Its CPU time and memory now.
    pub fn usage(&self) -> Result<ProcessUsage, String> {
        process_usage(self.pid())
    }

    /// The CPU time and memory of every process of `coordinators` now, summed (peaks and threads too).
    pub fn usage_of_all(coordinators: &[CoordinatorProcess]) -> Result<ProcessUsage, String> {
        let mut sum = ProcessUsage::default();
        for coordinator in coordinators {
            let usage = coordinator.usage()?;
            sum.cpu_seconds += usage.cpu_seconds;
            sum.rss_kib += usage.rss_kib;
            sum.peak_rss_kib += usage.peak_rss_kib;
            sum.threads += usage.threads;
        }
        Ok(sum)
    }
}

/// Whether something listens on TCP `port` of this machine (IPv4), per /proc/net/tcp; unlike a test
/// connection, this leaves no refused TLS handshake in the coordinator's log.
fn listening(port: u16) -> bool {
    const LISTEN: &str = "0A";
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else { return false };
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port =
            fields.get(1).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        local_port == Some(port) && fields.get(3) == Some(&LISTEN)
    })
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
