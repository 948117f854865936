//! Mutual TLS and roles: who may not talk to the coordinator, and what it says when refusing.

use hemostat_coordinator::store::StoreConfig;
use hemostat_coordinator::{Coordinator, CoordinatorError};
use hemostat_pki::{OperatorRole, Role, TlsFiles};
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::agent_service_client::AgentServiceClient;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use hemostat_tests::fleet::{self, TestCoordinator};
use hemostat_tests::pki::TestPki;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

struct Setup {
    pki: TestPki,
    coordinator: TestCoordinator,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::Embedded { path: dir.path().join("state.redb") };
    let coordinator = TestCoordinator::start(fleet::coordinator_config(&pki, store));
    Setup { pki, coordinator, _dir: dir }
}

async fn list_nodes_with(files: &TlsFiles, s: &Setup) -> Result<pb::ListNodesResponse, tonic::Status> {
    let mut client = fleet::fleet_client_with(files, s.coordinator.addr()).await.expect("connects");
    client.list_nodes(pb::ListNodesRequest::default()).await.map(|r| r.into_inner())
}

/// Opens a node session with `files`, saying Hello as `claimed`; Ok once the coordinator accepted it.
async fn open_session(files: &TlsFiles, s: &Setup, claimed: &str) -> Result<(), tonic::Status> {
    let tls = files.load().expect("valid files");
    let channel = Endpoint::from_shared(format!("https://localhost:{}", s.coordinator.addr().port()))
        .unwrap()
        .tls_config(tls.client_config("localhost"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let hello = pb::SessionRequest {
        seq: 0,
        body: Some(pb::session_request::Body::Hello(pb::Hello {
            node_name: claimed.to_owned(),
            version: "test".into(),
            stream_id: "s".into(),
            hostname: "h".into(),
            ..Default::default()
        })),
    };
    // Keep the request stream open, as a real node does.
    let outbound = futures::stream::iter([hello]).chain(futures::stream::pending());
    // The coordinator answers the call only once it has checked the Hello.
    AgentServiceClient::new(channel).session(outbound).await.map(|_| ())
}

use futures::StreamExt;

/// Whether the call failed in the transport (TLS refused, connection closed): it never reached a service.
fn refused_by_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_certificate_can_list_and_a_node_certificate_cannot() {
    let s = setup();
    assert!(list_nodes_with(&s.pki.operator(OperatorRole::Viewer), &s).await.is_ok());
    let refused = list_nodes_with(&s.pki.node("host-a"), &s).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(refused.message().contains("needs an operator certificate"), "{}", refused.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_certificate_cannot_open_a_node_session() {
    let s = setup();
    let refused = open_session(&s.pki.operator(OperatorRole::Admin), &s, "op-admin").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(refused.message().contains("needs a node certificate"), "{}", refused.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_certificate_cannot_speak_for_another_node() {
    let s = setup();
    let refused = open_session(&s.pki.node("host-a"), &s, "host-b").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(refused.message().contains("cannot speak for"), "{}", refused.message());
    // Speaking for itself works.
    open_session(&s.pki.node("host-a"), &s, "host-a").await.expect("its own session opens");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_from_another_ca_are_refused() {
    let s = setup();
    for role in [Role::Operator(OperatorRole::Admin), Role::Node] {
        let foreign = s.pki.foreign(role, "mallory");
        let result = match role {
            Role::Node => open_session(&foreign, &s, "mallory").await.map(|_| ()),
            _ => list_nodes_with(&foreign, &s).await.map(|_| ()),
        };
        let status = result.expect_err("a foreign certificate is refused");
        assert!(refused_by_transport(&status), "{role}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_a_certificate_is_refused() {
    let s = setup();
    let ca = std::fs::read_to_string(s.pki.dir().join("ca.pem")).unwrap();
    let channel = Endpoint::from_shared(format!("https://localhost:{}", s.coordinator.addr().port()))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost"))
        .unwrap()
        .connect()
        .await;
    let status = match channel {
        Err(_) => return, // refused during the handshake already
        Ok(channel) => FleetServiceClient::new(channel).list_nodes(pb::ListNodesRequest::default()).await.unwrap_err(),
    };
    assert!(refused_by_transport(&status), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plaintext_client_is_refused() {
    let s = setup();
    let channel =
        Endpoint::from_shared(format!("http://127.0.0.1:{}", s.coordinator.addr().port())).unwrap().connect().await;
    if let Ok(channel) = channel {
        let status = FleetServiceClient::new(channel).list_nodes(pb::ListNodesRequest::default()).await.unwrap_err();
        assert!(refused_by_transport(&status), "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinator_refuses_to_start_with_the_wrong_or_broken_certificates() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::Embedded { path: dir.path().join("state.redb") };
    let mut config = fleet::coordinator_config(&pki, store);
    config.tls = pki.node("host-a");
    let err = Coordinator::bind(config.clone()).await.err().expect("a node certificate is refused");
    assert!(matches!(err, CoordinatorError::WrongRole { .. }), "{err}");
    assert!(err.to_string().contains("needs a coordinator certificate"), "{err}");

    config.tls = pki.coordinator();
    let broken_ca = dir.path().join("broken-ca.pem");
    std::fs::write(&broken_ca, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    config.tls.ca = broken_ca;
    let err = Coordinator::bind(config).await.err().expect("a broken CA file is refused");
    assert!(err.to_string().contains("broken-ca.pem"), "{err}");
}

/// Item 8 of issue 14: text a node sends (a container's name, a command's detail) is written to the
/// coordinator's text log escaped, so a line break in it cannot forge a line of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_nodes_text_cannot_forge_lines_in_the_coordinators_log() {
    use hemostat_proto::v1::session_request::Body;
    use hemostat_tests::node_peer::{NodePeer, container, crash_alert};
    hemostat_tests::init();
    let pki = TestPki::new();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("coordinator.log");
    let binary = hemostat_tests::images::ensure_binaries().join("hemostat-coordinator");
    let env = [("LOG_LEVEL", "debug"), ("LOG_FORMAT", "text")];
    let coordinator =
        hemostat_tests::loadgen::CoordinatorProcess::start_with(&binary, &pki, &env, Some(&log)).expect("starts");
    const FORGED: &str = "2026-12-02T12:00:00.000000Z ERROR hemostat_coordinator: FORGED";
    let mut rogue =
        NodePeer::connect(&format!("localhost:{}", coordinator.addr().port()), &pki.node("rogue"), "rogue", "s1")
            .await
            .unwrap();
    let hostile_name = format!("web\n{FORGED} name\r\n{FORGED} name again");
    let alert = crash_alert(container(&"c".repeat(64), &hostile_name, &[]), vec![format!("boom\n{FORGED} log")]);
    rogue.send_acked(Body::HealthAlert(alert), std::time::Duration::from_secs(30)).await.unwrap();
    let command = rogue.command(std::time::Duration::from_secs(30)).await.expect("a restart command");
    let result = pb::CommandResult {
        command_id: command.command_id.clone(),
        container_id: command.container_id.clone(),
        outcome: pb::Outcome::Success as i32,
        detail: format!("restarted\n{FORGED} detail"),
        duration_ms: 10,
        output: String::new(),
    };
    rogue.send_acked(Body::CommandResult(result), std::time::Duration::from_secs(30)).await.unwrap();
    let text = hemostat_tests::eventually("the result logged", std::time::Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
        if text.contains("command finished") { Ok(text) } else { Err(text) }
    })
    .await;
    assert!(text.contains(r"web\n2026-12-02T12:00:00"), "the name is in the log, escaped: {text}");
    assert!(text.contains(r"restarted\n2026-12-02T12:00:00"), "the detail is in the log, escaped: {text}");
    let forged: Vec<&str> =
        text.lines().filter(|line| line.contains("FORGED") && line.starts_with("2026-12-02T12:00:00")).collect();
    assert!(forged.is_empty(), "lines forged by the node: {forged:#?}");
}
