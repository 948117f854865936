//! The node's cost, the Docker engine's included: CPU time and peak memory of the real `hemostat-node`
//! process watching N containers, sampling every `interval` seconds, for `duration` seconds, connected to a
//! coordinator, once per stats source (`NODE_STATS_SOURCE`: `engine`, `cgroup`, `auto`) on the same
//! containers; and the CPU dockerd spends above its idle baseline meanwhile.
//!
//! ```sh
//! cargo build --release -p hemostat-node
//! cargo bench -p hemostat-tests --bench node_footprint -- 100 10 120 engine,cgroup   # containers, interval s, duration s, sources
//! ```
//!
//! CPU comes from /proc/<pid>/stat (user + system ticks) over the measured window, after a warm-up of one
//! interval; peak memory is VmHWM from /proc/<pid>/status. dockerd's idle baseline is its CPU over
//! `duration / 2` seconds with the containers running and no node, measured before and after each run
//! (the machine is shared: the two baselines show how steady it was); the figure is dockerd's CPU in the
//! window minus the mean baseline rate over the window.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestCoordinator, node_connected};
use hemostat_tests::pki::TestPki;

/// USER_HZ on Linux: ticks per second in /proc/<pid>/stat.
const HZ: f64 = 100.0;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
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

/// dockerd's CPU seconds per second over `window`.
async fn dockerd_rate(dockerd: u32, window: Duration) -> f64 {
    let (start, started) = (cpu_ticks(dockerd), Instant::now());
    tokio::time::sleep(window).await;
    (cpu_ticks(dockerd) - start) as f64 / HZ / started.elapsed().as_secs_f64()
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
    let baseline_window = Duration::from_secs((duration / 2).max(5));
    for source in sources {
        let load_before = load();
        let baseline_before = dockerd_rate(dockerd, baseline_window).await;
        let mut node = Command::new(&binary)
            .args(["--coordinator", &coordinator.endpoint(), "--select-label", &scope.selector()])
            .arg("--certs-dir")
            .arg(certs.path())
            .arg("--spool-dir")
            .arg(dir.path().join(format!("spool-{source}")))
            .args(["--poll-interval", &interval.to_string()])
            .env("LOG_LEVEL", "warn")
            .env("NODE_STATS_SOURCE", &source)
            .stdout(Stdio::null())
            .spawn()
            .expect("hemostat-node starts");
        eventually("node connected", Duration::from_secs(10), || node_connected(&client, "bench")).await;
        tokio::time::sleep(Duration::from_secs(interval)).await; // warm-up: the first poll
        let (start_ticks, start_dockerd, started) = (cpu_ticks(node.id()), cpu_ticks(dockerd), Instant::now());
        tokio::time::sleep(Duration::from_secs(duration)).await;
        let ticks = cpu_ticks(node.id()) - start_ticks;
        let dockerd_ticks = cpu_ticks(dockerd) - start_dockerd;
        let elapsed = started.elapsed().as_secs_f64();
        let hwm = status_kib(node.id(), "VmHWM:");
        let rss = status_kib(node.id(), "VmRSS:");
        let _ = node.kill();
        let _ = node.wait();
        let baseline_after = dockerd_rate(dockerd, baseline_window).await;
        let baseline = (baseline_before + baseline_after) / 2.0;
        let node_seconds = ticks as f64 / HZ;
        let dockerd_seconds = (dockerd_ticks as f64 / HZ - baseline * elapsed).max(0.0);
        let samples = containers as f64 * (elapsed / interval as f64);
        println!(
            "source {source}: {containers} containers every {interval}s for {elapsed:.0}s (load {load_before} → {}): \
             node CPU {:.3}% of one core ({node_seconds:.2}s), {:.0} µs per sample; dockerd above idle {dockerd_seconds:.2}s, \
             {:.0} µs per sample (idle baseline {:.3}% before, {:.3}% after); node + dockerd {:.0} µs per sample; \
             node peak RSS {:.1} MiB, RSS at the end {:.1} MiB",
            load(),
            node_seconds / elapsed * 100.0,
            node_seconds / samples * 1e6,
            dockerd_seconds / samples * 1e6,
            baseline_before * 100.0,
            baseline_after * 100.0,
            (node_seconds + dockerd_seconds) / samples * 1e6,
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        );
    }
}
