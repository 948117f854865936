//! The node's cost, the Docker engine's included: CPU time and peak memory of the real `hemostat-node`
//! process watching N containers, sampling every `interval` seconds, for `duration` seconds, connected to a
//! coordinator, once per stats source (`NODE_STATS_SOURCE`: `engine`, `cgroup`, `auto`) on the same
//! containers; and the CPU dockerd spends above its idle baseline meanwhile.
//!
//! ```sh
//! cargo build --release -p hemostat-node
//! cargo bench -p hemostat-tests --bench node_footprint -- 100 5 120 engine,cgroup   # containers, interval s, duration s, sources
//! ```
//!
//! CPU times are nanoseconds from /proc/<pid>/task/*/schedstat, summed over the process's threads; peak
//! memory is VmHWM from /proc/<pid>/status; the samples taken are the node's own count
//! (`hemostat_node_samples_total`, scraped from its `/metrics`). The machine is shared, and dockerd also
//! answers other people's tests, so its cost is measured in pairs: after a warm-up of one interval, the
//! node runs for a window of two intervals, then is stopped (SIGSTOP) for as long, `duration / window`
//! times; dockerd's CPU above its idle baseline is the sum over the pairs of (window with the node −
//! window without). Each pair's difference is printed so a burst of someone else's is visible. The window
//! must stay under the coordinator's 15 s silence limit (an interval of at most 7 s): a node stopped for
//! longer is dropped and reconnects, and the reconnection's cost would be counted.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestCoordinator, node_connected};
use hemostat_tests::pki::TestPki;

/// CPU time of every thread of `pid`, nanoseconds (threads that ended are not counted: the node's and
/// dockerd's threads live as long as they do).
fn cpu_nanos(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process runs");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the node runs");
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// dockerd's process id: /var/run/docker.pid, else the process named dockerd.
fn dockerd_pid() -> u32 {
    if let Some(pid) = std::fs::read_to_string("/var/run/docker.pid").ok().and_then(|p| p.trim().parse().ok()) {
        return pid;
    }
    let out = Command::new("pgrep").args(["-x", "dockerd"]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|p| p.parse().ok()).expect("dockerd runs")
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The samples the node has taken, from either source.
async fn samples(addr: std::net::SocketAddr) -> u64 {
    let text = fleet::scrape(addr).await.expect("the node's metrics");
    ["cgroup", "engine"]
        .iter()
        .filter_map(|source| fleet::metric(&text, &format!("hemostat_node_samples_total{{source=\"{source}\"}}")))
        .sum::<f64>() as u64
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap().split_whitespace().next().unwrap().to_owned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let number = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (containers, interval, duration) = (number(0, 50), number(1, 10), number(2, 300));
    let sources: Vec<String> =
        args.get(3).map_or("engine,cgroup", String::as_str).split(',').map(str::to_owned).collect();
    hemostat_tests::init();
    let binary = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("hemostat-node");
    assert!(binary.exists(), "build it first: cargo build --release -p hemostat-node ({} missing)", binary.display());
    let dockerd = dockerd_pid();

    let pki = TestPki::new();
    let scope = Scope::new();
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(fleet::coordinator_config(
        &pki,
        StoreConfig::Embedded { path: dir.path().join("state.redb") },
    ));
    let client = fleet::operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    for i in 0..containers {
        scope.run(&format!("w{i}"), &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    }
    pki.node("bench");
    let certs = tempfile::tempdir().unwrap();
    for (from, to) in [("ca.pem", "ca.pem"), ("node-bench.pem", "node.pem"), ("node-bench-key.pem", "node-key.pem")] {
        std::fs::copy(pki.dir().join(from), certs.path().join(to)).unwrap();
    }
    let window = Duration::from_secs(2 * interval);
    assert!(
        window < Duration::from_secs(15),
        "an interval of {interval} s stops the node for {} s, past the coordinator's 15 s silence limit: \
         at most 7 s",
        window.as_secs()
    );
    let pairs = (duration / window.as_secs()).max(1);
    for source in sources {
        let load_before = load();
        let metrics_addr = fleet::free_metrics_addr();
        let mut node = Command::new(&binary)
            .args(["--coordinator", &coordinator.endpoint(), "--select-label", &scope.selector()])
            .arg("--certs-dir")
            .arg(certs.path())
            .arg("--spool-dir")
            .arg(dir.path().join(format!("spool-{source}")))
            .args(["--poll-interval", &interval.to_string()])
            .args(["--metrics-listen", &metrics_addr.to_string()])
            .env("LOG_LEVEL", "warn")
            .env("NODE_STATS_SOURCE", &source)
            .stdout(Stdio::null())
            .spawn()
            .expect("hemostat-node starts");
        eventually("node connected", Duration::from_secs(10), || node_connected(&client, "bench")).await;
        tokio::time::sleep(Duration::from_secs(interval)).await; // warm-up: the first poll
        let samples_before = samples(metrics_addr).await;
        let (mut node_nanos, mut dockerd_above, mut on_time, mut differences) = (0u64, 0i64, 0.0, Vec::new());
        for _ in 0..pairs {
            let (node_0, dockerd_0, started) = (cpu_nanos(node.id()), cpu_nanos(dockerd), Instant::now());
            tokio::time::sleep(window).await;
            let (node_1, dockerd_1) = (cpu_nanos(node.id()), cpu_nanos(dockerd));
            on_time += started.elapsed().as_secs_f64();
            signal(node.id(), "STOP");
            tokio::time::sleep(window).await;
            let dockerd_2 = cpu_nanos(dockerd);
            signal(node.id(), "CONT");
            node_nanos += node_1 - node_0;
            let difference = (dockerd_1 - dockerd_0) as i64 - (dockerd_2 - dockerd_1) as i64;
            differences.push(format!("{:.0} ms", difference as f64 / 1e6));
            dockerd_above += difference;
        }
        let taken = samples(metrics_addr).await - samples_before;
        let hwm = status_kib(node.id(), "VmHWM:");
        let rss = status_kib(node.id(), "VmRSS:");
        let _ = node.kill();
        let _ = node.wait();
        let node_seconds = node_nanos as f64 / 1e9;
        let dockerd_seconds = dockerd_above as f64 / 1e9;
        println!(
            "source {source}: {containers} containers every {interval}s, {pairs} windows of {}s with the node (load \
             {load_before} → {}): {taken} samples; node CPU {:.3}% of one core ({node_seconds:.3}s), {:.0} µs per \
             sample; dockerd above idle {dockerd_seconds:.3}s ({}), {:.0} µs per sample; node + dockerd {:.0} µs \
             per sample; node peak RSS {:.1} MiB, RSS at the end {:.1} MiB",
            window.as_secs(),
            load(),
            node_seconds / on_time * 100.0,
            node_seconds / taken as f64 * 1e6,
            differences.join(", "),
            dockerd_seconds / taken as f64 * 1e6,
            (node_seconds + dockerd_seconds) / taken as f64 * 1e6,
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        );
    }
}
