//! The reconnect storm: N real mutual-TLS node sessions of M containers each open at once against freshly
//! started `hemostat-coordinator` processes (release build, child processes) on the store `STORE` names, as
//! after a coordinator restart; measured until every snapshot is acknowledged and until every coordinator's
//! `ListContainers`, followed page by page, lists every container.
//!
//! ```sh
//! cargo build --release -p hemostat-coordinator
//! cargo bench -p hemostat-tests --bench reconnect_storm -- 1000 100     # sessions, containers
//! STORE=redis COORDINATORS=2 cargo bench -p hemostat-tests --bench reconnect_storm -- 1000 100
//! STORE=cluster COORDINATORS=2 cargo bench -p hemostat-tests --bench reconnect_storm -- 1000 100
//! ```
//!
//! Arguments win over `SESSIONS` and `CONTAINERS`; the defaults are 1,000 × 100. `STORE`: `embedded`
//! (default), `redis` (one redis-server of the test kit, append-only on) or `cluster` (a Redis Cluster of 3
//! masters with a replica each); `COORDINATORS`: coordinator processes on that store (default 1; more only on
//! a Redis), the sessions split evenly between them (session i to coordinator i mod n). Every session starts
//! its TLS handshake, Hello and snapshot at the same moment (no limit on sessions being set up). Goal: all of
//! them connected and listed, by every coordinator, within 30 s. Then, per coordinator, `ListContainers`'
//! first page (page size 0: at most 1,000) is asked for 20 times (p50 and max; goal ≤ 100 ms), checked full
//! and with a next page token that gives the second page; on a Redis, what the servers did during the storm.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hemostat_tests::bench_store::{BenchStore, StoreActivity, StoreKind};
use hemostat_tests::fleet::{self, FleetClient};
use hemostat_tests::loadgen::{self, CoordinatorProcess, FirstPageProbe, LoadGenerator, LoadSettings};
use hemostat_tests::pki::TestPki;

/// Goal: every session connected and every container listed, from the first connection attempt.
const GOAL: Duration = Duration::from_secs(30);
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

/// Containers `client`'s coordinator lists, every page followed, and how long the whole listing took.
async fn listed(client: &FleetClient) -> anyhow::Result<(usize, Duration)> {
    let pages = fleet::container_pages(client).await.map_err(anyhow::Error::msg)?;
    Ok((pages.iter().map(|p| p.containers.len()).sum(), pages.iter().map(|p| p.latency).sum()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let sessions = parameter(Some(0), "SESSIONS", 1000)? as usize;
    let containers = parameter(Some(1), "CONTAINERS", 100)? as usize;
    let coordinator_count = parameter(None, "COORDINATORS", 1)? as usize;
    if sessions == 0 || containers == 0 {
        bail!("needs at least one session and one container");
    }
    let store_kind = StoreKind::from_env().map_err(anyhow::Error::msg)?;
    store_kind.check_coordinators(coordinator_count).map_err(anyhow::Error::msg)?;
    hemostat_tests::init();
    let binary = loadgen::sibling_binary("hemostat-coordinator").map_err(anyhow::Error::msg)?;
    let settings = LoadSettings { setup_concurrency: sessions, ..LoadSettings::new(sessions, containers) };
    let pki = TestPki::new();
    let nodes = loadgen::node_certificates(&pki, "storm", sessions);
    let store = BenchStore::start(store_kind);
    let coordinators = store.start_coordinators(&binary, &pki, coordinator_count).map_err(anyhow::Error::msg)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let usage = || CoordinatorProcess::usage_of_all(&coordinators).map_err(anyhow::Error::msg);
    let idle = usage()?;
    let files = pki.operator(hemostat_pki::OperatorRole::Viewer);
    let mut clients = Vec::new();
    for coordinator in &coordinators {
        let client = fleet::fleet_client_with(&files, coordinator.addr()).await.map_err(anyhow::Error::msg)?;
        clients.push(client.max_decoding_message_size(64 << 20));
    }
    let load_at_start = loadgen::load_average();
    let store_start = store.counters().map_err(anyhow::Error::msg)?;

    let storm = Instant::now();
    let urls: Vec<String> = coordinators.iter().map(CoordinatorProcess::url).collect();
    let generator = LoadGenerator::connect(&urls, nodes, settings).await.map_err(anyhow::Error::msg)?;
    let acknowledged = storm.elapsed();
    let after_connect = usage()?;
    eprintln!("{sessions} sessions open, every snapshot acknowledged, in {acknowledged:.1?}");

    // Every coordinator lists its own sessions' containers from its registry and the others' from the fleet
    // directory: the storm is over once every one of them lists every container.
    let expected = sessions * containers;
    let mut listed_after = Vec::with_capacity(clients.len());
    for (index, client) in clients.iter().enumerate() {
        let (after, listing) = loop {
            let (count, listing) = listed(client).await?;
            if count == expected {
                break (storm.elapsed(), listing);
            }
            if storm.elapsed() > GOAL * 4 {
                bail!("coordinator {index} lists only {count} of {expected} containers after {:.1?}", storm.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        listed_after.push((after, listing));
    }
    let store_end = store.counters().map_err(anyhow::Error::msg)?;
    let storm_seconds = storm.elapsed().as_secs_f64();
    let after_listed = usage()?;
    let mut node_counts = Vec::with_capacity(clients.len());
    for client in &clients {
        let nodes = fleet::all_nodes(client).await.map_err(anyhow::Error::msg)?;
        node_counts.push((nodes.len(), nodes.iter().filter(|n| n.connected).count()));
    }
    let mut probes = Vec::with_capacity(clients.len());
    for client in &clients {
        probes.push(FirstPageProbe::run(client, FIRST_PAGE_ASKS).await.map_err(anyhow::Error::msg)?);
    }
    let load_at_end = loadgen::load_average();
    let all_listed = listed_after.iter().map(|(after, _)| *after).max().unwrap_or_default();
    let all_connected = node_counts.iter().all(|(listed, connected)| *listed == sessions && *connected == sessions);
    let verdict = if all_listed <= GOAL && all_connected { "met" } else { "missed" };

    println!();
    println!(
        "reconnect storm: {sessions} sessions × {containers} containers opening at once, on the {} with \
         {coordinator_count} coordinator(s); load average {load_at_start:.2} → {load_at_end:.2}",
        store_kind.describe()
    );
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!("| every snapshot acknowledged | {acknowledged:.1?} | |");
    println!(
        "| coordinator CPU, summed: until then / until every container listed | {:.1} s / {:.1} s | |",
        after_connect.cpu_seconds - idle.cpu_seconds,
        after_listed.cpu_seconds - idle.cpu_seconds
    );
    for (index, (after, listing)) in listed_after.iter().enumerate() {
        println!(
            "| coordinator {index}: every container listed (ListContainers, every page) | {after:.1?} (the listing \
             itself {listing:.1?}) | ≤ {GOAL:?} |"
        );
    }
    println!("| every coordinator lists every container | {all_listed:.1?} | ≤ {GOAL:?}: {verdict} |");
    for (index, (listed, connected)) in node_counts.iter().enumerate() {
        println!(
            "| coordinator {index}: nodes listed / connected (ListNodes) | {listed} / {connected} of {sessions} | all |"
        );
    }
    for (index, probe) in probes.iter().enumerate() {
        println!("{}", probe.table_row(index, expected));
    }
    for row in StoreActivity::between(&store_start, &store_end, storm_seconds).table_rows(8) {
        println!("{row}");
    }
    if let Some(error) = generator.first_error() {
        println!("first session error: {error}");
    }
    generator.stop().await;
    drop(coordinators);
    drop(store);
    Ok(())
}
