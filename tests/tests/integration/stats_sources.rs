//! Where the node reads container stats (`NODE_STATS_SOURCE`): the figures read from the container's cgroup
//! files and network counters agree with the Engine API's for a busy and an idle container on the real
//! engine, and the real node reports `docker stats`' figures from either source, through a restart.

use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::query_parameters::StatsOptions;
use futures::StreamExt;
use hemostat_node::cgroup::Host;
use hemostat_node::metrics::{self, Reading};
use hemostat_node::poller::StatsSource;
use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, container, free_metrics_addr, metric, scrape};

/// Half a core, steadily (CFS quota), and about 30 MB held by the shell, under a 64 MiB limit.
const BUSY: &str = "x=$(head -c 30000000 /dev/zero | tr '\\0' a); while :; do :; done";
const IDLE: &str = "trap 'exit 0' TERM; sleep 86400 & wait";

async fn engine_reading(docker: &Docker, name: &str) -> Reading {
    let options = StatsOptions { stream: false, one_shot: true };
    let stats = docker.stats(name, Some(options)).next().await.expect("a stats answer").expect("stats");
    Reading::from_engine(&stats)
}

fn percent(text: &str) -> f64 {
    text.trim().trim_end_matches('%').parse().unwrap_or_else(|_| panic!("not a percentage: {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn cgroup_figures_agree_with_the_engine_api_for_a_busy_and_an_idle_container() {
    hemostat_tests::init();
    let scope = Scope::new();
    let busy = scope.run("busy", &["--cpus", "0.5", "--memory", "64m"], BUSY);
    let idle = scope.run("idle", &[], IDLE);
    let docker = Docker::connect_with_defaults().unwrap();
    let host = Host::new().expect("this machine's cgroup mounts are readable");
    let mut buf = String::new();
    for name in [&busy, &idle] {
        let pid: u32 = scope.docker(&["inspect", "-f", "{{.State.Pid}}", name]).parse().unwrap();
        let location = host.locate(pid, true).expect("the container's cgroup");
        let read = |buf: &mut String| {
            let system = host.system_cpu(buf).unwrap();
            host.read(&location, system, buf).unwrap()
        };
        if name == &busy {
            eventually("busy holds its 30 MB", Duration::from_secs(20), || {
                let used = metrics::compute(&read(&mut String::new()), None).memory_used;
                async move { if used > 28_000_000 { Ok(()) } else { Err(format!("{used} bytes")) } }
            })
            .await;
        }
        // Each source read twice, back to back, over the same two seconds.
        let (engine_0, ours_0) = (engine_reading(&docker, name).await, read(&mut buf));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (engine_1, ours_1) = (engine_reading(&docker, name).await, read(&mut buf));

        // The system CPU time is the daemon's: /proc/stat's first seven fields.
        let skew = ours_1.cpu.system.checked_sub(engine_1.cpu.system);
        assert!(
            skew.is_some_and(|s| s < 5_000_000_000),
            "{name}: system CPU ours {:?} engine {:?}",
            ours_1.cpu,
            engine_1.cpu
        );
        assert_eq!(ours_1.online_cpus, engine_1.online_cpus, "{name}: CPUs");
        let engine = metrics::compute(&engine_1, Some(engine_0.cpu));
        let ours = metrics::compute(&ours_1, Some(ours_0.cpu));
        let (ours_cpu, engine_cpu) = (ours.cpu_percent.unwrap(), engine.cpu_percent.unwrap());
        assert!((ours_cpu - engine_cpu).abs() <= 5.0, "{name}: CPU ours {ours_cpu:.2} %, engine {engine_cpu:.2} %");
        if name == &busy {
            // At most half a core (its quota); less when the machine is busy, but never idle.
            assert!(ours_cpu > 5.0 && ours_cpu < 55.0, "busy: up to half a core, not {ours_cpu:.2} %");
        } else {
            assert!(ours_cpu < 5.0, "idle: {ours_cpu:.2} %");
        }
        let used_diff = (ours.memory_used as i64 - engine.memory_used as i64).abs();
        assert!(used_diff < 2 << 20, "{name}: memory ours {} engine {}", ours.memory_used, engine.memory_used);
        assert_eq!(ours.memory_limit, engine.memory_limit, "{name}: memory limit");
        assert_eq!(ours.pids, engine.pids, "{name}: pids");
        let near = |a: u64, b: u64| a.abs_diff(b) <= 1024;
        assert!(
            near(ours.network_rx_bytes, engine.network_rx_bytes)
                && near(ours.network_tx_bytes, engine.network_tx_bytes),
            "{name}: network ours {}/{} engine {}/{}",
            ours.network_rx_bytes,
            ours.network_tx_bytes,
            engine.network_rx_bytes,
            engine.network_tx_bytes
        );
        assert!(
            near(ours.block_read_bytes, engine.block_read_bytes)
                && near(ours.block_write_bytes, engine.block_write_bytes),
            "{name}: block I/O ours {}/{} engine {}/{}",
            ours.block_read_bytes,
            ours.block_write_bytes,
            engine.block_read_bytes,
            engine.block_write_bytes
        );
    }
    assert_eq!(metrics::compute(&engine_reading(&docker, &busy).await, None).memory_limit, 64 << 20);
}

/// The real node with `source`: the busy container's CPU and memory as `docker stats` shows them, every
/// sample from `source`, and samples again after the container restarts.
async fn the_node_reports_docker_stats_figures_from(source: StatsSource) {
    let addr = free_metrics_addr();
    let s = TestFleet::start_with(
        |_| {},
        |node| {
            node.stats_source = source;
            node.metrics_listen = Some(addr);
        },
    )
    .await;
    let busy = s.scope.run("busy", &["--cpus", "0.5", "--memory", "64m"], BUSY);
    let busy_after = |since: SystemTime| {
        let (client, busy) = (&s.client, &busy);
        eventually("busy's CPU above 5 % and memory above 30 %", Duration::from_secs(30), move || async move {
            let m = container(client, busy).await?.metrics.ok_or("no metrics")?;
            let sampled =
                m.sampled_at.map(|t| SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32));
            let fresh = sampled.is_some_and(|t| t > since);
            if fresh && m.cpu_percent.unwrap_or(0.0) > 5.0 && m.memory_percent > 30.0 {
                Ok(m)
            } else {
                Err(format!("{m:?}"))
            }
        })
    };
    busy_after(SystemTime::UNIX_EPOCH).await;
    // The CPU a busy container gets varies with the machine's load, and docker stats samples its own
    // second: a sample of ours and docker stats' agree within 5 points at some point within the deadline.
    eventually("our figures agree with docker stats", Duration::from_secs(30), || async {
        let docker = s.scope.docker(&["stats", "--no-stream", "--format", "{{.CPUPerc}}|{{.MemPerc}}", &busy]);
        let ours = container(&s.client, &busy).await?.metrics.ok_or("no metrics")?;
        let (cpu, mem) = docker.split_once('|').unwrap();
        let (cpu, mem) = (percent(cpu), percent(mem));
        let ours_cpu = ours.cpu_percent.unwrap_or(0.0);
        if (ours_cpu - cpu).abs() <= 5.0 && (ours.memory_percent - mem).abs() <= 2.0 {
            Ok(())
        } else {
            Err(format!(
                "CPU ours {ours_cpu:.2} docker stats {cpu}; memory ours {:.2} docker stats {mem}",
                ours.memory_percent
            ))
        }
    })
    .await;
    assert_eq!(container(&s.client, &busy).await.unwrap().metrics.unwrap().memory_limit_bytes, 64 << 20);

    // A restart: another init process, which the cgroup source finds again.
    s.scope.docker(&["restart", "-t", "0", &busy]);
    let restarted = SystemTime::now();
    busy_after(restarted).await;

    let text = scrape(addr).await.unwrap();
    let samples = |source: &str| metric(&text, &format!("hemostat_node_samples_total{{source=\"{source}\"}}"));
    let (wanted, other) = match source {
        StatsSource::Engine => ("engine", "cgroup"),
        _ => ("cgroup", "engine"),
    };
    assert!(samples(wanted).is_some_and(|n| n >= 4.0), "samples from {wanted}: {:?}", samples(wanted));
    assert_eq!(samples(other), None, "no sample from {other}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_reading_cgroup_files_reports_docker_stats_figures_through_a_restart() {
    the_node_reports_docker_stats_figures_from(StatsSource::Cgroup).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_asking_the_engine_reports_docker_stats_figures_through_a_restart() {
    the_node_reports_docker_stats_figures_from(StatsSource::Engine).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_reads_the_cgroup_files_where_they_are_readable() {
    the_node_reports_docker_stats_figures_from(StatsSource::Auto).await;
}
