//! The coordinator at scale: what it keeps per container (through the real coordinator and a scripted
//! node session), and a storm breaker that tells one host's storm from the fleet's (real nodes, real
//! crashing containers).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hemostat_coordinator::remediation::storm::FleetStorm;
use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestCoordinator, TestNode};
use hemostat_tests::node_peer::NodePeer;
use hemostat_tests::pki::TestPki;
use pb::session_request::Body;

const DEADLINE: Duration = Duration::from_secs(20);

fn container(id: &str) -> pb::ContainerState {
    pb::ContainerState {
        id: id.into(),
        name: id.into(),
        status: pb::ContainerStatus::Running as i32,
        memory_limit_bytes: 512 << 20,
        ..Default::default()
    }
}

fn at(ms: u64) -> prost_types::Timestamp {
    hemostat_proto::timestamp::to_proto(UNIX_EPOCH + Duration::from_millis(ms))
}

fn ms(t: &Option<prost_types::Timestamp>) -> u64 {
    hemostat_proto::timestamp::from_proto(t.as_ref().expect("a time")).duration_since(UNIX_EPOCH).unwrap().as_millis()
        as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn get_container_shows_the_last_240_samples_as_60_points_with_exact_counters() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::Embedded { path: dir.path().join("state.redb") };
    let coordinator = TestCoordinator::start(fleet::coordinator_config(&pki, store));
    let mut node =
        NodePeer::connect(&coordinator.endpoint(), &pki.node("host-s"), "host-s", "s1").await.expect("session");
    node.send(Body::Snapshot(pb::ContainerSnapshot { containers: vec![container("app")], ..Default::default() }))
        .await
        .unwrap();
    // 300 samples a second apart (by their own clock), each with counters that rise by known amounts.
    let t0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 - 300_000;
    let mut last = 0;
    for i in 0..300u64 {
        let sample = pb::ContainerMetrics {
            container_id: "app".into(),
            sampled_at: Some(at(t0 + i * 1000)),
            cpu_percent: Some((i % 4) as f64),
            memory_used_bytes: (100 << 20) + i * 1024,
            memory_limit_bytes: 512 << 20,
            memory_percent: 20.0,
            network_rx_bytes: i * 1000,
            network_tx_bytes: i * 10,
            block_read_bytes: 7,
            block_write_bytes: i * i,
            pids: 3,
            ..Default::default()
        };
        last = node.send(Body::Metrics(pb::MetricsReport { samples: vec![sample] })).await.unwrap();
    }
    node.acked(last, DEADLINE).await.expect("every report acknowledged");

    let mut client = fleet::operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    let got = client
        .get_container(pb::GetContainerRequest { node: "host-s".into(), container: "app".into(), ..Default::default() })
        .await
        .expect("GetContainer")
        .into_inner();
    let points = got.recent_metrics;
    assert_eq!(points.len(), 60, "60 points of 4 samples");
    // The points end at samples 63, 67, ..., 299: the last 240 samples.
    for (k, point) in points.iter().enumerate() {
        let i = 63 + 4 * k as u64;
        assert_eq!(ms(&point.sampled_at), t0 + i * 1000, "point {k} ends at sample {i}");
        assert_eq!((point.network_rx_bytes, point.network_tx_bytes), (i * 1000, i * 10), "point {k}");
        assert_eq!((point.block_read_bytes, point.block_write_bytes), (7, i * i), "point {k}");
        assert_eq!(point.memory_used_bytes, (100 << 20) + i * 1024);
        assert_eq!(point.cpu_percent, Some(1.5), "the mean of 0, 1, 2, 3");
        assert_eq!((point.memory_percent, point.pids, point.memory_limit_bytes), (20.0, 3, 512 << 20));
    }
    let latest = got.container.and_then(|c| c.metrics).expect("the latest sample");
    assert_eq!((ms(&latest.sampled_at), latest.cpu_percent), (t0 + 299_000, Some(3.0)), "the latest, as sent");
}

/// A coordinator and the nodes `host-a` and `host-b`, each watching its own containers on the engine
/// (two Docker hosts as far as HemoStat can tell), with the storm breaker's fleet-wide limits `fleet`.
struct TwoHosts {
    coordinator: TestCoordinator,
    _nodes: Vec<TestNode>,
    scopes: Vec<Scope>,
    client: fleet::FleetClient,
    _dir: tempfile::TempDir,
}

async fn two_hosts(fleet_storm: FleetStorm) -> TwoHosts {
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fleet::coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") });
    config.remediation.fleet_storm = fleet_storm;
    let coordinator = TestCoordinator::start(config);
    let scopes = vec![Scope::new(), Scope::new()];
    let nodes: Vec<TestNode> = ["host-a", "host-b"]
        .iter()
        .zip(&scopes)
        .map(|(name, scope)| {
            TestNode::start(fleet::node_config(&pki, name, &coordinator.endpoint(), &scope.selector()))
        })
        .collect();
    let client = fleet::operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    for name in ["host-a", "host-b"] {
        eventually(&format!("{name} connected"), DEADLINE, || fleet::node_connected(&client, name)).await;
    }
    TwoHosts { coordinator, _nodes: nodes, scopes, client, _dir: dir }
}

/// `count` containers of `scope` that crash together once `/tmp/go` exists in each.
fn crashing(scope: &Scope, base: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count)
        .map(|i| scope.run(&format!("{base}{i}"), &[], "while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 1"))
        .collect();
    for name in &names {
        scope.docker(&["exec", name, "touch", "/tmp/go"]);
    }
    names
}

/// Every event of the fleet, oldest first.
async fn all_events(client: &fleet::FleetClient) -> Result<Vec<pb::Event>, String> {
    let request = pb::ListEventsRequest { page_size: 1000, ..Default::default() };
    Ok(client.clone().list_events(request).await.map_err(|s| s.to_string())?.into_inner().events)
}

/// Waits (60 s at most) until the event log holds a storm event, and returns the storm events.
async fn storms_once_tripped(client: &fleet::FleetClient, what: &str) -> Vec<pb::Event> {
    let events = eventually(what, Duration::from_secs(60), || async {
        let events = all_events(client).await?;
        let storm = events.iter().any(|e| e.r#type() == pb::EventType::Storm);
        if storm { Ok(events) } else { Err(format!("{:?}", fleet::kinds(&events))) }
    })
    .await;
    events.into_iter().filter(|e| e.r#type() == pb::EventType::Storm).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn six_crashes_on_one_host_trip_that_host_only() {
    let fleet = two_hosts(FleetStorm::default()).await;
    let on_a = crashing(&fleet.scopes[0], "a", 6);
    let storms = storms_once_tripped(&fleet.client, "host-a's storm").await;
    assert_eq!(storms.len(), 1, "{storms:?}");
    assert!(storms[0].reason.starts_with("storm in node:host-a: 6 containers"), "{}", storms[0].reason);
    assert_eq!(storms[0].node, "host-a");
    // A crash on host-b meanwhile is remediated as usual: the fleet is not in a storm.
    let on_b = fleet.scopes[1].run("b", &[], "sleep 1; exit 1");
    let healed = fleet::remediated(&fleet.client, &on_b, Duration::from_secs(60)).await;
    assert!(!healed.iter().any(|e| e.rejection == "storm"), "{:?}", fleet::kinds(&healed));
    let events = all_events(&fleet.client).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.r#type() == pb::EventType::Storm).count(), 1, "still only host-a's");
    let actions_on_a = events
        .iter()
        .filter(|e| e.r#type() == pb::EventType::RemediationComplete && on_a.contains(&e.container_name))
        .count();
    assert!(actions_on_a <= 5, "{actions_on_a} actions on host-a");
    drop(fleet.coordinator);
}

#[tokio::test(flavor = "multi_thread")]
async fn crashes_spread_over_hosts_trip_the_fleet_once_past_its_relative_threshold() {
    // No host has more than 5 (the per-node threshold); the fleet's threshold is 5 here (0 % of the
    // watched containers, at least 5), so the sixth container needing remediation anywhere trips it.
    let fleet = two_hosts(FleetStorm { percent: 0.0, minimum: 5 }).await;
    crashing(&fleet.scopes[0], "a", 3);
    crashing(&fleet.scopes[1], "b", 3);
    let storms = storms_once_tripped(&fleet.client, "the fleet's storm").await;
    assert_eq!(storms.len(), 1, "{storms:?}");
    assert!(storms[0].reason.starts_with("storm in fleet: 6 containers"), "{}", storms[0].reason);
    assert!(storms[0].reason.contains("(more than 5)"), "{}", storms[0].reason);
}
