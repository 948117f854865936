//! The fleet directory of coordinators sharing one Redis, from an operator's side: either coordinator lists
//! the whole fleet in pages (its own nodes from memory, the other's from the directory, one node at a time),
//! its dashboard's overview counts the whole fleet and shows the other's containers that need attention, a
//! change on a node of the other coordinator shows within a few publication intervals (it is published at
//! once, not at the next metrics refresh), and metrics that are all that changed are at most the refresh
//! period old. A node that a coordinator of an earlier version published (a whole entry, no summary) is
//! listed too. Nodes are the test kit's [`NodePeer`]s sending real messages over mutual TLS to real
//! coordinators.

use std::time::{Duration, SystemTime};

use hemostat_coordinator::dashboard::DashboardConfig;
use hemostat_coordinator::dashboard::auth::DashboardTokens;
use hemostat_coordinator::directory::{METRICS_REFRESH, PUBLISH_INTERVAL};
use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, FleetClient, TestCoordinator};
use hemostat_tests::node_peer::{NodePeer, container};
use hemostat_tests::pki::TestPki;
use hemostat_tests::redis::RedisServer;
use pb::session_request::Body;

/// The id of container `i` of `node`.
fn id(node: &str, i: usize) -> String {
    format!("{:0>64}", format!("{node}{i}").bytes().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Opens `node`'s session with `coordinator` and reports `count` running containers `app-000`....
async fn node(pki: &TestPki, coordinator: &TestCoordinator, node: &str, count: usize) -> NodePeer {
    let mut peer = NodePeer::connect(&coordinator.endpoint(), &pki.node(node), node, "s1").await.unwrap();
    let containers = (0..count).map(|i| container(&id(node, i), &format!("app-{i:03}"), &[])).collect();
    let snapshot = pb::ContainerSnapshot { containers, part: 0, more: false };
    peer.send_acked(Body::Snapshot(snapshot), Duration::from_secs(10)).await.unwrap();
    peer
}

/// Every container `client`'s coordinator lists, page by page of `size`, as (node, name).
async fn every_container(client: &FleetClient, size: u32) -> Result<Vec<(String, String)>, String> {
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let request = pb::ListContainersRequest { page_size: size, page_token: token, ..Default::default() };
        let page = client.clone().list_containers(request).await.map_err(|e| e.to_string())?.into_inner();
        if page.containers.len() > size as usize {
            return Err(format!("a page of {} for a size of {size}", page.containers.len()));
        }
        seen.extend(page.containers.into_iter().map(|c| (c.node, c.state.unwrap_or_default().name)));
        token = page.next_page_token;
        if token.is_empty() {
            return Ok(seen);
        }
    }
}

/// The overview of the dashboard at `addr`, as JSON.
async fn overview(addr: std::net::SocketAddr) -> Result<serde_json::Value, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let request = format!("GET /api/overview HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.to_owned());
    }
    serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn either_coordinator_pages_through_the_whole_fleet_and_its_overview_counts_and_shows_the_others_nodes() {
    hemostat_tests::init();
    let (pki, redis) = (TestPki::new(), RedisServer::start());
    let dashboard = std::net::SocketAddr::from(([127, 0, 0, 1], hemostat_tests::redis::free_port()));
    let config = || fleet::coordinator_config(&pki, StoreConfig::Redis { url: redis.url() });
    let one = TestCoordinator::start(hemostat_coordinator::config::CoordinatorConfig {
        dashboard: Some(DashboardConfig::new(dashboard, DashboardTokens::default()).unwrap()),
        ..config()
    });
    let two = TestCoordinator::start(config());
    let _a = node(&pki, &one, "node-a", 250).await;
    let _c = node(&pki, &one, "node-c", 50).await;
    let mut b = node(&pki, &two, "node-b", 300).await;
    let viewer_one = fleet::operator(&pki, OperatorRole::Viewer, one.addr()).await;
    let viewer_two = fleet::operator(&pki, OperatorRole::Viewer, two.addr()).await;

    // Either coordinator reads the 600 containers once, by node then name, in pages of 70 that cross from
    // its own nodes to the other's and back.
    let mut expected: Vec<(String, String)> = Vec::new();
    for (node, count) in [("node-a", 250), ("node-b", 300), ("node-c", 50)] {
        expected.extend((0..count).map(|i| (node.to_owned(), format!("app-{i:03}"))));
    }
    for client in [&viewer_one, &viewer_two] {
        eventually("the whole fleet listed", Duration::from_secs(15), || async {
            let seen = every_container(client, 70).await?;
            if seen == expected { Ok(()) } else { Err(format!("{} containers", seen.len())) }
        })
        .await;
    }

    // A container of node-b stops: coordinator one lists it stopped within a few publications (a change is
    // published at once, whatever the metrics refresh), and its overview counts the fleet and lists it first.
    let mut stopped = container(&id("node-b", 123), "app-123", &[]);
    stopped.status = pb::ContainerStatus::Exited as i32;
    let event = pb::ContainerEvent {
        kind: pb::ContainerEventKind::Exited as i32,
        container: Some(stopped),
        ..Default::default()
    };
    b.send_acked(Body::ContainerEvent(event), Duration::from_secs(5)).await.unwrap();
    let seen = eventually("coordinator one to see app-123 of node-b stopped", PUBLISH_INTERVAL * 4, || async {
        let request = pb::ListContainersRequest { node: "node-b".into(), page_size: 1000, ..Default::default() };
        let page = viewer_one.clone().list_containers(request).await.map_err(|e| e.to_string())?.into_inner();
        let state = page.containers.iter().filter_map(|c| c.state.as_ref()).find(|s| s.name == "app-123").cloned();
        match state {
            Some(s) if s.status == pb::ContainerStatus::Exited as i32 => Ok(page.containers.len()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(seen, 300);
    let view = eventually("the overview of coordinator one", Duration::from_secs(10), || overview(dashboard)).await;
    assert_eq!(view["containers_total"], 600, "{}", view["containers_total"]);
    let nodes: Vec<&str> = view["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["node-a", "node-b", "node-c"]);
    let first = &view["containers"][0];
    assert_eq!((first["node"].as_str(), first["name"].as_str()), (Some("node-b"), Some("app-123")), "{first}");
    assert_eq!(view["containers"].as_array().unwrap().len(), 500, "at most 500 listed of 600");

    // Samples alone are republished at least every METRICS_REFRESH: coordinator one shows one at most that
    // plus two intervals after node-b sent it.
    let sent = SystemTime::now();
    let samples = (0..300)
        .map(|i| pb::ContainerMetrics {
            container_id: id("node-b", i),
            sampled_at: Some(hemostat_proto::timestamp::to_proto(sent)),
            cpu_percent: Some(12.5),
            memory_used_bytes: 1 << 20,
            memory_limit_bytes: 1 << 30,
            ..Default::default()
        })
        .collect();
    b.send_acked(Body::Metrics(pb::MetricsReport { samples }), Duration::from_secs(5)).await.unwrap();
    eventually("coordinator one to show node-b's sample", METRICS_REFRESH + PUBLISH_INTERVAL * 2, || async {
        let c = fleet::container(&viewer_one, "app-299").await;
        let c = match c {
            Ok(c) if c.node == "node-b" => c,
            // app-299 of node-a does not exist (250 containers); node-c's go to app-049.
            other => return Err(format!("{other:?}")),
        };
        match c.metrics.and_then(|m| m.cpu_percent) {
            Some(12.5) => Ok(()),
            other => Err(format!("cpu {other:?}")),
        }
    })
    .await;

    // A coordinator of the previous version publishes a node's whole entry only, and no summary: the
    // upgraded ones list it, its containers and its counts all the same.
    let old_entry = pb::DirectoryEntry {
        coordinator: "an-older-coordinator".into(),
        node: Some(pb::Node { name: "node-old".into(), connected: true, ..Default::default() }),
        containers: vec![pb::Container {
            node: "node-old".into(),
            state: Some(container(&id("node-old", 0), "legacy", &[])),
            ..Default::default()
        }],
    };
    redis.set_bytes("hemostat:directory:node-old", &prost::Message::encode_to_vec(&old_entry), PUBLISH_INTERVAL * 30);
    redis.cli(&["sadd", "hemostat:directory", "node-old"]);
    eventually("node-old listed by coordinator one", Duration::from_secs(10), || async {
        let nodes = viewer_one.clone().list_nodes(pb::ListNodesRequest::default()).await.map_err(|e| e.to_string())?;
        let names: Vec<String> = nodes.into_inner().nodes.into_iter().map(|n| n.name).collect();
        if names.iter().any(|n| n == "node-old") { Ok(()) } else { Err(format!("{names:?}")) }
    })
    .await;
    let request = pb::ListContainersRequest { node: "node-old".into(), ..Default::default() };
    let listed = viewer_two.clone().list_containers(request).await.unwrap().into_inner().containers;
    assert_eq!(listed.iter().map(|c| c.state.clone().unwrap().name).collect::<Vec<_>>(), ["legacy"]);
    let view = overview(dashboard).await.unwrap();
    assert_eq!(view["containers_total"], 601, "{}", view["containers_total"]);
}
