//! The coordinator at scale: what it keeps per container, through the real coordinator and a scripted
//! node session.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::fleet::{self, TestCoordinator};
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
