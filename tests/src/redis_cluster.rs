//! A real Redis Cluster per test: `redis-server --cluster-enabled yes` processes on free loopback ports, each
//! in its own folder with the append-only file on, joined by `redis-cli --cluster create` (masters and,
//! optionally, one replica each), with a short node timeout so a test can kill a master and watch its
//! replica take over within seconds. Every server is stopped when the cluster is dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hemostat_coordinator::store::StoreConfig;
use hemostat_coordinator::store::redis::ClusterSettings;

/// How long a master may be unreachable before its replica is promoted (`cluster-node-timeout`).
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2000);

/// One server of the cluster.
struct ClusterServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl ClusterServer {
    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT.as_millis().to_string()])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server; .ci/run does it)");
        self.child = Some(child);
        let started = Instant::now();
        while cli(self.port, &["ping"]).trim() != "PONG" {
            assert!(started.elapsed() < Duration::from_secs(10), "cluster server on {} did not start", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the running server.
    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().unwrap_or_else(|| panic!("cluster server on {} is not running", self.port));
        let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} of the server on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running Redis Cluster.
pub struct RedisCluster {
    servers: Vec<ClusterServer>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas_per_master` replicas each, creates the cluster, and waits until
    /// every server says `cluster_state:ok`.
    pub fn start(masters: usize, replicas_per_master: usize) -> Self {
        let count = masters * (1 + replicas_per_master);
        let mut servers: Vec<ClusterServer> = free_cluster_ports(count)
            .into_iter()
            .map(|port| ClusterServer { port, dir: tempfile::tempdir().expect("temp dir"), child: None })
            .collect();
        for server in &mut servers {
            server.spawn();
        }
        let addresses: Vec<String> = servers.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas_per_master.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { servers };
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster.wait_for_replicas(masters * replicas_per_master, Duration::from_secs(60));
        cluster
    }

    /// The seed nodes as HemoStat takes them: `redis://127.0.0.1:P1,redis://127.0.0.1:P2,...`.
    pub fn url(&self) -> String {
        self.servers.iter().map(|s| format!("redis://127.0.0.1:{}", s.port)).collect::<Vec<_>>().join(",")
    }

    /// The coordinator's store configuration for this cluster: every server a seed, each safety write waiting
    /// for one replica (as `REDIS_CLUSTER=true` with the default `REDIS_WAIT_REPLICAS`).
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig::RedisCluster(ClusterSettings {
            seeds: self.url().split(',').map(str::to_owned).collect(),
            wait_replicas: 1,
            wait_timeout: Duration::from_secs(1),
        })
    }

    /// The ports of the servers that run now.
    pub fn live_ports(&self) -> Vec<u16> {
        self.servers.iter().filter(|s| s.child.is_some()).map(|s| s.port).collect()
    }

    /// The process id of the server on `port`; `None` while it is stopped.
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.servers.iter().find(|s| s.port == port).and_then(|s| s.child.as_ref()).map(Child::id)
    }

    /// The ports of the current masters serving slots (as a live server sees the cluster).
    pub fn masters(&self) -> Vec<u16> {
        self.nodes().into_iter().filter(|n| n.master && !n.failed && !n.slots.is_empty()).map(|n| n.port).collect()
    }

    /// The port of the master serving `key`'s hash slot now.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = cli(port, &["cluster", "keyslot", key]).trim().parse().expect("CLUSTER KEYSLOT answers");
        self.nodes()
            .into_iter()
            .find(|n| n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no live master serves slot {slot} of {key:?}"))
    }

    /// Kills the server on `port` (SIGKILL), as a crash.
    pub fn kill(&mut self, port: u16) {
        self.server(port).kill();
    }

    /// Freezes the server on `port` (SIGSTOP): it neither answers nor replicates until
    /// [`RedisCluster::unfreeze`]. Keep it short of [`NODE_TIMEOUT`], or the cluster counts it as failed.
    pub fn freeze(&self, port: u16) {
        self.servers.iter().find(|s| s.port == port).expect("a server of the cluster").signal("STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn unfreeze(&self, port: u16) {
        self.servers.iter().find(|s| s.port == port).expect("a server of the cluster").signal("CONT");
    }

    /// The port of the replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        let nodes = self.nodes();
        let master = nodes.iter().find(|n| n.port == port).unwrap_or_else(|| panic!("no node on {port}: {nodes:?}"));
        nodes
            .iter()
            .find(|n| !n.master && n.master_id == master.id)
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("the master on {port} has no replica: {nodes:?}"))
    }

    /// Starts the killed server on `port` again, on its own data; it rejoins the cluster (as a replica of
    /// whoever took over its slots).
    pub fn resume(&mut self, port: u16) {
        let server = self.server(port);
        if server.child.is_none() {
            server.spawn();
        }
    }

    /// Waits until `slots`, which the master on `port` served (see [`RedisCluster::slots_of`]), are served by another live master — its replica was promoted — and the
    /// cluster is `ok` again, as the live servers see it.
    pub fn wait_for_failover(&self, port: u16, slots: &[(u16, u16)], deadline: Duration) {
        let started = Instant::now();
        loop {
            let nodes = self.nodes();
            let taken_over = slots.iter().all(|(first, _)| {
                nodes.iter().any(|n| {
                    n.port != port && n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(first))
                })
            });
            if taken_over && self.state_ok() {
                return;
            }
            assert!(started.elapsed() < deadline, "no failover of {port} within {deadline:?}: {nodes:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The slot ranges the master on `port` serves now.
    pub fn slots_of(&self, port: u16) -> Vec<(u16, u16)> {
        self.nodes().into_iter().find(|n| n.port == port).map(|n| n.slots).unwrap_or_default()
    }

    /// Waits until `count` live replicas have taken their role and finished their sync with their master
    /// (`cluster_state:ok` comes before that, and a replica that has not synced cannot be promoted nor
    /// acknowledge a write).
    pub fn wait_for_replicas(&self, count: usize, deadline: Duration) {
        let started = Instant::now();
        loop {
            let replicas: Vec<u16> = self.nodes().iter().filter(|n| !n.master && !n.failed).map(|n| n.port).collect();
            let synced =
                replicas.iter().all(|port| cli(*port, &["info", "replication"]).contains("master_link_status:up"));
            if replicas.len() == count && synced {
                return;
            }
            assert!(started.elapsed() < deadline, "replicas not set up: {:?}", self.nodes());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every live server says `cluster_state:ok`.
    pub fn wait_until_ok(&self, deadline: Duration) {
        let started = Instant::now();
        while !self.state_ok() {
            assert!(started.elapsed() < deadline, "the cluster is not ok within {deadline:?}: {:?}", self.nodes());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `redis-cli -c` (following redirects) against a live server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.live_ports()[0];
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state_ok(&self) -> bool {
        self.live_ports().iter().all(|port| cli(*port, &["cluster", "info"]).contains("cluster_state:ok"))
    }

    fn nodes(&self) -> Vec<ClusterNode> {
        let port = self.live_ports()[0];
        cli(port, &["cluster", "nodes"]).lines().filter_map(ClusterNode::parse).collect()
    }

    fn server(&mut self, port: u16) -> &mut ClusterServer {
        self.servers.iter_mut().find(|s| s.port == port).unwrap_or_else(|| panic!("no cluster server on {port}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct ClusterNode {
    id: String,
    /// The id of its master (`-` for a master).
    master_id: String,
    port: u16,
    master: bool,
    failed: bool,
    slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    /// `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> <slot> ...`
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = fields.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()?;
        let flags = fields.get(2)?;
        let slots = fields
            .iter()
            .skip(8)
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|a| (a, a)),
            })
            .collect();
        Some(ClusterNode {
            id: (*fields.first()?).to_owned(),
            master_id: (*fields.get(3)?).to_owned(),
            port,
            master: flags.contains("master"),
            failed: flags.contains("fail"),
            slots,
        })
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// `count` loopback ports free now whose cluster bus ports (port + 10000) are free too.
fn free_cluster_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bus_free = port < 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
        if bus_free && !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_master_is_replaced_by_its_replica_and_its_keys_stay() {
        let mut cluster = RedisCluster::start(3, 1);
        assert_eq!(cluster.masters().len(), 3);
        assert_eq!(cluster.cli(&["set", "{budget}:a", "1"]).trim(), "OK");
        let master = cluster.master_of("{budget}:a");
        // The write reaches the replica before the master dies.
        cluster.cli(&["wait", "1", "1000"]);
        let slots = cluster.slots_of(master);
        cluster.kill(master);
        cluster.wait_for_failover(master, &slots, Duration::from_secs(30));
        assert_ne!(cluster.master_of("{budget}:a"), master);
        assert_eq!(cluster.cli(&["get", "{budget}:a"]).trim(), "1");
        cluster.resume(master);
        cluster.wait_until_ok(Duration::from_secs(30));
        assert_eq!(cluster.masters().len(), 3, "the old master came back as a replica");
    }
}
