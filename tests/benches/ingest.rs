//! Coordinator ingest: N real mutual-TLS node sessions, each streaming one metrics report a second with a
//! sample of each of its M containers, into real `hemostat-coordinator` processes (release build, child
//! processes, so their CPU time and memory come from /proc) on the store `STORE` names.
//!
//! ```sh
//! cargo build --release -p hemostat-coordinator
//! cargo bench -p hemostat-tests --bench ingest -- 1000 100 60     # sessions, containers, seconds
//! SESSIONS=100 CONTAINERS=100 SECONDS=60 cargo bench -p hemostat-tests --bench ingest
//! STORE=redis COORDINATORS=2 cargo bench -p hemostat-tests --bench ingest -- 1000 100 60
//! STORE=cluster COORDINATORS=2 cargo bench -p hemostat-tests --bench ingest -- 1000 100 60
//! ```
//!
//! Arguments win over the environment; the defaults are 1,000 sessions × 100 containers for 60 s, after a
//! warm-up of `WARMUP` seconds (default 15). `STORE`: `embedded` (default), `redis` (one redis-server of the
//! test kit, append-only on) or `cluster` (a Redis Cluster of 3 masters with a replica each);
//! `COORDINATORS`: coordinator processes on that store (default 1; more only on a Redis), the sessions
//! split evenly between them (session i to coordinator i mod n). Reported:
//! - sustained samples per second acknowledged by the coordinators over the measured window (acks carry
//!   sequence numbers, so a sample counts once the report that carried it is acknowledged);
//! - coordinator CPU time per sample: user + system CPU of the coordinator processes, summed, over the window
//!   / samples acknowledged in it (everything the coordinators do in that time is charged to the samples);
//! - memory per session: (RSS summed over the coordinators with N sessions − their idle RSS summed) / N, once
//!   right after every session's snapshot was acknowledged and once at the end of the window;
//! - backlog: samples sent and not yet acknowledged, every second of the window, and whether it grows;
//! - on a Redis, over the window: redis-server CPU (% of a core, summed over the servers), operations/s,
//!   network bytes in and out a second, memory, and the most called commands (`INFO commandstats` deltas);
//!   for a cluster, the masters and all servers (replicas apply the replication stream);
//! - after the window, for each coordinator: `ListContainers`' first page (page size 0: at most 1,000)
//!   asked for 20 times, p50 and max, checked full and with a next page token that gives the second page;
//!   then every page followed to the end, to check that it lists every container with a fresh sample.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hemostat_coordinator::directory::{METRICS_REFRESH, PUBLISH_INTERVAL};
use hemostat_proto::v1 as pb;
use hemostat_tests::bench_store::{BenchStore, StoreActivity, StoreKind};
use hemostat_tests::fleet;
use hemostat_tests::loadgen::{
    self, CoordinatorProcess, FirstPageProbe, LoadGenerator, LoadSettings, LoadTotals, ProcessUsage,
};
use hemostat_tests::pki::TestPki;

/// Goal: coordinator CPU per sample, µs.
const CPU_PER_SAMPLE_GOAL_US: f64 = 10.0;
/// Goal: memory per session, KiB.
const MEMORY_PER_SESSION_GOAL_KIB: f64 = 64.0;
/// How old a listed sample may be: a coordinator lists its own sessions' latest samples, and the others'
/// from the fleet directory, whose entries carry metrics at most [`METRICS_REFRESH`] old, published every
/// [`PUBLISH_INTERVAL`]; one second more for the page's own time.
const FRESH: Duration = METRICS_REFRESH.saturating_add(PUBLISH_INTERVAL).saturating_add(Duration::from_secs(1));
/// Times the first page is asked for, per coordinator.
const FIRST_PAGE_ASKS: usize = 20;

/// A parameter from the positional arguments (`position`, if it has one), else the environment, else its
/// default.
fn parameter(position: Option<usize>, name: &str, default: u64) -> anyhow::Result<u64> {
    let from_args = position.and_then(|p| std::env::args().skip(1).filter(|a| !a.starts_with('-')).nth(p));
    match from_args.or_else(|| std::env::var(name).ok()) {
        Some(text) => text.parse().with_context(|| format!("{name} must be a number, not {text:?}")),
        None => Ok(default),
    }
}

/// One second of the measured window.
struct Tick {
    at: Duration,
    totals: LoadTotals,
    coordinator: ProcessUsage,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The least-squares slope of `points` (x seconds, y samples), samples per second.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// What a coordinator says it knows, after the load.
struct CoordinatorView {
    containers: usize,
    nodes: usize,
    fresh: usize,
    pages: usize,
}

/// Asks a coordinator (as a viewer) for every container, page after page, to check that the fleet kept every
/// node's containers and their latest samples: a figure is worth nothing if the samples were acknowledged
/// and dropped. A coordinator lists the containers of its own sessions from its registry and those of the
/// other coordinators' from the fleet directory.
async fn coordinator_view(client: &fleet::FleetClient) -> anyhow::Result<CoordinatorView> {
    let asked = Instant::now();
    let pages = fleet::container_pages(client).await.map_err(anyhow::Error::msg)?;
    // A sample is fresh if taken within FRESH before its page was asked for.
    let fresh = pages
        .iter()
        .map(|page| {
            let recent = page.asked_at - FRESH;
            page.containers
                .iter()
                .filter_map(|c| c.metrics.as_ref()?.sampled_at.as_ref())
                .filter(|at| hemostat_proto::timestamp::from_proto(at) >= recent)
                .count()
        })
        .sum();
    let containers: Vec<&pb::Container> = pages.iter().flat_map(|p| &p.containers).collect();
    let nodes: BTreeSet<&str> = containers.iter().map(|c| c.node.as_str()).collect();
    eprintln!("ListContainers: {} containers in {} pages, {:.1?}", containers.len(), pages.len(), asked.elapsed());
    Ok(CoordinatorView { containers: containers.len(), nodes: nodes.len(), fresh, pages: pages.len() })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let sessions = parameter(Some(0), "SESSIONS", 1000)? as usize;
    let containers = parameter(Some(1), "CONTAINERS", 100)? as usize;
    let seconds = parameter(Some(2), "SECONDS", 60)?;
    let warmup = parameter(Some(3), "WARMUP", 15)?;
    let coordinator_count = parameter(None, "COORDINATORS", 1)? as usize;
    if sessions == 0 || containers == 0 || seconds < 2 {
        bail!("needs at least one session, one container and two seconds");
    }
    let store_kind = StoreKind::from_env().map_err(anyhow::Error::msg)?;
    store_kind.check_coordinators(coordinator_count).map_err(anyhow::Error::msg)?;
    hemostat_tests::init();
    let binary = loadgen::sibling_binary("hemostat-coordinator").map_err(anyhow::Error::msg)?;
    let settings = LoadSettings::new(sessions, containers);
    let per_report = containers as u64;
    let me = std::process::id();

    let pki = TestPki::new();
    let issuing = Instant::now();
    let nodes = loadgen::node_certificates(&pki, "load", sessions);
    eprintln!("issued {sessions} node certificates in {:.1?}", issuing.elapsed());

    let store = BenchStore::start(store_kind);
    let coordinators = store.start_coordinators(&binary, &pki, coordinator_count).map_err(anyhow::Error::msg)?;
    let pids: Vec<u32> = coordinators.iter().map(CoordinatorProcess::pid).collect();
    eprintln!("{}: coordinator {} running as pid {pids:?}", store_kind.describe(), binary.display());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let usage = || CoordinatorProcess::usage_of_all(&coordinators).map_err(anyhow::Error::msg);
    let idle = usage()?;

    let connecting = Instant::now();
    let urls: Vec<String> = coordinators.iter().map(CoordinatorProcess::url).collect();
    let generator = LoadGenerator::connect(&urls, nodes, settings.clone()).await.map_err(anyhow::Error::msg)?;
    let connect_time = connecting.elapsed();
    let after_connect = usage()?;
    eprintln!(
        "{sessions} sessions open, every snapshot acknowledged, in {connect_time:.1?} (coordinator CPU {:.1} s)",
        after_connect.cpu_seconds - idle.cpu_seconds
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = usage()?;

    generator.start_reports();
    eprintln!("reports started: warm-up {warmup} s, then {seconds} s measured");
    tokio::time::sleep(Duration::from_secs(warmup)).await;

    let load_at_start = loadgen::load_average();
    let window_start = Instant::now();
    let generator_start = loadgen::process_usage(me).map_err(anyhow::Error::msg)?;
    let store_start = store.counters().map_err(anyhow::Error::msg)?;
    let mut ticks: Vec<Tick> = Vec::with_capacity(seconds as usize + 1);
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    for second in 0..=seconds {
        every_second.tick().await;
        let tick = Tick { at: window_start.elapsed(), totals: generator.totals(), coordinator: usage()? };
        if second > 0 && second % 10 == 0 {
            let earlier = &ticks[ticks.len() - 10];
            let Tick { at, totals, coordinator: usage } = &tick;
            let dt = (*at - earlier.at).as_secs_f64();
            eprintln!(
                "{second:>4} s: {:>9.0} samples/s acknowledged, backlog {:>7} samples, behind schedule {:>5} reports, \
                 coordinator CPU {:>5.1} % of a core, RSS {:>7.1} MiB, load {:.2}",
                (totals.reports_acked - earlier.totals.reports_acked) as f64 * per_report as f64 / dt,
                (totals.reports_sent - totals.reports_acked) * per_report,
                totals.reports_due - totals.reports_sent,
                (usage.cpu_seconds - earlier.coordinator.cpu_seconds) / dt * 100.0,
                mib(usage.rss_kib),
                loadgen::load_average(),
            );
        }
        ticks.push(tick);
    }
    let generator_end = loadgen::process_usage(me).map_err(anyhow::Error::msg)?;
    let store_end = store.counters().map_err(anyhow::Error::msg)?;
    let load_at_end = loadgen::load_average();
    let (first, last) = (&ticks[0], &ticks[ticks.len() - 1]);
    let window = (last.at - first.at).as_secs_f64();
    let samples = (last.totals.reports_acked - first.totals.reports_acked) * per_report;
    let cpu = last.coordinator.cpu_seconds - first.coordinator.cpu_seconds;
    let cpu_per_sample_us = cpu / samples.max(1) as f64 * 1e6;
    let per_session = |usage: &ProcessUsage| (usage.rss_kib as f64 - idle.rss_kib as f64) / sessions as f64;
    let backlog: Vec<(f64, f64)> = ticks
        .iter()
        .map(|t| (t.at.as_secs_f64(), ((t.totals.reports_sent - t.totals.reports_acked) * per_report) as f64))
        .collect();
    let backlog_slope = slope(&backlog);
    let backlog_max = backlog.iter().map(|p| p.1).fold(0.0, f64::max);
    let quarter = (backlog.len() / 4).max(1);
    let mean = |points: &[(f64, f64)]| points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let backlog_growth = mean(&backlog[backlog.len() - quarter..]) - mean(&backlog[..quarter]);
    let behind = last.totals.reports_due - last.totals.reports_sent;
    let ended = last.totals.sessions_ended;
    let generator_cpu = (generator_end.cpu_seconds - generator_start.cpu_seconds) / window * 100.0;
    let rate = samples as f64 / window;
    let offered = settings.offered_samples_per_second();

    println!();
    println!(
        "coordinator ingest: {sessions} sessions × {containers} containers, one report a second, {window:.0} s measured \
         after {warmup} s of warm-up, on the {} with {coordinator_count} coordinator(s); load average \
         {load_at_start:.2} at the start, {load_at_end:.2} at the end",
        store_kind.describe()
    );
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!("| samples offered | {offered:.0}/s | |");
    println!("| samples acknowledged (sustained) | {rate:.0}/s ({:.1} % of offered) | all |", rate / offered * 100.0);
    println!(
        "| coordinator CPU, summed over {coordinator_count} | {:.1} % of one core ({cpu:.2} s in {window:.0} s) | |",
        cpu / window * 100.0
    );
    let cpu_verdict = if cpu_per_sample_us <= CPU_PER_SAMPLE_GOAL_US {
        "met".to_owned()
    } else {
        format!("missed, {:.1}× the goal", cpu_per_sample_us / CPU_PER_SAMPLE_GOAL_US)
    };
    println!(
        "| coordinator CPU per sample | {cpu_per_sample_us:.2} µs | ≤ {CPU_PER_SAMPLE_GOAL_US} µs: {cpu_verdict} |"
    );
    println!(
        "| coordinator RSS, summed: idle / {sessions} sessions connected / end | {:.1} / {:.1} / {:.1} MiB (peak {:.1}) \
         | |",
        mib(idle.rss_kib),
        mib(connected.rss_kib),
        mib(last.coordinator.rss_kib),
        mib(last.coordinator.peak_rss_kib)
    );
    for (when, usage) in [("after connect + snapshot", &connected), ("at the end of the window", &last.coordinator)] {
        let kib = per_session(usage);
        let verdict = if kib <= MEMORY_PER_SESSION_GOAL_KIB {
            "met".to_owned()
        } else {
            format!("missed, {:.1}× the goal", kib / MEMORY_PER_SESSION_GOAL_KIB)
        };
        println!("| memory per session, {when} | {kib:.1} KiB | ≤ {MEMORY_PER_SESSION_GOAL_KIB} KiB: {verdict} |");
    }
    let backlog_verdict = if backlog_growth < per_report as f64 * sessions as f64 && behind <= sessions as u64 {
        "no growth"
    } else {
        "GROWS"
    };
    println!(
        "| backlog (sent, not acknowledged) | first {:.0}, max {backlog_max:.0}, last {:.0} samples; slope {backlog_slope:.1} \
         samples/s; last quarter − first quarter {backlog_growth:.0} | no growth: {backlog_verdict} |",
        backlog[0].1,
        backlog[backlog.len() - 1].1,
    );
    println!("| reports behind schedule at the end | {behind} | 0 |");
    println!("| sessions ended early | {ended} | 0 |");
    println!(
        "| set-up: sessions open, snapshots acknowledged | {connect_time:.1?} (coordinator CPU {:.1} s) | |",
        after_connect.cpu_seconds - idle.cpu_seconds
    );
    println!("| load generator CPU (this process) | {generator_cpu:.1} % of one core | |");
    for row in StoreActivity::between(&store_start, &store_end, window).table_rows(8) {
        println!("{row}");
    }
    let expected = sessions * containers;
    let files = pki.operator(hemostat_pki::OperatorRole::Viewer);
    for (index, coordinator) in coordinators.iter().enumerate() {
        let client = fleet::fleet_client_with(&files, coordinator.addr())
            .await
            .map_err(anyhow::Error::msg)?
            .max_decoding_message_size(64 << 20);
        let probe = FirstPageProbe::run(&client, FIRST_PAGE_ASKS).await.map_err(anyhow::Error::msg)?;
        println!("{}", probe.table_row(index, expected));
        let view = coordinator_view(&client).await?;
        println!(
            "| coordinator {index}: containers listed (every page of ListContainers) | {} of {expected} in {} pages, \
             on {} of {sessions} nodes; {} with a sample from the last {} s | all |",
            view.containers,
            view.pages,
            view.nodes,
            view.fresh,
            FRESH.as_secs()
        );
    }
    if let Some(error) = generator.first_error() {
        println!("first session error: {error}");
    }
    generator.stop().await;
    drop(coordinators);
    drop(store);
    Ok(())
}
