//! A command result counts only from the node the command was sent to, and only once: stand-in nodes (the
//! kit's [`NodePeer`], each with a valid certificate of its own) forge results for another node's command,
//! for a command never sent, and send a real result twice; the forged ones are refused (`input_refused`)
//! and leave the container's breaker as it was.

use std::time::Duration;

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{FleetClient, TestCoordinator, coordinator_config, events_of, kinds, operator};
use hemostat_tests::node_peer::{NodePeer, container, crash_alert};
use hemostat_tests::pki::TestPki;
use pb::session_request::Body;

const WAIT: Duration = Duration::from_secs(15);

/// A crash of `web` on the node, as a node reports it.
fn crash(id: &str) -> Body {
    Body::HealthAlert(crash_alert(container(id, "web", &[]), Vec::new()))
}

fn failed(command_id: &str, container_id: &str) -> Body {
    Body::CommandResult(pb::CommandResult {
        command_id: command_id.to_owned(),
        container_id: container_id.to_owned(),
        outcome: pb::Outcome::Failed as i32,
        detail: "the container exited again".to_owned(),
        duration_ms: 1000,
        output: String::new(),
        dependents: Vec::new(),
    })
}

/// The breaker's count of consecutive failures of `web` on host-a.
async fn failures(client: &FleetClient) -> u32 {
    let request = pb::GetContainerRequest { node: "host-a".into(), container: "web".into(), recent_events: 0 };
    let response = client.clone().get_container(request).await.expect("get container").into_inner();
    response.budget.expect("a budget").consecutive_failures
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_counts_only_from_the_node_the_command_was_sent_to_and_only_once() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let coordinator =
        TestCoordinator::start(coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") }));
    let client = operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    let endpoint = coordinator.endpoint();
    let mut a = NodePeer::connect(&endpoint, &pki.node("host-a"), "host-a", "a1").await.unwrap();
    let mut b = NodePeer::connect(&endpoint, &pki.node("host-b"), "host-b", "b1").await.unwrap();
    let id = "a".repeat(64);
    a.send_acked(
        Body::Snapshot(pb::ContainerSnapshot { containers: vec![container(&id, "web", &[])], ..Default::default() }),
        WAIT,
    )
    .await
    .unwrap();
    a.send_acked(crash(&id), WAIT).await.unwrap();
    let command = a.command(WAIT).await.expect("a restart sent to host-a");
    assert_eq!(command.container_id, id);

    // host-b reports on host-a's command, and on one never sent; host-a on one never sent.
    for _ in 0..3 {
        b.send_acked(failed(&command.command_id, &id), WAIT).await.unwrap();
    }
    b.send_acked(failed(&"f".repeat(32), &id), WAIT).await.unwrap();
    a.send_acked(failed(&"e".repeat(32), &id), WAIT).await.unwrap();
    let refused = eventually("five refusals", WAIT, || async {
        let request = pb::ListEventsRequest { types: vec![pb::EventType::InputRefused as i32], ..Default::default() };
        let events = client.clone().list_events(request).await.map_err(|s| s.to_string())?.into_inner().events;
        if events.len() >= 5 { Ok(events) } else { Err(format!("{events:?}")) }
    })
    .await;
    assert!(refused[0].reason.contains("was sent to node \"host-a\", not to \"host-b\""), "{}", refused[0].reason);
    assert_eq!(refused[0].command_id, command.command_id);
    assert!(refused[4].reason.contains("no command with that id"), "{}", refused[4].reason);
    assert_eq!(failures(&client).await, 0, "forged failures leave the breaker alone");
    let events = events_of(&client, "web").await.unwrap();
    assert!(!kinds(&events).contains(&"remediation_complete".to_owned()), "{:?}", kinds(&events));

    // host-a's own result counts, once.
    a.send_acked(failed(&command.command_id, &id), WAIT).await.unwrap();
    a.send_acked(failed(&command.command_id, &id), WAIT).await.unwrap();
    eventually("host-a's result recorded", WAIT, || async {
        let events = events_of(&client, "web").await?;
        let n = kinds(&events).iter().filter(|k| *k == "remediation_complete").count();
        if n == 1 { Ok(()) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await;
    eventually("the repeat refused", WAIT, || async {
        let request = pb::ListEventsRequest { types: vec![pb::EventType::InputRefused as i32], ..Default::default() };
        let n = client.clone().list_events(request).await.map_err(|s| s.to_string())?.into_inner().events.len();
        if n == 6 { Ok(()) } else { Err(format!("{n} refusals")) }
    })
    .await;
    assert_eq!(failures(&client).await, 1, "the one real failure counts, once");
    let events = events_of(&client, "web").await.unwrap();
    assert_eq!(kinds(&events).iter().filter(|k| *k == "remediation_complete").count(), 1);
}
