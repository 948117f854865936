//! The node's cost: CPU time and peak memory of the real `hemostat-node` process watching N containers,
//! sampling every `interval` seconds, for `duration` seconds, connected to a coordinator.
//!
//! ```sh
//! cargo build --release -p hemostat-node
//! cargo bench -p hemostat-tests --bench node_footprint -- 50 10 300   # containers, interval s, duration s
//! ```
//!
//! CPU comes from /proc/<pid>/stat (user + system ticks) over the measured window, after a warm-up of one
//! interval; peak memory is VmHWM from /proc/<pid>/status.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestCoordinator, node_connected};
use hemostat_tests::pki::TestPki;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the node runs");
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the node runs");
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (containers, interval, duration) =
        (args.first().copied().unwrap_or(50), args.get(1).copied().unwrap_or(10), args.get(2).copied().unwrap_or(300));
    hemostat_tests::init();
    let binary = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("hemostat-node");
    assert!(binary.exists(), "build it first: cargo build --release -p hemostat-node ({} missing)", binary.display());

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
    let mut node = Command::new(&binary)
        .args(["--coordinator", &coordinator.endpoint(), "--select-label", &scope.selector()])
        .arg("--certs-dir")
        .arg(certs.path())
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .args(["--poll-interval", &interval.to_string()])
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("hemostat-node starts");
    eventually("node connected", Duration::from_secs(10), || node_connected(&client, "bench")).await;
    tokio::time::sleep(Duration::from_secs(interval)).await; // warm-up: the first poll
    let (start_ticks, started) = (cpu_ticks(node.id()), Instant::now());
    tokio::time::sleep(Duration::from_secs(duration)).await;
    let ticks = cpu_ticks(node.id()) - start_ticks;
    let elapsed = started.elapsed();
    let hwm = status_kib(node.id(), "VmHWM:");
    let rss = status_kib(node.id(), "VmRSS:");
    let _ = node.kill();
    let _ = node.wait();
    let hz = 100.0; // USER_HZ on Linux
    let cpu_seconds = ticks as f64 / hz;
    let samples = containers as f64 * (elapsed.as_secs_f64() / interval as f64);
    println!(
        "node watching {containers} containers every {interval}s for {:.0}s: CPU {:.3}% of one core ({cpu_seconds:.2}s), {:.0} µs per sample; peak RSS {:.1} MiB, RSS now {:.1} MiB",
        elapsed.as_secs_f64(),
        cpu_seconds / elapsed.as_secs_f64() * 100.0,
        cpu_seconds / samples * 1e6,
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );
}
