//! The reconnect storm: N real mutual-TLS node sessions of M containers each open at once against a freshly
//! started `hemostat-coordinator` (release build, embedded store, a child process), as after a coordinator
//! restart; measured until every snapshot is acknowledged and until `ListContainers` lists every container.
//!
//! ```sh
//! cargo build --release -p hemostat-coordinator
//! cargo bench -p hemostat-tests --bench reconnect_storm -- 1000 100     # sessions, containers
//! ```
//!
//! Arguments win over `SESSIONS` and `CONTAINERS`; the defaults are 1,000 × 100. Every session starts its
//! TLS handshake, Hello and snapshot at the same moment (no limit on sessions being set up). Goal: all of
//! them connected and listed within 30 s.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hemostat_proto::v1 as pb;
use hemostat_tests::fleet;
use hemostat_tests::loadgen::{self, CoordinatorProcess, LoadGenerator, LoadSettings};
use hemostat_tests::pki::TestPki;

/// Goal: every session connected and every container listed, from the first connection attempt.
const GOAL: Duration = Duration::from_secs(30);

/// A parameter from the positional arguments, else the environment, else its default.
fn parameter(position: usize, name: &str, default: u64) -> anyhow::Result<u64> {
    let from_args = std::env::args().skip(1).filter(|a| !a.starts_with('-')).nth(position);
    match from_args.or_else(|| std::env::var(name).ok()) {
        Some(text) => text.parse().with_context(|| format!("{name} must be a number, not {text:?}")),
        None => Ok(default),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let sessions = parameter(0, "SESSIONS", 1000)? as usize;
    let containers = parameter(1, "CONTAINERS", 100)? as usize;
    if sessions == 0 || containers == 0 {
        bail!("needs at least one session and one container");
    }
    hemostat_tests::init();
    let binary = loadgen::sibling_binary("hemostat-coordinator").map_err(anyhow::Error::msg)?;
    let settings = LoadSettings { setup_concurrency: sessions, ..LoadSettings::new(sessions, containers) };
    let pki = TestPki::new();
    let nodes = loadgen::node_certificates(&pki, "storm", sessions);
    let coordinator = CoordinatorProcess::start(&binary, &pki).map_err(anyhow::Error::msg)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = coordinator.usage().map_err(anyhow::Error::msg)?;
    let load_at_start = loadgen::load_average();

    let storm = Instant::now();
    let generator = LoadGenerator::connect(&coordinator.url(), nodes, settings).await.map_err(anyhow::Error::msg)?;
    let acknowledged = storm.elapsed();
    let after_connect = coordinator.usage().map_err(anyhow::Error::msg)?;
    eprintln!("{sessions} sessions open, every snapshot acknowledged, in {acknowledged:.1?}");

    let files = pki.operator(hemostat_pki::OperatorRole::Viewer);
    let client = fleet::fleet_client_with(&files, coordinator.addr())
        .await
        .map_err(anyhow::Error::msg)?
        .max_decoding_message_size(1 << 30);
    let expected = sessions * containers;
    let (listed_after, list_latency) = loop {
        let asked = Instant::now();
        let request = pb::ListContainersRequest::default();
        let listed =
            client.clone().list_containers(request).await.context("ListContainers")?.into_inner().containers.len();
        let latency = asked.elapsed();
        if listed == expected {
            break (storm.elapsed(), latency);
        }
        if storm.elapsed() > GOAL * 4 {
            bail!("only {listed} of {expected} containers listed after {:.1?}", storm.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let nodes = client.clone().list_nodes(pb::ListNodesRequest::default()).await.context("ListNodes")?.into_inner();
    let connected = nodes.nodes.iter().filter(|n| n.connected).count();
    let load_at_end = loadgen::load_average();
    let verdict = if listed_after <= GOAL && connected == sessions { "met" } else { "missed" };

    println!();
    println!(
        "reconnect storm: {sessions} sessions × {containers} containers opening at once; load average \
         {load_at_start:.2} → {load_at_end:.2}"
    );
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!("| every snapshot acknowledged | {acknowledged:.1?} | |");
    println!("| coordinator CPU until then | {:.1} s | |", after_connect.cpu_seconds - idle.cpu_seconds);
    println!(
        "| every container listed (ListContainers) | {listed_after:.1?} (the listing itself {list_latency:.1?}) \
         | ≤ {GOAL:?}: {verdict} |"
    );
    println!("| nodes connected (ListNodes) | {connected} of {sessions} | all |");
    if let Some(error) = generator.first_error() {
        println!("first session error: {error}");
    }
    generator.stop().await;
    drop(coordinator);
    Ok(())
}
