//! Rolling upgrades (README, "Rolling upgrades"): each side gets from a newer peer what it does not know and
//! goes on. The real coordinator, from a stand-in node of a newer version (the kit's [`NodePeer`]), gets a
//! kind of message added later, a host condition and an anomaly type added later, and a crash alert with a
//! field added later: it acknowledges them, counts them, logs the kind once, and still restarts the crashed
//! container. The real node, from a stand-in coordinator of a newer version ([`CoordinatorPeer`]), gets a
//! kind of message and an action added later: it keeps its session, refuses the action saying so, and then
//! restarts a real container.
//!
//! How the newer messages are made: a newer build's message is this build's fields plus fields with new tags
//! (a oneof variant is a field on the wire like any other), so the tests encode this build's message and
//! append the new fields with `prost::encoding`, byte for byte what a newer build's generated code would
//! send. Those bytes are decoded here with this build's types, the same prost decoding the receiving side
//! runs on the wire, and the result is what the stand-in sends. prost keeps no unknown fields, so what
//! arrives decodes to the very value the receiver would have made of the newer bytes; each test asserts that
//! value (no body for a new kind of message, the known message unchanged for one with a new field).

use std::time::Duration;

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::Scope;
use hemostat_tests::fleet::{
    self, TestCoordinator, TestNode, coordinator_config, events_of, free_metrics_addr, metric, operator, scrape,
};
use hemostat_tests::node_peer::{NodePeer, container, crash_alert};
use hemostat_tests::peer::CoordinatorPeer;
use hemostat_tests::pki::TestPki;
use hemostat_tests::{eventually, logs};
use pb::session_request::Body;
use prost::Message;

const WAIT: Duration = Duration::from_secs(20);

/// A message a newer version added: a request to drain the node (tag 99 of `SessionRequest.body`, tag 9 of
/// `SessionResponse.body`; this build has neither).
#[derive(Clone, PartialEq, prost::Message)]
struct Drain {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(uint32, tag = "2")]
    seconds: u32,
}

fn drain() -> Drain {
    Drain { reason: "host maintenance".into(), seconds: 300 }
}

/// `known` encoded, followed by the fields `newer` appends: what a newer build sends for it.
fn newer_encoding(known: &impl Message, newer: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = known.encode_to_vec();
    newer(&mut bytes);
    bytes
}

/// What this build decodes from a newer build's `bytes`.
fn as_decoded_here<M: Message + Default>(bytes: &[u8]) -> M {
    M::decode(bytes).expect("a newer build's message decodes")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinator_acknowledges_counts_and_ignores_what_a_newer_node_adds_and_goes_on() {
    let logs = logs::capture("hemostat_coordinator=warn");
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_metrics_addr();
    let mut config = coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") });
    config.metrics_listen = Some(metrics);
    let coordinator = TestCoordinator::start(config);
    let client = operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    let mut node = NodePeer::connect(&coordinator.endpoint(), &pki.node("host-a"), "host-a", "s1").await.unwrap();
    let id = "a".repeat(64);
    let web = container(&id, "web", &[]);
    node.send_acked(
        Body::Snapshot(pb::ContainerSnapshot { containers: vec![web.clone()], ..Default::default() }),
        WAIT,
    )
    .await
    .unwrap();

    // Three messages of a kind added later: a drain request, tag 99 of the body.
    let drain_request = newer_encoding(&pb::SessionRequest { seq: 0, body: None }, |bytes| {
        prost::encoding::message::encode(99, &drain(), bytes)
    });
    let decoded: pb::SessionRequest = as_decoded_here(&drain_request);
    assert_eq!(decoded.body, None, "a kind of message this build does not know decodes without a body");
    for _ in 0..3 {
        let seq = node.send_request(decoded.clone()).await.unwrap();
        node.acked(seq, WAIT).await.expect("a message of an unknown kind is acknowledged");
    }
    // A host condition added later (7), and a crash alert with an anomaly type added later (99) besides its
    // exit, and a field added later (tag 50, a string).
    let host_alert = pb::HostAlert { condition: 7, path: "/var/lib/docker".into(), ..Default::default() };
    node.send_acked(Body::HostAlert(host_alert), WAIT)
        .await
        .expect("a host alert of an unknown condition is acknowledged");
    let mut alert = crash_alert(web, vec!["panic: out of cheese".into()]);
    alert.anomalies.push(pb::Anomaly { r#type: 99, severity: pb::Severity::High as i32, threshold: 1.0, actual: 2.0 });
    let known = pb::SessionRequest { seq: 0, body: Some(Body::HealthAlert(alert.clone())) };
    let alert_bytes = newer_encoding(&alert, |bytes| {
        prost::encoding::string::encode(50, &"a field of a newer version".to_owned(), bytes)
    });
    let crash_request = newer_encoding(&pb::SessionRequest { seq: 0, body: None }, |bytes| {
        prost::encoding::bytes::encode(7, &alert_bytes, bytes)
    });
    let decoded: pb::SessionRequest = as_decoded_here(&crash_request);
    assert_eq!(decoded, known, "a known message with a field this build does not know decodes without it");
    let seq = node.send_request(decoded).await.unwrap();
    node.acked(seq, WAIT).await.unwrap();

    // The crash is remediated as if none of it had come.
    let restart = node.command(WAIT).await.expect("a restart of the crashed container");
    assert_eq!((restart.container_id.as_str(), restart.action()), (id.as_str(), pb::Action::Restart), "{restart:?}");
    assert_eq!(node.why_ended(), None, "the session is still open");
    let events = events_of(&client, "web").await.unwrap();
    let alerted = events.iter().find(|e| e.r#type() == pb::EventType::HealthAlert).expect("the alert recorded");
    let anomalies: Vec<_> = alerted.anomalies.iter().map(|a| a.r#type()).collect();
    assert_eq!(anomalies, vec![pb::AnomalyType::NonZeroExit], "the unknown anomaly left out, the rest kept");

    let text = eventually("the unknown counted in /metrics", WAIT, || async {
        let text = scrape(metrics).await?;
        let count = |kind: &str| metric(&text, &format!("hemostat_unknown_messages_total{{kind=\"{kind}\"}}"));
        if count("message") == Some(3.0) { Ok(text) } else { Err(text) }
    })
    .await;
    let count = |kind: &str| metric(&text, &format!("hemostat_unknown_messages_total{{kind=\"{kind}\"}}"));
    assert_eq!((count("host_condition"), count("anomaly_type")), (Some(1.0), Some(1.0)), "{text}");

    let said = logs.text();
    let lines = |kind: &str| {
        said.lines().filter(|l| l.contains("does not know") && l.contains(&format!("kind=\"{kind}\""))).count()
    };
    assert_eq!(lines("message"), 1, "three messages of an unknown kind, said once in the session:\n{said}");
    assert_eq!((lines("host_condition"), lines("anomaly_type")), (1, 1), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_keeps_its_session_with_a_newer_coordinator_and_refuses_an_action_it_does_not_know() {
    let logs = logs::capture("hemostat_node=info");
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let metrics = free_metrics_addr();
    let mut config = fleet::node_config(&pki, "host-a", &peer.endpoint(), &scope.selector());
    config.metrics_listen = Some(metrics);
    let _node = TestNode::start(config);
    let web = scope.run("web", &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    let web_id = scope.docker(&["inspect", "-f", "{{.Id}}", &web]);
    let started = scope.state(&web).started_at;

    // Three messages of a kind added later: a drain request, tag 9 of the body.
    let drain_response = newer_encoding(&pb::SessionResponse { body: None }, |bytes| {
        prost::encoding::message::encode(9, &drain(), bytes)
    });
    let decoded: pb::SessionResponse = as_decoded_here(&drain_response);
    assert_eq!(decoded.body, None, "a kind of message this build does not know decodes without a body");
    for _ in 0..3 {
        peer.respond(decoded.clone()).await;
    }

    // An action added later (99).
    let restart = |id: &str| pb::Command {
        command_id: id.into(),
        container_id: web_id.clone(),
        container_name: web.clone(),
        action: pb::Action::Restart as i32,
        stop_timeout_seconds: 1,
        argv: Vec::new(),
    };
    peer.send(pb::Command { action: 99, ..restart("newer-action") }).await;
    let refused = peer.result(WAIT).await.expect("a result for the unknown action");
    assert_eq!((refused.command_id.as_str(), refused.outcome()), ("newer-action", pb::Outcome::Refused), "{refused:?}");
    assert!(refused.detail.contains("this node does not know the action 99; upgrade the node"), "{}", refused.detail);
    assert_eq!(scope.state(&web).started_at, started, "nothing was done for it");

    // A restart with a field added later (tag 20), on the same session.
    let known = restart("known-action");
    let newer = newer_encoding(&known, |bytes| prost::encoding::uint32::encode(20, &3, bytes));
    let decoded: pb::Command = as_decoded_here(&newer);
    assert_eq!(decoded, known, "a known command with a field this build does not know decodes without it");
    peer.send(decoded).await;
    let done = peer.result(WAIT).await.expect("a result for the restart");
    assert_eq!((done.command_id.as_str(), done.outcome()), ("known-action", pb::Outcome::Success), "{done:?}");
    assert_ne!(scope.state(&web).started_at, started, "restarted");

    let text = scrape(metrics).await.unwrap();
    assert_eq!(metric(&text, "hemostat_node_unknown_messages_total"), Some(3.0), "{text}");
    assert_eq!(
        metric(&text, "hemostat_node_commands_total{action=\"unknown\",result=\"refused\"}"),
        Some(1.0),
        "{text}"
    );
    let said = logs.text();
    assert_eq!(said.lines().filter(|l| l.contains("session open")).count(), 1, "one session all along:\n{said}");
    let unknown = said.lines().filter(|l| l.contains("ignored a message of a kind this node does not know")).count();
    assert_eq!(unknown, 1, "three messages of an unknown kind, said once in the session:\n{said}");
}
