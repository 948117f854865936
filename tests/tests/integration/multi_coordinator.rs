//! Several coordinators on one Redis, as design.md's Scale section says: any coordinator answers for the
//! whole fleet and reaches a node connected to another one (routed through Redis); a node fails over to
//! the next coordinator of its list when its coordinator dies, and nothing is acted on twice nor recorded
//! twice.

use std::time::Duration;

use hemostat_coordinator::store::StoreConfig;
use hemostat_node::config::CoordinatorAddress;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;
use hemostat_tests::docker::{Scope, crash_once};
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, FleetClient, TestCoordinator, TestNode, events_of, kinds};
use hemostat_tests::node_peer::{NodePeer, container, crash_alert};
use hemostat_tests::pki::TestPki;
use hemostat_tests::redis::RedisServer;

const SLEEPER: &str = "trap 'exit 0' TERM; sleep 86400 & wait";

/// Waits until `client`'s coordinator lists these nodes as connected.
async fn sees_nodes(client: &FleetClient, expected: &[&str]) {
    eventually(&format!("nodes {expected:?} connected"), Duration::from_secs(15), || async {
        let nodes = client.clone().list_nodes(pb::ListNodesRequest::default()).await.map_err(|e| e.to_string())?;
        let connected: Vec<String> =
            nodes.into_inner().nodes.into_iter().filter(|n| n.connected).map(|n| n.name).collect();
        if connected == expected { Ok(()) } else { Err(format!("{connected:?}")) }
    })
    .await
}

fn two_coordinators(pki: &TestPki, redis: &RedisServer) -> (TestCoordinator, TestCoordinator) {
    let config = || fleet::coordinator_config(pki, StoreConfig::Redis { url: redis.url() });
    (TestCoordinator::start(config()), TestCoordinator::start(config()))
}

#[tokio::test(flavor = "multi_thread")]
async fn any_coordinator_answers_for_the_whole_fleet_and_reaches_every_node() {
    hemostat_tests::init();
    let (pki, redis) = (TestPki::new(), RedisServer::start());
    let (one, two) = two_coordinators(&pki, &redis);
    let (scope_a, scope_b) = (Scope::new(), Scope::new());
    let _a = TestNode::start(fleet::node_config(&pki, "host-a", &one.endpoint(), &scope_a.selector()));
    let _b = TestNode::start(fleet::node_config(&pki, "host-b", &two.endpoint(), &scope_b.selector()));
    let web_a = scope_a.run("web", &[], SLEEPER);
    let web_b = scope_b.run("web", &[], SLEEPER);
    let admin_one = fleet::operator(&pki, OperatorRole::Admin, one.addr()).await;
    let viewer_two = fleet::operator(&pki, OperatorRole::Viewer, two.addr()).await;

    // Each coordinator lists both nodes and both hosts' containers.
    for client in [&admin_one, &viewer_two] {
        sees_nodes(client, &["host-a", "host-b"]).await;
        for name in [&web_a, &web_b] {
            eventually(&format!("{name} listed"), Duration::from_secs(10), || fleet::container(client, name)).await;
        }
    }

    // An admin on coordinator one runs a diagnostic command on host-b, whose session coordinator two holds.
    let sent = admin_one
        .clone()
        .trigger_action(pb::TriggerActionRequest {
            node: "host-b".into(),
            container: web_b.clone(),
            action: pb::Action::Exec as i32,
            argv: vec!["uname".into(), "-a".into()],
            force: false,
            reason: "routing check".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let done = eventually("the routed command's result", Duration::from_secs(15), || async {
        let events = events_of(&admin_one, &web_b).await?;
        events
            .into_iter()
            .find(|e| e.command_id == sent.command_id && e.r#type == pb::EventType::RemediationComplete as i32)
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!(done.outcome, pb::Outcome::Success as i32, "{done:?}");
    assert!(done.output.contains("Linux"), "{}", done.output);

    // A crash on host-b is healed by its coordinator, and coordinator one sees the events.
    let api_b = scope_b.run("api", &[], &crash_once(3));
    let events = fleet::remediated(&admin_one, &api_b, Duration::from_secs(15)).await;
    assert_eq!(kinds(&events), ["health_alert", "remediation_needed", "remediation_complete"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_fails_over_to_the_next_coordinator_and_nothing_runs_twice() {
    hemostat_tests::init();
    let (pki, redis) = (TestPki::new(), RedisServer::start());
    let (mut one, two) = two_coordinators(&pki, &redis);
    let scope = Scope::new();
    let mut config = fleet::node_config(&pki, "host-a", &one.endpoint(), &scope.selector());
    config.coordinators.push(CoordinatorAddress::parse(&two.endpoint()).unwrap());
    let _node = TestNode::start(config);
    let viewer_two = fleet::operator(&pki, OperatorRole::Viewer, two.addr()).await;
    sees_nodes(&viewer_two, &["host-a"]).await;

    one.kill();
    let killed = std::time::Instant::now();
    // The node moves to coordinator two (the directory entry of one expires; two holds the session).
    eventually("host-a connected to coordinator two", Duration::from_secs(10), || async {
        let nodes = viewer_two.clone().list_nodes(pb::ListNodesRequest::default()).await.map_err(|e| e.to_string())?;
        let node = nodes.into_inner().nodes.into_iter().find(|n| n.name == "host-a").ok_or("unknown")?;
        let seen = node.last_seen.map(|t| hemostat_proto::timestamp::from_proto(&t));
        if node.connected && seen.is_some_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(2)) {
            Ok(())
        } else {
            Err(format!("{node:?}"))
        }
    })
    .await;
    eprintln!("failover took {:?}", killed.elapsed());

    let web = scope.run("web", &[], &crash_once(3));
    let events = fleet::remediated(&viewer_two, &web, Duration::from_secs(15)).await;
    assert_eq!(kinds(&events), ["health_alert", "remediation_needed", "remediation_complete"]);
    assert_eq!(scope.state(&web).status, "running");
}

/// A report one coordinator processed but whose acknowledgement the node never saw (the coordinator died
/// first) is sent again to the next coordinator: the stream's position in the shared store says it is a
/// repeat, so it is acknowledged and recorded once, and the stream goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_report_processed_by_one_coordinator_and_sent_again_to_the_next_is_recorded_once() {
    hemostat_tests::init();
    let (pki, redis) = (TestPki::new(), RedisServer::start());
    let (mut one, two) = two_coordinators(&pki, &redis);
    let viewer = fleet::operator(&pki, OperatorRole::Viewer, two.addr()).await;
    let tls = pki.node("host-p");
    let crash = |id: &str, name: &str| Body::HealthAlert(crash_alert(container(id, name, &[]), vec![]));
    let health_alerts = |name: &'static str| {
        let viewer = viewer.clone();
        async move {
            let events = events_of(&viewer, name).await?;
            Ok::<usize, String>(events.iter().filter(|e| e.r#type() == pb::EventType::HealthAlert).count())
        }
    };

    let mut first = NodePeer::connect(&one.endpoint(), &tls, "host-p", "stream-1").await.unwrap();
    let seq = first.send_acked(crash("c1", "web"), Duration::from_secs(10)).await.unwrap();
    eventually("web's alert recorded", Duration::from_secs(10), || async {
        if health_alerts("web").await? == 1 { Ok(()) } else { Err("not yet".into()) }
    })
    .await;
    // As if the acknowledgement were lost with its coordinator: the node sends the report again elsewhere.
    drop(first);
    one.kill();
    let mut again = NodePeer::connect(&two.endpoint(), &tls, "host-p", "stream-1").await.unwrap();
    again.send_as(seq, crash("c1", "web")).await.unwrap();
    again.acked(seq, Duration::from_secs(10)).await.expect("a repeat is acknowledged");
    again.send_as(seq + 1, crash("c2", "api")).await.unwrap();
    again.acked(seq + 1, Duration::from_secs(10)).await.unwrap();
    eventually("api's alert recorded", Duration::from_secs(10), || async {
        if health_alerts("api").await? == 1 { Ok(()) } else { Err("not yet".into()) }
    })
    .await;
    assert_eq!(health_alerts("web").await.unwrap(), 1, "the repeat was not recorded again");
}
