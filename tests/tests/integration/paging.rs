//! The fleet's lists come in pages: ListContainers and ListNodes hold at most 1,000 items a message, resume
//! after the last item of the previous page whatever changed in between, refuse a token no page gave, and
//! `hemostat containers --limit` reads no more than it shows. Nodes are the test kit's [`NodePeer`]s sending
//! real snapshots to a real coordinator over mutual TLS.

use std::collections::BTreeSet;
use std::time::Duration;

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{FleetClient, TestCoordinator, coordinator_config, operator};
use hemostat_tests::node_peer::{NodePeer, container};
use hemostat_tests::pki::TestPki;
use pb::session_request::Body;

/// Sends `count` containers named `app-00000`... as `peer`'s snapshot, in parts of 500.
async fn report(peer: &mut NodePeer, count: usize) {
    let parts = count.div_ceil(500) as u32;
    for part in 0..parts {
        let containers = (part as usize * 500..count.min((part as usize + 1) * 500))
            .map(|i| container(&format!("{part:08x}{i:056x}"), &format!("app-{i:05}"), &[]))
            .collect();
        let snapshot = pb::ContainerSnapshot { containers, part, more: part + 1 < parts };
        peer.send_acked(Body::Snapshot(snapshot), Duration::from_secs(30)).await.unwrap();
    }
}

async fn page(
    client: &FleetClient,
    page_size: u32,
    page_token: &str,
) -> Result<pb::ListContainersResponse, tonic::Status> {
    let request = pb::ListContainersRequest { page_size, page_token: page_token.to_owned(), ..Default::default() };
    client.clone().list_containers(request).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_and_nodes_come_in_bounded_pages_that_cover_the_fleet_once() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let coordinator =
        TestCoordinator::start(coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") }));
    let client = operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    let mut a = NodePeer::connect(&coordinator.endpoint(), &pki.node("node-a"), "node-a", "s1").await.unwrap();
    let mut b = NodePeer::connect(&coordinator.endpoint(), &pki.node("node-b"), "node-b", "s1").await.unwrap();
    report(&mut a, 1_500).await;
    report(&mut b, 700).await;
    eventually("both nodes' containers listed", Duration::from_secs(10), || async {
        let mut count = 0;
        let mut token = String::new();
        loop {
            let response = page(&client, 0, &token).await.map_err(|s| s.to_string())?;
            count += response.containers.len();
            token = response.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        if count == 2_200 { Ok(()) } else { Err(format!("{count} containers")) }
    })
    .await;

    // Without a size, a page is the server's 1,000; a size above it is held to it.
    let first = page(&client, 0, "").await.unwrap();
    assert_eq!(first.containers.len(), 1_000);
    assert_eq!(page(&client, 50_000, "").await.unwrap().containers.len(), 1_000);
    // Pages of 300 read the whole fleet once, by node then name, the last without a token.
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let response = page(&client, 300, &token).await.unwrap();
        assert!(response.containers.len() <= 300);
        pages += 1;
        seen.extend(response.containers.iter().map(|c| {
            let state = c.state.as_ref().unwrap();
            (c.node.clone(), state.name.clone())
        }));
        token = response.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 8, "2,200 containers in pages of 300");
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), 2_200, "no container twice");
    assert_eq!(seen, unique.into_iter().collect::<Vec<_>>(), "in order, by node then name");
    assert_eq!(seen[1_500], ("node-b".to_owned(), "app-00000".to_owned()));

    // A token no page gave is refused, naming the field.
    let refused = page(&client, 10, "not a token").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().starts_with("page_token:"), "{}", refused.message());

    // Nodes page the same way.
    let request = pb::ListNodesRequest { page_size: 1, ..Default::default() };
    let first = client.clone().list_nodes(request).await.unwrap().into_inner();
    assert_eq!(first.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["node-a"]);
    let request = pb::ListNodesRequest { page_size: 1, page_token: first.next_page_token };
    let second = client.clone().list_nodes(request).await.unwrap().into_inner();
    assert_eq!(second.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["node-b"]);
    assert!(second.next_page_token.is_empty(), "the last page has no token");
}
