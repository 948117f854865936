//! Detection to remediation, end to end: from a container's exit to it running again, measured with
//! Docker's own timestamps (`State.FinishedAt` of the crash, `State.StartedAt` of the restart), through a
//! real node and coordinator (mutual TLS, embedded store), on this host's Docker engine.
//!
//! `cargo bench -p hemostat-tests --bench heal_latency -- [crashes] [idle containers]` (default 50 and 0).
//! Each crash is a fresh container that exits 1 once and then stays up, so cooldowns do not interfere.
//! It also reports detection latency: from Docker's `die` event to the alert recorded by the coordinator.

use std::time::{Duration, SystemTime};

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestCoordinator, TestNode, node_connected};
use hemostat_tests::pki::TestPki;

fn parse_time(text: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let crashes = args.first().copied().unwrap_or(50);
    let idle = args.get(1).copied().unwrap_or(0);
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fleet::coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") });
    config.remediation.budget.cooldown = Duration::ZERO;
    // One crash a second or so is what this measures, not a storm: keep the storm breaker out of the way.
    config.remediation.storm.threshold = u32::MAX;
    let coordinator = TestCoordinator::start(config);
    let _node = TestNode::start(fleet::node_config(&pki, "bench", &coordinator.endpoint(), &scope.selector()));
    let client = fleet::operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    eventually("node connected", Duration::from_secs(10), || node_connected(&client, "bench")).await;

    eprintln!("starting {idle} idle containers");
    for i in 0..idle {
        scope.run(&format!("idle{i}"), &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    }

    let mut latencies = Vec::with_capacity(crashes);
    let mut detections = Vec::with_capacity(crashes);
    for i in 0..crashes {
        let name = scope.run(
            &format!("crash{i}"),
            &[],
            "if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; sleep 0.2; exit 1",
        );
        let first_start = scope.state(&name).started_at;
        let state = eventually("restarted", Duration::from_secs(30), || async {
            let state = scope.state(&name);
            if state.status == "running" && state.started_at != first_start {
                Ok(state)
            } else {
                Err(format!("{state:?}"))
            }
        })
        .await;
        let finished = scope.docker(&["inspect", "-f", "{{.State.FinishedAt}}", &name]);
        let latency = parse_time(&state.started_at).duration_since(parse_time(&finished)).unwrap_or_default();
        latencies.push(latency);
        let events = fleet::events_of(&client, &name).await.unwrap();
        let alert = events.iter().find(|e| e.r#type() == pb::EventType::HealthAlert).expect("the alert");
        let observed = hemostat_proto::timestamp::from_proto(alert.observed_at.as_ref().unwrap());
        let recorded = hemostat_proto::timestamp::from_proto(alert.time.as_ref().unwrap());
        detections.push(recorded.duration_since(observed).unwrap_or_default());
        scope.docker(&["rm", "-f", &name]);
    }
    detections.sort();
    println!(
        "detection over {crashes} exits with {idle} idle containers (Docker's die event to the alert recorded by the coordinator): p50 {:?}  p99 {:?}  max {:?}",
        percentile(&detections, 50.0),
        percentile(&detections, 99.0),
        detections.last().unwrap()
    );
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    println!(
        "heal latency over {crashes} crashes with {idle} idle containers: p50 {:?}  p99 {:?}  max {:?}  mean {:?}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().unwrap(),
        mean
    );
}
